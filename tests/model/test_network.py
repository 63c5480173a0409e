"""SpectralRNN: shapes, state carrying, initialisation, losses, batch and device consistency."""

from __future__ import annotations

import pytest
import torch

from pvrnn import Mixture, PvrnnError, SpectralRNN

pytestmark = pytest.mark.usefixtures("one_thread")



def make(cell="lstm", **kwargs) -> SpectralRNN:
    torch.manual_seed(0)
    return SpectralRNN(8, hidden_size=16, num_layers=2, n_components=3, cell=cell, **kwargs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_shapes_batched_and_unbatched(cell):
    net = make(cell)
    mixture, state = net(torch.randn(4, 10, 8))
    assert isinstance(mixture, Mixture)
    assert mixture.logits.shape == (4, 10, 3)
    assert mixture.means.shape == mixture.log_scales.shape == (4, 10, 3, 8)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 4, 16)
    single, _ = net(torch.randn(10, 8))
    assert single.means.shape == (10, 3, 8)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_carries_across_calls(cell):
    net = make(cell).eval()
    x = torch.randn(3, 12, 8)
    whole, _ = net(x)
    first, state = net(x[:, :5])
    second, _ = net(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first.means, second.means], 1), whole.means)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)


@pytest.mark.parametrize("batch", [1, 3])
def test_batched_equals_item_by_item(batch):
    net = make().eval()
    x = torch.randn(batch, 7, 8)
    together, _ = net(x)
    for b in range(batch):
        alone, _ = net(x[b : b + 1])
        torch.testing.assert_close(together.means[b], alone.means[0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(together.log_scales[b], alone.log_scales[0], atol=1e-6,
                                   rtol=1e-5)


def test_lstm_forget_gate_bias_starts_at_one():
    net = make()
    h = net.hidden_size
    for layer in range(net.num_layers):
        b = getattr(net.rnn, f"bias_ih_l{layer}") + getattr(net.rnn, f"bias_hh_l{layer}")
        torch.testing.assert_close(b[h : 2 * h], torch.ones(h))
    torch.testing.assert_close(net.head.bias, torch.zeros_like(net.head.bias))


def test_mdn_loss_is_mean_nll():
    net = make()
    x, y = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mixture, _ = net(x)
    torch.testing.assert_close(net.loss(mixture, y), mixture.nll(y).mean())


def test_mse_loss_is_plain_regression():
    torch.manual_seed(0)
    net = SpectralRNN(8, hidden_size=16, num_layers=1, n_components=1, loss="mse")
    x, y = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mixture, _ = net(x)
    assert mixture.means.shape == (2, 5, 1, 8)
    torch.testing.assert_close(net.loss(mixture, y),
                               torch.nn.functional.mse_loss(mixture.means[..., 0, :], y))
    # unit variance: the NLL is 0.5 * squared error + constant
    torch.testing.assert_close(mixture.variances, torch.ones_like(mixture.means))


def test_training_reduces_the_loss():
    torch.manual_seed(1)
    net = SpectralRNN(2, hidden_size=16, num_layers=1, n_components=2)
    t = torch.arange(200, dtype=torch.float32) * 0.3
    seq = torch.stack([torch.sin(t), torch.cos(t)], -1)[None]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        mixture, _ = net(seq[:, :-1])
        loss = net.loss(mixture, seq[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 2.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(cell="rnn"), "cell="),
    (dict(loss="l1"), "loss="),
    (dict(n_components=0), "n_components="),
    (dict(loss="mse", n_components=3), "n_components="),
    (dict(dropout=1.0), "dropout="),
    (dict(hidden_size=0), "hidden_size="),
    (dict(bottleneck=0), "bottleneck="),
    (dict(bottleneck=2.5), "bottleneck="),
])
def test_bad_constructor_arguments(kwargs, match):
    settings = dict(hidden_size=16, num_layers=1, n_components=1)
    settings.update(kwargs)
    with pytest.raises(PvrnnError, match=match):
        SpectralRNN(8, **settings)


def test_bad_input_shape():
    with pytest.raises(PvrnnError, match="x="):
        make()(torch.randn(2, 5, 7))
    with pytest.raises(PvrnnError, match="x="):
        make()(torch.randn(5))


def test_bottleneck_embeds_the_input_and_lowers_the_head_rank():
    net = SpectralRNN(40, hidden_size=32, num_layers=1, n_components=2, bottleneck=6)
    assert net.rnn.input_size == 6 and net.embed.weight.shape == (6, 40)
    assert net.head.weight.shape == (2 * (1 + 2 * 40), 6)
    wide = SpectralRNN(40, hidden_size=32, num_layers=1, n_components=2)
    count = lambda n: sum(p.numel() for p in n.parameters())  # noqa: E731
    assert count(net) < count(wide) / 2


@pytest.mark.parametrize("bottleneck", [None, 4])
def test_config_round_trip(bottleneck):
    net = make(dropout=0.1, bottleneck=bottleneck)
    again = SpectralRNN(**net.config())
    assert again.config() == net.config()
    again.load_state_dict(net.state_dict())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = make().eval()
    x = torch.randn(2, 6, 8)
    cpu, _ = net(x)
    gpu, _ = net.to("cuda")(x.cuda())
    torch.testing.assert_close(gpu.means.cpu(), cpu.means, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bottleneck", [None, 5])
def test_stepper_matches_the_sequence_forward(cell, batch, bottleneck):
    net = make(cell, bottleneck=bottleneck).eval()
    x = torch.randn(batch, 9, 8)
    whole, _ = net.raw(x)  # (batch, 9, C, P)
    with torch.inference_mode():
        stepper = net.stepper()
        outputs = [stepper.prime(x[:, :4])]
        for t in range(4, 9):
            outputs.append(stepper.step(x[:, t]))
    torch.testing.assert_close(torch.stack(outputs, 1), whole[:, 3:], atol=1e-5, rtol=1e-5)


def test_stepper_primes_once_for_a_batch():
    net = make().eval()
    x = torch.randn(1, 6, 8)
    with torch.inference_mode():
        stepper = net.stepper()
        first = stepper.prime(x, batch=4)
        step = stepper.step(torch.zeros(4, 8))
    assert first.shape == (4, 3, 17) and step.shape == (4, 3, 17)
    torch.testing.assert_close(step[0], step[3])


def test_mse_network_samples_with_its_residual_variance():
    # A regression's Gaussian reading: variance = mean squared residual, tracked in training.
    torch.manual_seed(0)
    net = SpectralRNN(4, hidden_size=16, num_layers=1, n_components=1, loss="mse")
    assert torch.equal(net.residual_variance, torch.ones(4))
    x = torch.randn(8, 30, 4) * torch.tensor([0.1, 0.2, 0.5, 1.0])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(300):
        mixture, _ = net(x[:, :-1])
        loss = net.loss(mixture, x[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        mixture, _ = net(x[:, :-1])
        residual = (mixture.means[..., 0, :] - x[:, 1:]).square().reshape(-1, 4).mean(0)
        before = net.residual_variance.clone()
        net.loss(mixture, x[:, 1:])  # evaluation does not move it
    assert torch.equal(before, net.residual_variance)
    # Tracks the residuals per feature (a moving average lags a little) ...
    torch.testing.assert_close(net.residual_variance, residual, rtol=0.3, atol=1e-4)
    assert net.residual_variance[0] < net.residual_variance[3]
    # ... and the mixture's variance is exactly it.
    torch.testing.assert_close(mixture.log_scales[0, 0, 0].exp().square(), net.residual_variance)
