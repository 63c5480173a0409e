"""cell="tcn": the dilated causal CNN backbone against its own full forward pass.

The references: a full (parallel) forward over the whole sequence. Incremental generation
(ring-buffer queues), windowed forwards with a carried state, and the receptive field
(read off the gradient) must all agree with it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError, SoundModel, SpectralRNN
from pvrnn.model.tcn import TemporalConvNet, receptive_field

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 44100


@pytest.fixture(scope="module")
def sine():
    return pvrnn.examples.sine(440.0, 2.0, SR)


def make(loss="mdn", n_components=3, num_layers=2, **kwargs) -> SpectralRNN:
    torch.manual_seed(0)
    return SpectralRNN(8, hidden_size=16, num_layers=num_layers, n_components=n_components,
                       cell="tcn", loss=loss, **kwargs).eval()


@pytest.mark.parametrize("kernel_size, depth", [(2, 6), (3, 3)])
@pytest.mark.parametrize("loss, n_components", [("mdn", 3), ("mse", 1)])
def test_incremental_generation_equals_the_full_forward(kernel_size, depth, loss, n_components):
    net = make(loss, n_components)
    if (kernel_size, depth) != (2, 6):
        net.rnn = TemporalConvNet(8, 16, 2, kernel_size=kernel_size, depth=depth).eval()
    x = torch.randn(3, 150, 8)  # longer than the receptive field: the rings wrap around
    assert x.shape[1] > net.rnn.receptive_field
    with torch.no_grad():
        full, _ = net.raw(x)  # (3, 150, C, P)
        stepper = net.stepper()
        rows = [stepper.prime(x[:, :7])]
        for t in range(7, x.shape[1]):
            rows.append(stepper.step(x[:, t]))
    torch.testing.assert_close(torch.stack(rows, 1), full[:, 6:], atol=2e-5, rtol=1e-4)


def test_batch_prime_copies_one_primer_to_every_stream():
    net = make()
    x = torch.randn(1, 40, 8)
    with torch.no_grad():
        full, _ = net.raw(x)
        stepper = net.stepper()
        last = stepper.prime(x[:, :10], batch=4)
        assert last.shape == (4, 3, 17)
        out = stepper.step(x[0, 10].expand(4, 8))
    torch.testing.assert_close(out, full[:, 10].expand(4, -1, -1), atol=2e-5, rtol=1e-4)


def test_windows_with_a_carried_state_see_their_left_context():
    """Truncated-BPTT windows with the previous window's state compute the full forward."""
    net = make()
    x = torch.randn(2, 90, 8)
    whole, _ = net(x)
    parts, state = [], None
    for a in range(0, 90, 20):
        mixture, state = net(x[:, a : a + 20], state)
        parts.append(mixture.means)
        assert len(state) == 12 and state[-1].shape == (2, 16, 32)
    torch.testing.assert_close(torch.cat(parts, 1), whole.means, atol=1e-5, rtol=1e-5)
    single, single_state = net(x[0])  # unbatched (time, F)
    torch.testing.assert_close(single.means, whole.means[0], atol=1e-5, rtol=1e-5)
    assert single_state[0].shape == (16, 1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_receptive_field_is_causal_and_as_stated(num_layers):
    net = make(num_layers=num_layers).train()
    rf = net.rnn.receptive_field
    assert rf == receptive_field(num_layers) == 1 + 63 * num_layers
    x = torch.randn(1, rf + 40, 8, requires_grad=True)
    t = rf + 20
    net.raw(x)[0][0, t].sum().backward()
    reached = (x.grad[0].abs().sum(-1) > 0).nonzero().flatten()
    assert reached.min().item() == t - rf + 1 and reached.max().item() == t


def test_tcn_trains_generates_and_reloads(sine, tmp_path):
    model = SoundModel.from_preset("sine", cell="tcn", hidden_size=16)
    history = model.fit(sine, sample_rate=SR, epochs=6, progress=False, device="cpu")
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert isinstance(model.network.rnn, TemporalConvNet)
    audio = model.generate(seconds=0.5, seed=2)
    assert audio.shape == (SR // 2,) and torch.isfinite(audio).all()
    model.save(tmp_path / "tcn.pt")
    data = torch.load(tmp_path / "tcn.pt", weights_only=True)
    assert data["config"]["cell"] == "tcn"
    again = SoundModel.load(tmp_path / "tcn.pt", device="cpu")
    assert torch.equal(again.generate(seconds=0.5, seed=2), audio)


def test_bad_cell_names_the_choices():
    with pytest.raises(PvrnnError, match=r"cell='transformer'.*'tcn'"):
        SoundModel(cell="transformer")
    with pytest.raises(PvrnnError, match="batch_first"):
        TemporalConvNet(4, 8, batch_first=False)


def test_cli_trains_a_tcn(tmp_path):
    pvrnn.save_audio(tmp_path / "sine.wav", pvrnn.examples.sine(440.0, 1.0, SR), SR)
    result = subprocess.run(
        [sys.executable, "-m", "pvrnn.cli", "train", "sine.wav", "-o", "tcn.pt", "--preset",
         "sine", "--epochs", "2", "--hidden-size", "8", "--cell", "tcn"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PVRNN_PROGRESS="0", OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert SoundModel.load(tmp_path / "tcn.pt", device="cpu").config.cell == "tcn"
