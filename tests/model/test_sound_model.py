"""SoundModel: the blog's sine experiment, delta drift vs resets, generation, priming, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import Frames, PvrnnError, SoundModel, metrics

#: sine, sine_model, delta_model, tiny
pytest_plugins = ["model_fixtures"]

SR = 44100

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the blog's experiments ---------------------------------------------------------------------
def test_sine_preset_generates_a_steady_440(sine_model):
    audio = sine_model.generate(seconds=3.0, variance_scale=1e-5, seed=0)
    assert audio.shape == (3 * SR,) and audio.dtype == torch.float32
    cents = metrics.pitch_drift_cents(audio, SR, reference=440.0)
    voiced = cents[~cents.isnan()]
    assert voiced.numel() > 0.95 * cents.numel()
    assert abs(float(voiced.median())) < 20
    assert float(voiced.abs().max()) < 20
    rms = audio.unfold(-1, 2048, 512).square().mean(-1).sqrt()
    assert float(rms.std() / rms.mean()) < 0.10
    assert 0.25 < float(rms.mean()) < 0.45  # the sine's RMS is 0.5 / sqrt(2) = 0.354


def test_delta_mode_drifts_less_with_resets(delta_model, clarinet):
    audio, rate = clarinet
    f0 = float(metrics.estimate_f0(audio, rate).nanmedian())

    def drift(reset_every):
        y = delta_model.generate(seconds=3.0, variance_scale=1.0, reset_every=reset_every,
                                 seed=0, batch=4)
        cents = metrics.pitch_drift_cents(y, rate, reference=f0)
        return float(cents.abs().nanmean(-1).mean())  # mean |cents| over frames and variations

    free, reset = drift(None), drift(0.25)
    assert free > 3 * reset, (free, reset)


# -- generation ---------------------------------------------------------------------------------
def test_generation_shapes_and_determinism(sine_model):
    k = sine_model.config.n_partials
    one = sine_model.generate(seconds=0.25, seed=1)
    assert one.shape == (round(0.25 * SR),)
    many = sine_model.generate(seconds=0.25, seed=1, batch=3)
    assert many.shape == (3, round(0.25 * SR))
    assert torch.equal(sine_model.generate(seconds=0.25, seed=1), one)
    frames = sine_model.generate_frames(40, seed=2)
    assert isinstance(frames, Frames) and frames.shape == (40, k)
    assert sine_model.generate_frames(40, seed=2, batch=2).shape == (2, 40, k)
    a = sine_model.generate_frames(40, seed=2, variance_scale=1.0).magnitude
    b = sine_model.generate_frames(40, seed=3, variance_scale=1.0).magnitude
    assert not torch.equal(a, b)


def test_variance_scale_forms(sine_model):
    n = 30
    flat = sine_model.generate_frames(n, variance_scale=0.3, seed=0)
    tensor = sine_model.generate_frames(n, variance_scale=torch.full((n,), 0.3), seed=0)
    vector = sine_model.generate_frames(n, variance_scale=lambda t: 0.3 + 0 * t, seed=0)
    scalar = sine_model.generate_frames(n, variance_scale=lambda t: 0.3 + 0 * math.sin(t),
                                        seed=0)
    for other in (tensor, vector, scalar):
        torch.testing.assert_close(other.magnitude, flat.magnitude)
    per_item = sine_model.generate_frames(n, variance_scale=torch.full((2, n), 0.3), seed=0,
                                          batch=2)
    assert per_item.shape == (2, n, sine_model.config.n_partials)


def test_resets_draw_seeded_random_frames_from_the_middle(delta_model):
    every = 0.05  # seconds
    r = round(every * delta_model.frame_rate)
    middle = delta_model._reference[0]["middle_magnitude"][1:]

    def reset_frames(seed):
        frames = delta_model.generate_frames(200, reset_every=every, seed=seed)
        return frames.magnitude[r - 1 :: r]  # frames r, 2r, ... after the start

    a, b, c = reset_frames(0), reset_frames(0), reset_frames(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    difference = (a[:, None] - middle[None]).abs().amax(-1)  # (resets, candidates)
    assert float(difference.min(-1).values.max()) == 0.0  # each reset is a middle frame
    assert len({int(i) for i in difference.argmin(-1)}) > 3  # not one fixed frame


def test_rate_slows_the_change(delta_model):
    normal = delta_model.generate_frames(150, variance_scale=1.0, seed=0, rate=1.0)
    slow = delta_model.generate_frames(150, variance_scale=1.0, seed=0, rate=0.25)
    assert slow.shape == normal.shape

    def change(f):
        return float(torch.diff(f.deviation, dim=-2).abs().mean())

    assert change(slow) < 0.5 * change(normal)


def test_prime_on_other_audio_and_frames(sine_model):
    other = pvrnn.examples.sine(440.0, 1.0, SR, amplitude=0.3)
    audio = sine_model.generate(seconds=0.25, prime=other, variance_scale=0.0)
    assert torch.isfinite(audio).all()
    frames = sine_model.vocoder.analyze(other)
    again = sine_model.generate(seconds=0.25, prime=frames, variance_scale=0.0)
    assert torch.isfinite(again).all()
    assert sine_model.generate(seconds=0.1, prime=0).shape == (round(0.1 * SR),)


def test_priming_audio_is_analysed_as_training_sources_are(sine_model):
    # The edge frames of audio (windows reaching into the reflect padding) are left out of
    # training sources, so they must be left out of priming audio too.
    other = pvrnn.examples.sine(440.0, 1.0, SR, amplitude=0.3)
    frames = sine_model.vocoder.analyze(other)
    trimmed = frames[2 : frames.n_frames - 2]  # ceil(n_fft / (2 hop)) = 2 at each end
    a = sine_model.generate_frames(20, prime=other, variance_scale=0.5, seed=4)
    b = sine_model.generate_frames(20, prime=trimmed, variance_scale=0.5, seed=4)
    torch.testing.assert_close(a.magnitude, b.magnitude)
    torch.testing.assert_close(a.deviation, b.deviation)


@pytest.mark.parametrize("kwargs,match", [
    (dict(seconds=0.0), "seconds="),
    (dict(seconds=-1.0), "seconds="),
    (dict(seconds=float("nan")), "seconds="),
    (dict(variance_scale=-0.5), "variance_scale="),
    (dict(variance_scale=float("inf")), "variance_scale="),
    (dict(variance_scale=torch.tensor([1.0, -1.0])), "variance_scale="),
    (dict(variance_scale="loud"), "variance_scale="),
    (dict(variance_scale=lambda t: -t), "variance_scale="),
    (dict(reset_every=0.0), "reset_every="),
    (dict(reset_every=1e-5), "reset_every="),
    (dict(rate=0.0), "rate="),
    (dict(batch=0), "batch="),
    (dict(seed=-1), "seed="),
    (dict(temperature=0.0), "temperature="),
    (dict(component="argmax"), "component="),
    (dict(prime=5), "prime="),
    (dict(prime="clarinet.wav"), "prime="),
])
def test_bad_generation_arguments(sine_model, kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        sine_model.generate(**{"seconds": 0.1, **kwargs})


def test_unfitted():
    with pytest.raises(PvrnnError, match="not fitted"):
        SoundModel().generate(seconds=1.0)
    with pytest.raises(PvrnnError, match="not fitted"):
        SoundModel().save("never.pt")
    with pytest.raises(PvrnnError, match="device="):
        SoundModel().fit(torch.zeros(10), sample_rate=SR, device="tpu")
