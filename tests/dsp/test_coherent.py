"""pvrnn.dsp.coherent: phase locking of generated frames."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import Frames, PhaseVocoder, PvrnnError
from pvrnn.dsp.coherent import _chase, lock_phases, peak_owners
from pvrnn.metrics import consistency, estimate_f0


def _chase_loop(pointer, step, root):
    """Reference: the recurrence one frame at a time."""
    value = root.clone()
    out = []
    for t in range(pointer.shape[1]):
        value = value.gather(1, pointer[:, t]) + step[:, t]
        out.append(value)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("n_frames", [1, 2, 7, 64, 100])
def test_chase_equals_the_sequential_recurrence(n_frames):
    g = torch.Generator().manual_seed(n_frames)
    pointer = torch.randint(0, 9, (3, n_frames, 9), generator=g)
    step = torch.randn(3, n_frames, 9, generator=g, dtype=torch.float64)
    root = torch.randn(3, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(_chase(pointer, step, root), _chase_loop(pointer, step, root))


def test_peak_owners_split_regions_half_way():
    mag = torch.tensor([[0.3, 1.0, 5.0, 1.0, 0.5, 0.2, 0.5, 3.0, 0.1, 0.05]])
    owner = peak_owners(mag.unsqueeze(0))[0, 0]
    assert owner.tolist() == [2, 2, 2, 2, 2, 7, 7, 7, 7, 7]
    quiet = peak_owners(torch.tensor([[[1.0, 1e-6, 1e-6, 1e-6]]]), floor_db=-40.0)[0, 0]
    assert quiet.tolist() == [0, 1, 2, 3]  # below the floor: their own


def _jittered(name="clarinet", n_fft=1024, hop=256, spread=0.1, seed=0):
    audio, rate = pvrnn.examples.load(name)
    audio = audio[: rate * 2]
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, sample_rate=rate)
    frames = pv.analyze(audio)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames.shape, generator=g) * (rate / n_fft) * spread
    # what a per-bin model gives: each bin's frequency drawn on its own, no start phase
    return pv, frames.replace(deviation=frames.deviation + noise, start_phase=None)


@pytest.mark.parametrize("name", ["clarinet", "piano", "oboe"])
def test_locking_makes_jittered_frames_consistent(name):
    pv, frames = _jittered(name)
    plain = float(consistency(frames, pv.synthesize(frames)))
    locked = float(consistency(frames, pv.synthesize(lock_phases(frames))))
    assert plain > -13.0  # independent bins: incoherent
    assert locked < -20.0, (plain, locked)


def test_locked_sine_keeps_its_pitch_and_bins_move_together():
    rate, n_fft, hop = 16000, 512, 128
    f = 440.0 + 7.3
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, sample_rate=rate)
    frames = pv.analyze(pvrnn.examples.sine(f, seconds=1.0, sample_rate=rate))
    g = torch.Generator().manual_seed(1)
    noise = 3.0 * torch.randn(frames.shape, generator=g)  # Hz, independently per bin
    noisy = frames.replace(deviation=frames.deviation + noise, start_phase=None)
    locked = lock_phases(noisy)
    phase = locked.phase()[10:-10]
    k0 = round(f * n_fft / rate)
    # centred phase (phase + pi k) is the same in every bin of the main lobe
    centred = phase[:, k0 - 2:k0 + 3] + math.pi * torch.arange(k0 - 2, k0 + 3)
    spread = torch.remainder(centred - centred[:, 2:3] + math.pi, 2 * math.pi) - math.pi
    assert float(spread.abs().max()) < 1e-3
    audio = pv.synthesize(locked)
    f0 = estimate_f0(audio, rate, hop_length=hop)[10:-10]
    cents = 1200 * torch.log2(f0.nanmedian() / f)
    assert abs(float(cents)) < 2.0  # the noise averages out over the main lobe


def test_batch_equals_item_by_item():
    pv, frames = _jittered("clarinet")
    other = frames.replace(magnitude=frames.magnitude.flip(0), deviation=frames.deviation.flip(0))
    both = Frames(torch.stack([frames.magnitude, other.magnitude]),
                  deviation=torch.stack([frames.deviation, other.deviation]),
                  sample_rate=frames.sample_rate, n_fft=frames.n_fft, hop_length=frames.hop_length)
    locked = lock_phases(both).phase()
    torch.testing.assert_close(locked[0], lock_phases(frames).phase(), atol=1e-6, rtol=0)
    torch.testing.assert_close(locked[1], lock_phases(other).phase(), atol=1e-6, rtol=0)


def test_bad_input():
    _, frames = _jittered("clarinet")
    with pytest.raises(PvrnnError, match="frames"):
        lock_phases(frames.magnitude)
    with pytest.raises(PvrnnError, match="floor_db"):
        lock_phases(frames, floor_db=10.0)
    with pytest.raises(PvrnnError, match="floor_db"):
        lock_phases(frames, floor_db=float("nan"))
