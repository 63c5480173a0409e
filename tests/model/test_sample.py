"""The one sampler, on the path generation uses: variance, components, and Mixture.sample."""

from __future__ import annotations

import logging

import pytest
import torch

from pvrnn import Mixture, PvrnnError, SpectralRNN
from pvrnn.model.sample import Picker, Sampler

pytestmark = pytest.mark.usefixtures("one_thread")

MEANS = torch.tensor([3.0, -2.0, 0.0, 10.0])
LOG_SCALES = torch.tensor([-1.0, 0.0, 0.5, 1.5])


def constant_network(means, log_scales, logits=None, loss="mdn") -> SpectralRNN:
    """A network whose every step predicts the same mixture: a zero head, the mixture in its
    bias. ``means``/``log_scales`` are ``(C, F)``."""
    n_components, n_features = means.shape
    net = SpectralRNN(n_features, hidden_size=8, num_layers=1, n_components=n_components,
                      loss=loss)
    with torch.no_grad():
        net.head.weight.zero_()
        if loss == "mse":
            net.head.bias.copy_(means.reshape(-1))
        else:
            logits = torch.zeros(n_components) if logits is None else logits
            net.head.bias.copy_(torch.cat([logits[:, None], means, log_scales], -1).reshape(-1))
    return net.eval()


def generate(net, n_steps, batch, variance_scale, seed=0, prime=None, compiled=False,
             **options) -> torch.Tensor:
    """Run the generation loop (``Sampler.generate``, what ``SoundModel.generate`` runs) from
    ``prime`` ``(P, F)`` (default: 3 rows of zeros); returns ``(batch, n_steps, F)``."""
    sampler = Sampler.for_network(net, generator=torch.Generator().manual_seed(seed), **options)
    scale = torch.as_tensor(variance_scale, dtype=torch.float32).expand(n_steps)
    std_scale = scale.sqrt().reshape(n_steps, 1, 1)
    prime = torch.zeros(3, net.n_features) if prime is None else prime
    return sampler.generate(net, prime, n_steps, batch, std_scale, compiled=compiled)


def test_generation_variance_is_variance_scale_times_model_variance():
    # 2000 streams x 50 steps per half: 100k draws per feature and half; the sample variance
    # has relative standard error sqrt(2 / 1e5) = 0.45 %, so 3 % is over six of them.
    net = constant_network(MEANS[None], LOG_SCALES[None])
    model_variance = (2 * LOG_SCALES).exp() + net.min_variance
    schedule = torch.cat([torch.full((50,), 0.25), torch.full((50,), 4.0)])
    x = generate(net, 100, 2000, schedule)
    for half, scale in ((x[:, :50], 0.25), (x[:, 50:], 4.0)):
        draws = half.reshape(-1, 4)
        ratio = draws.var(0) / (scale * model_variance)
        assert ((ratio - 1).abs() < 0.03).all(), (scale, ratio)
        tolerance = 5 * (scale * model_variance / draws.shape[0]).sqrt()
        assert ((draws.mean(0) - MEANS).abs() < tolerance).all()


def test_generation_most_likely_component_and_its_variance():
    means = torch.tensor([[0.0, 0.0], [5.0, -5.0], [20.0, 20.0]])
    log_scales = torch.tensor([[0.0, 0.0], [-1.0, 0.3], [1.0, 1.0]])
    net = constant_network(means, log_scales, logits=torch.tensor([0.0, 2.0, 1.0]))
    x = generate(net, 50, 2000, 0.5, component="most_likely").reshape(-1, 2)
    torch.testing.assert_close(x.mean(0), torch.tensor([5.0, -5.0]), atol=0.02, rtol=0)
    variance = (2 * log_scales[1]).exp() + net.min_variance
    ratio = x.var(0) / (0.5 * variance)
    assert ((ratio - 1).abs() < 0.03).all(), ratio


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_generation_draws_components_from_tempered_weights(temperature):
    logits = torch.tensor([0.0, 1.0, -1.0])
    means = torch.tensor([0.0, 100.0, 200.0])[:, None]
    net = constant_network(means, torch.full((3, 1), -10.0), logits=logits)
    x = generate(net, 50, 2000, 0.0, temperature=temperature).reshape(-1)
    counts = torch.stack([(x - v).abs().lt(1.0).float().mean() for v in (0.0, 100.0, 200.0)])
    # binomial standard error <= sqrt(0.25 / 1e5) = 0.0016; tolerance 0.01 is six of them
    torch.testing.assert_close(counts, torch.softmax(logits / temperature, -1), atol=0.01,
                               rtol=0)


