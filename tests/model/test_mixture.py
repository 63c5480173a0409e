"""Mixture: the loss against torch.distributions, gradients at extremes, sampler semantics."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from pvrnn import Mixture, PvrnnError

pytestmark = pytest.mark.usefixtures("one_thread")



def random_mixture(batch=(4, 5), c=3, f=6, dtype=torch.float64, seed=0, **kwargs) -> Mixture:
    g = torch.Generator().manual_seed(seed)
    return Mixture(
        logits=torch.randn(*batch, c, generator=g, dtype=dtype) * 2,
        means=torch.randn(*batch, c, f, generator=g, dtype=dtype) * 3,
        log_scales=torch.randn(*batch, c, f, generator=g, dtype=dtype) * 0.7,
        **kwargs,
    )


def oracle(m: Mixture, scales: torch.Tensor) -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(logits=m.logits), Independent(Normal(m.means, scales), 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nll_equals_torch_distributions(seed):
    m = random_mixture(seed=seed, min_variance=0.0)
    target = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(seed + 10),
                         dtype=torch.float64) * 3
    expected = -oracle(m, m.log_scales.exp()).log_prob(target)
    torch.testing.assert_close(m.nll(target), expected, atol=1e-5, rtol=0)
    assert m.nll(target).shape == (4, 5)


def test_nll_with_the_variance_floor_uses_the_floored_scales():
    m = random_mixture(min_variance=1e-2)
    target = torch.randn(4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m.scales, (m.log_scales.exp().square() + 1e-2).sqrt())
    expected = -oracle(m, m.scales).log_prob(target)
    torch.testing.assert_close(m.nll(target), expected, atol=1e-5, rtol=0)
    # The default floor (variance 1e-6) barely moves the NLL of ordinary scales.
    default = random_mixture()
    exact = -oracle(default, default.log_scales.exp()).log_prob(target)
    torch.testing.assert_close(default.nll(target), exact, atol=2e-3, rtol=0)


def test_variance_floor_stops_collapse():
    m = Mixture(logits=torch.zeros(1), means=torch.zeros(1, 2),
                log_scales=torch.full((1, 2), -1e4), min_variance=1e-6)
    nll = m.nll(torch.zeros(2))
    assert torch.isfinite(nll)
    # log N(0; 0, 1e-6) per feature = -0.5 log(2 pi 1e-6); two features
    torch.testing.assert_close(nll, torch.tensor(math.log(2 * math.pi * 1e-6)), atol=1e-4,
                               rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_for_extreme_inputs(dtype):
    logits = torch.tensor([[0.0, -1e4, -80.0], [50.0, -50.0, 0.0]], dtype=dtype,
                          requires_grad=True)
    means = torch.zeros(2, 3, 4, dtype=dtype, requires_grad=True)
    log_scales = torch.tensor([-5.0, 0.0, 5.0], dtype=dtype)[None, :, None].expand(2, 3, 4)
    log_scales = log_scales.clone().requires_grad_(True)
    # 1e4 standard deviations of the widest... and far more of the narrowest component
    target = torch.full((2, 4), 1e4 * math.exp(5.0), dtype=dtype)
    m = Mixture(logits, means, log_scales)
    loss = m.nll(target).sum()
    loss.backward()
    assert torch.isfinite(loss)
    for tensor in (logits, means, log_scales):
        assert torch.isfinite(tensor.grad).all()


def test_gradients_finite_when_every_component_is_far_and_unlikely():
    logits = torch.full((3,), -1e4, requires_grad=True)
    means = torch.zeros(3, 2, requires_grad=True)
    log_scales = torch.full((3, 2), -10.0, requires_grad=True)
    loss = Mixture(logits, means, log_scales).nll(torch.full((2,), 1e4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(t.grad).all() for t in (logits, means, log_scales))


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    means = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    log_scales = (0.3 * torch.randn(2, 3, 4, dtype=torch.float64, generator=g)).requires_grad_()
    target = torch.randn(2, 4, dtype=torch.float64, generator=g, requires_grad=True)

    def f(lg, mu, ls, x):
        return Mixture(lg, mu, ls, min_variance=1e-3).nll(x)

    assert torch.autograd.gradcheck(f, (logits, means, log_scales, target))


@pytest.mark.parametrize("variance_scale", [1.0, 0.25, 4.0])
def test_sample_variance_is_variance_scale_times_model_variance(variance_scale):
    # One component: 200k draws; the sample variance of N normal draws has relative standard
    # error sqrt(2 / N) = 0.3 %, so a 3 % tolerance is ten standard errors.
    n = 200_000
    log_scales = torch.tensor([-1.0, 0.0, 0.5, 1.5]).expand(n, 1, 4)
    means = torch.tensor([3.0, -2.0, 0.0, 10.0]).expand(n, 1, 4)
    m = Mixture(torch.zeros(n, 1), means, log_scales)
    x = m.sample(variance_scale=variance_scale, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 4)
    model_variance = m.variances[0, 0]
    ratio = x.var(0) / (variance_scale * model_variance)
    assert ((ratio - 1).abs() < 0.03).all(), ratio
    assert ((x.mean(0) - means[0, 0]).abs() < 5 * (variance_scale * model_variance / n).sqrt()
            + 1e-6).all()


def test_most_likely_component_and_its_variance():
    n = 200_000
    means = torch.tensor([[0.0, 0.0], [5.0, -5.0], [20.0, 20.0]]).expand(n, 3, 2)
    log_scales = torch.tensor([[0.0, 0.0], [-1.0, 0.3], [1.0, 1.0]]).expand(n, 3, 2)
    logits = torch.tensor([0.0, 2.0, 1.0]).expand(n, 3)
    m = Mixture(logits, means, log_scales)
    x = m.sample(variance_scale=0.5, component="most_likely",
                 generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.mean(0), torch.tensor([5.0, -5.0]), atol=0.02, rtol=0)
    ratio = x.var(0) / (0.5 * m.variances[0, 1])
    assert ((ratio - 1).abs() < 0.03).all(), ratio


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_components_are_drawn_from_tempered_weights(temperature):
    n = 100_000
    logits = torch.tensor([0.0, 1.0, -1.0]).expand(n, 3)
    means = torch.tensor([0.0, 100.0, 200.0])[:, None].expand(n, 3, 1)
    m = Mixture(logits, means, torch.full((n, 3, 1), -10.0))
    x = m.sample(variance_scale=0.0, temperature=temperature,
                 generator=torch.Generator().manual_seed(2))
    counts = torch.stack([(x[:, 0] == v).float().mean() for v in (0.0, 100.0, 200.0)])
    expected = torch.softmax(logits[0] / temperature, -1)
    # binomial standard error <= sqrt(0.25 / n) = 0.0016; tolerance 0.01 is six of them
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)


def test_variance_scale_zero_returns_the_component_mean():
    m = random_mixture(batch=(7,), dtype=torch.float32)
    x = m.sample(variance_scale=0.0, component="most_likely")
    index = m.logits.argmax(-1)
    torch.testing.assert_close(x, m.means[torch.arange(7), index])


def test_per_item_variance_scale_tensor():
    n = 100_000
    m = Mixture(torch.zeros(2, n, 1), torch.zeros(2, n, 1, 1), torch.zeros(2, n, 1, 1))
    scale = torch.tensor([[0.25], [4.0]]).expand(2, n)
    x = m.sample(variance_scale=scale, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(x.var(1).squeeze(-1), torch.tensor([0.25, 4.0]), rtol=0.03,
                               atol=0)


def test_sampling_is_reproducible_with_a_generator():
    m = random_mixture(dtype=torch.float32)
    a = m.sample(generator=torch.Generator().manual_seed(5))
    b = m.sample(generator=torch.Generator().manual_seed(5))
    c = m.sample(generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_moments():
    m = random_mixture(batch=(3,), dtype=torch.float64)
    d = oracle(m, m.scales)
    torch.testing.assert_close(m.mean, d.mean)
    torch.testing.assert_close(m.variance, d.variance)
    torch.testing.assert_close(m.weights.sum(-1), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("kwargs,match", [
    (dict(variance_scale=-1.0), "variance_scale="),
    (dict(variance_scale=float("nan")), "variance_scale="),
    (dict(variance_scale=torch.tensor(-1.0)), "variance_scale="),
    (dict(temperature=0.0), "temperature="),
    (dict(component="argmax"), "component="),
])
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        random_mixture().sample(**kwargs)


def test_bad_construction_and_targets():
    with pytest.raises(PvrnnError, match="log_scales="):
        Mixture(torch.zeros(3), torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(PvrnnError, match="logits="):
        Mixture(torch.zeros(2), torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(PvrnnError, match="target="):
        random_mixture().nll(torch.zeros(4, 5, 7, dtype=torch.float64))


def test_to_and_detach():
    m = random_mixture(dtype=torch.float64).to(torch.float32)
    assert m.means.dtype == m.logits.dtype == m.log_scales.dtype == torch.float32
    assert m.detach().shape == m.shape == (4, 5, 3, 6)
    assert m.batch_shape == (4, 5) and m.n_components == 3 and m.n_features == 6
