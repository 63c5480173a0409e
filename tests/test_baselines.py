"""Sample-level baselines: mu-law round trip, step path == full forward, they learn."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError
from pvrnn.baselines import (
    SampleRNN,
    SampleWaveNet,
    fit_samples,
    generate_samples,
    mu_law_decode,
    mu_law_encode,
)
from pvrnn.baselines.train import UNIFORM_NATS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mu_law_round_trip_is_exact_on_codes_and_within_a_step_on_audio():
    codes = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(codes)), codes)
    x = torch.linspace(-1, 1, 20001)
    q = mu_law_encode(x)
    assert q.min() == 0 and q.max() == 255 and q[10000] in (127, 128)
    # rounding is to the nearest level on the companded axis: half a level step there
    def compand(v):
        return torch.sign(v) * torch.log1p(255 * v.abs()) / math.log(256)

    error = (compand(mu_law_decode(q).double()) - compand(x.double())).abs()
    assert error.max() <= 1 / 255 + 1e-6
    levels = mu_law_decode(torch.arange(256)).double()
    # small signals get fine levels: near zero the step is ~ 2 / 255 / (255 / ln 256)
    assert float(torch.diff(levels)[127]) < 2e-4 * math.e


def test_mu_law_bad_input_is_refused():
    with pytest.raises(PvrnnError, match="audio.*\\[-1, 1\\]"):
        mu_law_encode(torch.tensor([0.5, 1.5]))
    with pytest.raises(PvrnnError, match="codes"):
        mu_law_decode(torch.tensor([0, 256]))
    with pytest.raises(PvrnnError, match="codes"):
        mu_law_decode(torch.tensor([0.5]))


@pytest.mark.parametrize("kind", ["wavenet", "samplernn"])
def test_generation_steps_equal_the_full_forward(kind):
    torch.manual_seed(0)
    codes = torch.randint(256, (2, 200))
    p, n = 64, 70  # SampleRNN: several new frames; WaveNet: rings wrap (context 31)
    if kind == "wavenet":
        net = SampleWaveNet(channels=16, cycles=1, depth=5).eval()
        full, _ = net(codes[:, : p + n - 1])
        reference = full[:, p - 1 :]
    else:
        net = SampleRNN(frame_size=8, hidden_size=32, embedding=8).eval()
        full, _ = net(codes[:, : p + n + 2])  # T a multiple of frame_size
        reference = full[:, p - 8 : p - 8 + n]
    stepped = net.generate(codes[:, :p], n, teacher=codes[:, p : p + n])
    torch.testing.assert_close(stepped, reference, atol=1e-5, rtol=1e-5)


def test_samplernn_state_carries_across_chunks():
    torch.manual_seed(0)
    net = SampleRNN(frame_size=4, hidden_size=16, embedding=4).eval()
    codes = torch.randint(256, (3, 4 + 64))
    whole, _ = net(codes)
    first, state = net(codes[:, : 4 + 32])
    second, _ = net(codes[:, 32:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


@pytest.fixture(scope="module")
def piano():
    audio, rate = pvrnn.examples.load("piano", sample_rate=16000)
    assert rate == 16000
    return audio[:6000]


@pytest.mark.parametrize("kind", ["wavenet", "samplernn"])
def test_baselines_learn_below_a_uniform_guess(piano, kind):
    torch.manual_seed(0)
    net = (SampleWaveNet(channels=16, cycles=1, depth=5) if kind == "wavenet"
           else SampleRNN(frame_size=8, hidden_size=32, embedding=8))
    history = fit_samples(net, piano, steps=60, crop=256, batch_size=8, every=20)
    assert history["step"] == [20, 40, 60]
    assert history["loss"][-1] < history["loss"][0] < UNIFORM_NATS + 0.05
    assert history["loss"][-1] < UNIFORM_NATS - 0.4
    audio = generate_samples(net, piano[:256], 200, seed=1)
    assert audio.shape == (200,) and audio.abs().max() <= 1.0
    assert torch.equal(audio, generate_samples(net, piano[:256], 200, seed=1))


def test_fit_samples_needs_a_budget_and_enough_audio(piano):
    net = SampleRNN(frame_size=4, hidden_size=8, embedding=4)
    with pytest.raises(PvrnnError, match="steps"):
        fit_samples(net, piano)
    with pytest.raises(PvrnnError, match="audio"):
        fit_samples(net, piano[:100], steps=1, crop=256)