def test_generation_of_a_regression_uses_its_residual_variance():
    net = constant_network(MEANS[None], None, loss="mse")
    net.residual_variance.copy_(torch.tensor([0.1, 1.0, 2.0, 9.0]))
    draws = generate(net, 50, 2000, 0.5).reshape(-1, 4)
    ratio = draws.var(0) / (0.5 * net.residual_variance)
    assert ((ratio - 1).abs() < 0.03).all(), ratio


@pytest.mark.parametrize("component", ["sample", "most_likely"])
def test_a_generation_step_is_mixture_sample(component):
    # One sampler: the first generated step is Mixture.sample of the network's prediction
    # after the prime, given the same generator.
    torch.manual_seed(0)
    net = SpectralRNN(6, hidden_size=16, num_layers=2, n_components=3).eval()
    prime = torch.randn(5, 6)
    with torch.no_grad():
        mixture, _ = net(prime[None])
    last = Mixture(mixture.logits[0, -1], mixture.means[0, -1], mixture.log_scales[0, -1],
                   min_variance=net.min_variance)
    for seed in range(5):
        expected = last.sample(variance_scale=0.7, temperature=1.5, component=component,
                               generator=torch.Generator().manual_seed(seed))
        sampler = Sampler.for_network(net, generator=torch.Generator().manual_seed(seed),
                                      temperature=1.5, component=component)
        step = sampler.generate(net, prime, 1, 1, torch.full((1, 1, 1), 0.7 ** 0.5))
        torch.testing.assert_close(step[0, 0], expected)


