"""Frames: slicing keeps the phase, deltas invert, resets replace the running frame."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db

from pvrnn import FrameDeltas, Frames, PhaseVocoder, PvrnnError
from pvrnn.dsp.frames import integrate, wrap


@pytest.fixture(scope="module")
def analysed(clarinet):
    audio, rate = clarinet
    pv = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=rate)
    return pv, audio, pv.analyze(audio)


def assert_frames_close(a: Frames, b: Frames, atol_hz: float = 1e-3) -> None:
    torch.testing.assert_close(a.magnitude, b.magnitude, rtol=1e-5, atol=1e-5)
    assert (a.frequency.double() - b.frequency.double()).abs().max() < atol_hz


def test_frequency_is_bin_centre_plus_deviation(analysed):
    _, _, frames = analysed
    centres = torch.arange(frames.n_bins) * frames.sample_rate / frames.n_fft
    torch.testing.assert_close(frames.frequency, frames.deviation + centres.float())


def test_constructing_from_hz_round_trips(analysed):
    _, _, frames = analysed
    again = Frames(frames.magnitude, frames.frequency, sample_rate=frames.sample_rate,
                   n_fft=frames.n_fft, hop_length=frames.hop_length)
    torch.testing.assert_close(again.frequency, frames.frequency)


def test_slices_keep_the_phase(analysed):
    _, _, frames = analysed
    tail = frames[100:]
    assert tail.n_frames == frames.n_frames - 100
    difference = wrap(tail.phase() - frames.phase()[100:])
    assert difference.abs().max() < 1e-9
    assert frames[5].n_frames == 1
    torch.testing.assert_close(frames[-1].magnitude, frames.magnitude[-1:])


def test_slice_resynthesizes_its_segment(analysed):
    pv, audio, frames = analysed
    segment = pv.synthesize(frames[200:400])
    start = 200 * pv.hop_length
    reference = audio[start : start + segment.shape[-1]]
    # Away from the slice edges (where neighbouring frames are missing) the audio is exact.
    edge = pv.n_fft
    assert snr_db(reference[edge:-edge], segment[edge:-edge]) > 60.0


def test_bad_indices(analysed):
    _, _, frames = analysed
    with pytest.raises(PvrnnError, match="index="):
        frames[frames.n_frames]
    with pytest.raises(PvrnnError, match="step 1"):
        frames[::2]
    with pytest.raises(PvrnnError, match="index="):
        frames["a"]


def test_to_moves_and_casts(analysed, device):
    _, _, frames = analysed
    moved = frames.to(device)
    assert moved.device.type == device and moved.magnitude.dtype == torch.float32
    double = frames.to(torch.float64)
    assert double.frequency.dtype == torch.float64
    torch.testing.assert_close(double.frequency.float(), frames.frequency)


def test_to_keeps_a_float64_start_phase(device):
    # The start phase is an angle, not a feature: casting the frames to float32 (or moving
    # them) must not round it, or a long resynthesis starts off by float32 rounding.
    start = torch.tensor([0.1234567890123456789, -3.0000000001], dtype=torch.float64)
    frames = Frames(torch.ones(3, 2, dtype=torch.float64), deviation=torch.zeros(3, 2,
                    dtype=torch.float64), sample_rate=8000, n_fft=2, hop_length=1,
                    start_phase=start)
    for moved in (frames.to(torch.float32), frames.to(device, torch.float32),
                  frames.to(device=device, dtype=torch.float32),
                  frames.to(torch.zeros(1, dtype=torch.float32, device=device))):
        assert moved.magnitude.dtype == torch.float32
        assert moved.start_phase.dtype == torch.float64
        assert moved.start_phase.device.type == torch.device(device).type
        assert torch.equal(moved.start_phase.cpu(), start)
    assert frames.to(torch.float32).to(torch.float64).start_phase.dtype == torch.float64


def test_partials(analysed):
    _, _, frames = analysed
    low = frames.partials(20)
    assert low.shape == (frames.n_frames, 20)
    torch.testing.assert_close(low.frequency, frames.frequency[..., :20])
    with pytest.raises(PvrnnError, match="n_partials=300"):
        frames.partials(300)


def test_deltas_invert(analysed):
    pv, _, frames = analysed
    deltas = frames.deltas()
    assert isinstance(deltas, FrameDeltas) and deltas.n_frames == frames.n_frames - 1
    again = Frames.from_deltas(deltas, start=frames[0])
    assert again.n_frames == frames.n_frames
    assert_frames_close(again, frames, atol_hz=1e-2)  # float32 deltas over 1000 frames
    # The start frame's phase is carried, so the rebuilt frames resynthesize the sound.
    assert snr_db(pv.synthesize(frames), pv.synthesize(again)) > 50.0


def test_batched_deltas_invert():
    torch.manual_seed(1)
    pv = PhaseVocoder(n_fft=256, hop_length=64, sample_rate=8000)
    frames = pv.analyze(torch.randn(2, 3, 2048))
    again = Frames.from_deltas(frames.deltas(), start=frames[0])
    assert_frames_close(again, frames, atol_hz=1e-2)


def test_resets_replace_the_running_frame(analysed):
    _, _, frames = analysed
    every = 7
    truth = frames.partials(10)
    # Drifting deltas: the true ones plus a constant bias.
    deltas = truth.deltas()
    biased = FrameDeltas(deltas.magnitude + 0.5, deltas.frequency + 3.0, truth.sample_rate,
                         truth.n_fft, truth.hop_length)
    resets = truth.replace(magnitude=truth.magnitude[every::every],
                           deviation=truth.deviation[every::every], start_phase=None)
    drifting = Frames.from_deltas(biased, start=truth[0])
    reset = Frames.from_deltas(biased, start=truth[0], reset_every=every, reset_frames=resets)
    # At each reset the frame is the reset frame exactly ...
    torch.testing.assert_close(reset.magnitude[every::every], resets.magnitude)
    # ... and the drift never exceeds what accumulates within one period.
    drift_free = (reset.frequency - truth.frequency).abs().max()
    assert drift_free <= 3.0 * (every - 1) + 1e-3
    assert (drifting.frequency - truth.frequency).abs().max() > 100 * 3.0
    # Without bias, resetting to the true frames reproduces the frames.
    exact = Frames.from_deltas(deltas, start=truth[0], reset_every=every, reset_frames=resets)
    assert_frames_close(exact, truth)


def test_resets_default_to_the_start_frame():
    ones = torch.ones(1, 12, 3)
    deltas = FrameDeltas(ones[0], ones[0], 100.0, 8, 2)
    start = Frames(torch.zeros(1, 3), deviation=torch.zeros(1, 3), sample_rate=100.0, n_fft=8,
                   hop_length=2)
    out = Frames.from_deltas(deltas, start=start, reset_every=4)
    expected = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0.0])
    torch.testing.assert_close(out.magnitude[:, 0], expected)


def test_integrate_matches_a_loop():
    torch.manual_seed(0)
    first, deltas, resets = torch.randn(2, 1, 4), torch.randn(2, 30, 4), torch.randn(2, 3, 4)
    out = integrate(first, deltas, 5, resets)
    running, expected, count = first[:, 0], [first[:, 0]], 0
    for t in range(1, 31):
        running = running + deltas[:, t - 1]
        if t % 5 == 0:
            running = resets[:, count % 3]
            count += 1
        expected.append(running)
    torch.testing.assert_close(out, torch.stack(expected, 1), rtol=1e-6, atol=1e-6)


def test_generated_frames_start_centred():
    # Frames with no start phase (as generated) give a clean partial, not cancelling bins.
    rate, n_fft, hop = 16000, 512, 128
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, sample_rate=rate)
    truth = pv.analyze(0.5 * torch.sin(2 * math.pi * 1000.0 * torch.arange(rate) / rate))
    # Skip the first frames: reflect padding at the edge makes their phase advance unclean.
    generated = truth[8:].replace(start_phase=None)
    out = pv.synthesize(generated)
    rms = out[n_fft:-n_fft].square().mean().sqrt()
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_bad_construction():
    m = torch.zeros(4, 10)
    with pytest.raises(PvrnnError, match="frequency="):
        Frames(m, sample_rate=100.0, n_fft=32, hop_length=8)
    with pytest.raises(PvrnnError, match="magnitude="):
        Frames(m, m, sample_rate=100.0, n_fft=8, hop_length=2)
    with pytest.raises(PvrnnError, match="frequency="):
        Frames(m, torch.zeros(4, 9), sample_rate=100.0, n_fft=32, hop_length=8)
    with pytest.raises(PvrnnError, match="hop_length=0"):
        Frames(m, m, sample_rate=100.0, n_fft=32, hop_length=0)
    with pytest.raises(PvrnnError, match="deltas="):
        Frames.from_deltas(m, start=Frames(m, m, sample_rate=100.0, n_fft=32, hop_length=8))