def test_per_feature_std_scale():
    # room for per-feature variance scales: std_scale with a last dim of F
    net = constant_network(torch.zeros(1, 2), torch.zeros(1, 2))
    sampler = Sampler.for_network(net, generator=torch.Generator().manual_seed(1))
    std_scale = torch.tensor([0.5, 2.0]).expand(50, 1, 2)
    x = sampler.generate(net, torch.zeros(2, 2), 50, 2000, std_scale).reshape(-1, 2)
    torch.testing.assert_close(x.var(0), torch.tensor([0.25, 4.0]), rtol=0.03, atol=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=0.0), "temperature="),
    (dict(temperature=float("nan")), "temperature="),
    (dict(component="argmax"), "component="),
])
def test_bad_sampler_settings(kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        Sampler(3, 4, **kwargs)


def test_nearest_continuation_picks_the_frame_that_continues_both_rows():
    from pvrnn.model.sample import nearest_continuation

    t = torch.arange(40, dtype=torch.float32)
    pool = torch.stack([torch.sin(t / 3), torch.cos(t / 3)], dim=-1)  # a circle: a "vibrato"
    # the generated sound is at pool[10] -> pool[11]: continue with pool[11], not pool[9]
    # (the same point on the way back has the same value but the other direction)
    picked = nearest_continuation(pool, pool[10:11] + 0.01, pool[11:12] - 0.01)
    torch.testing.assert_close(picked, pool[11:12])
    batch = nearest_continuation(pool, pool[[3, 20]], pool[[4, 21]])
    torch.testing.assert_close(batch, pool[[4, 21]])


def test_resets_continue_a_vibrato_instead_of_cutting_it():
    """Absolute mode: a reset frame is the pool frame nearest to where the sound is."""
    from pvrnn.model.sample import nearest_continuation

    net, pool, out = vibrato_resets(64, 24, 6)
    resets = out[:, 5::6]  # rows 6, 12, ... (1-based) are resets
    for b in range(2):
        for j, row in enumerate(resets[b]):
            i = 6 * (j + 1) - 1
            expected = nearest_continuation(pool, out[b, i - 1 : i], sampler_mean_row(
                net, out[b, :i], pool[:5]))
            torch.testing.assert_close(row.unsqueeze(0), expected)


def vibrato_resets(n_pool, n_steps, reset_every):
    """Two streams at variance 0 from a 1x4 LSTM primed on a circle of ``n_pool`` frames (a
    "vibrato") that is also the reset pool: ``(net, pool, out (2, n_steps, 2))``."""
    torch.manual_seed(0)
    net = SpectralRNN(2, hidden_size=4, num_layers=1, n_components=1).eval()
    t = torch.arange(n_pool, dtype=torch.float32)
    pool = torch.stack([torch.sin(t / 4), torch.cos(t / 4)], dim=-1)
    sampler = Sampler.for_network(net, generator=torch.Generator().manual_seed(0))
    out = sampler.generate(net, pool[:5], n_steps, 2, torch.zeros(n_steps, 1, 1), None,
                           reset_every, reset_pool=pool)
    return net, pool, out


def sampler_mean_row(net, history, prime):
    """The network's mean prediction after ``prime`` then ``history`` (variance 0)."""
    with torch.no_grad():
        mixture, _ = net(torch.cat([prime, history]).unsqueeze(0))
    return mixture.means[0, -1, 0].unsqueeze(0)


# -- the in-place generation step: stepper buffers, Picker, compiled step ---------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bottleneck", [None, 5])
def test_generation_follows_the_network_over_its_own_output(cell, bottleneck):
    # Variance 0 and the heaviest component: every generated row is the chosen mean of the
    # network's sequence forward over the primer and the rows generated before it.
    torch.manual_seed(0)
    net = SpectralRNN(6, hidden_size=12, num_layers=2, n_components=2, cell=cell,
                      bottleneck=bottleneck).eval()
    prime = torch.randn(4, 6)
    out = generate(net, 30, 3, 0.0, prime=prime, component="most_likely")  # (3, 30, 6)
    with torch.no_grad():
        whole = torch.cat([prime.expand(3, 4, 6), out[:, :-1]], dim=1)  # the inputs
        raw, _ = net.raw(whole)
    raw = raw[:, 3:]  # the predictions of rows 0..29: (3, 30, C, 1 + 2F)
    heaviest = raw[..., 0].argmax(-1)  # (3, 30)
    means = raw[..., 1:7].gather(-2, heaviest[..., None, None].expand(3, 30, 1, 6))[..., 0, :]
    torch.testing.assert_close(out, means, atol=1e-5, rtol=1e-5)



def test_picker_is_the_gumbel_max_draw_written_out():
    # An independent reference of the sampling arithmetic: k = argmax(logits + g),
    # mean_k + sqrt(exp(2 log_scale_k) + min_variance) * noise.
    torch.manual_seed(0)
    sampler = Sampler(3, 5, min_variance=1e-2)
    head = torch.randn(4, 3, 11)
    gumbel, noise = torch.randn(4, 3), torch.randn(4, 5)
    out = torch.empty(4, 5)
    Picker(sampler, head[..., 0], head[..., 1:])(gumbel, noise, out)
    k = (head[..., 0] + gumbel).argmax(-1)
    chosen = head[torch.arange(4), k]  # (4, 11)
    std = ((2 * chosen[:, 6:]).exp() + 1e-2).sqrt()
    torch.testing.assert_close(out, chosen[:, 1:6] + std * noise)


def compiled_or_skip() -> None:
    from pvrnn.model import sample

    if "cpu" in sample._BROKEN:
        pytest.skip(f"torch.compile does not work here: {sample._BROKEN['cpu']}")


@pytest.mark.slow
def test_the_compiled_step_equals_the_eager_step():
    # Embedding, two components, batch 3 (strided buffer slots): the compiled whole step
    # computes what the eager one does, to float rounding, with the same draws.
    torch.manual_seed(0)
    net = SpectralRNN(6, hidden_size=12, num_layers=2, n_components=2, bottleneck=5).eval()
    prime = torch.randn(4, 6)
    eager = generate(net, 40, 3, 0.7, prime=prime, compiled=False)
    compiled = generate(net, 40, 3, 0.7, prime=prime, compiled=True)
    compiled_or_skip()
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_a_failing_compile_falls_back_to_eager_silently(monkeypatch, caplog):
    from pvrnn.model import sample

    def broken(*args, **kwargs):
        def fail(*args, **kwargs):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(sample, "_COMPILED", {})
    monkeypatch.setattr(sample, "_BROKEN", {})
    torch.manual_seed(0)
    net = SpectralRNN(4, hidden_size=8, num_layers=2, n_components=2).eval()
    eager = generate(net, 20, 2, 1.0, compiled=False)
    with caplog.at_level(logging.DEBUG, logger="pvrnn"):
        fallback = generate(net, 20, 2, 1.0, compiled=True)
    assert torch.equal(fallback, eager)
    assert "no C++ compiler" in sample._BROKEN["cpu"]
    assert any("running eager" in r.getMessage() and r.levelno == logging.DEBUG
               for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


def test_the_policy_leaves_the_cpu_step_eager(monkeypatch):
    # On a CPU a compiled call costs more than an eager step: PVRNN_COMPILE=1 does not
    # compile it there (compiled=True does).
    from pvrnn.model import sample

    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called")

    monkeypatch.setenv("PVRNN_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", refuse)
    monkeypatch.setattr(sample, "_COMPILED", {})
    net = SpectralRNN(4, hidden_size=8, num_layers=1, n_components=1).eval()
    sampler = Sampler.for_network(net, generator=torch.Generator().manual_seed(0))
    out = sampler.generate(net, torch.zeros(3, 4), 5, 1, torch.ones(5, 1, 1))
    assert out.shape == (1, 5, 4) and not sample._COMPILED


def test_a_reset_at_the_first_row_continues_the_drawn_row():
    # reset_every=1 with a pool: the first row has no predecessor, so the pair looked up is
    # (drawn row, drawn row), as before the in-place loop (no unwritten memory is read).
    from pvrnn.model.sample import nearest_continuation

    net, pool, out = vibrato_resets(32, 3, 1)
    drawn = sampler_mean_row(net, torch.zeros(0, 2), pool[:5])
    torch.testing.assert_close(out[:, 0], nearest_continuation(pool, drawn, drawn).expand(2, 2))


def test_every_buffer_of_the_step_is_found_for_cuda_graphs():
    # On CUDA every tensor the compiled step touches is marked static, nested lists included
    # (the per-layer slots of the stepper are a list of tuples).
    from pvrnn.model.sample import tensors_in

    net = SpectralRNN(4, hidden_size=8, num_layers=2, n_components=2, bottleneck=3).eval()
    with torch.inference_mode():
        stepper = net.stepper()
        stepper.prime(torch.zeros(1, 3, 4), 2)
    found = {id(t) for t in tensors_in(list(vars(stepper).values()))}
    for slots in stepper.layers:
        assert all(id(t) in found for t in slots)
    assert {id(stepper.head), id(stepper.input), id(stepper.x)} <= found
    assert tensors_in([1, "a", None, (torch.zeros(1), [torch.ones(2)])])[1].shape == (2,)
