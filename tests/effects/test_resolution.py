"""``time_stretch(n_fft="auto")``: the window chosen from the spacing of the partials."""

from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch

import pvrnn
from pvrnn import PvrnnError
from pvrnn.effects import resolution
from pvrnn.effects.resolution import choose_resolution, choose_resolution_from_reader

SR = 44100


def harmonic(f0: float, seconds: float = 2.0, rate: int = SR, partials: int = 12) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    tone = sum(torch.sin(2 * math.pi * f0 * h * t + h) / h for h in range(1, partials + 1)
               if f0 * h < rate / 2)
    return (0.2 * tone).float()


@pytest.mark.parametrize(("f0", "expected"), [
    (220.0, (1024, 256)),   # 4 * 44100 / 220 = 802 samples: the shortest window
    (100.0, (2048, 512)),   # 1764
    (50.0, (4096, 512)),    # 3528
    (20.0, (4096, 512)),    # 8820: capped at ~93 ms
])
def test_four_bins_between_neighbouring_partials(f0, expected):
    assert choose_resolution(harmonic(f0), SR) == expected


def test_a_chord_counts_the_distance_between_its_notes_partials():
    # Each note alone wants 1024 (partials 262 and 330 Hz apart); together their partials
    # interleave, some within 70 Hz (4 * 44100 / 70 = 2520: 4096).
    chord = harmonic(261.6) + harmonic(329.6)
    assert choose_resolution(harmonic(261.6), SR) == (1024, 256)
    assert choose_resolution(chord, SR) == (4096, 512)


def test_without_neighbouring_partials():
    t = torch.arange(2 * SR) / SR
    sweep = torch.sin(2 * math.pi * (200 * t + 400 * t * t))  # one moving partial
    assert choose_resolution(sweep, SR) == (1024, 256)
    assert choose_resolution(torch.zeros(2 * SR), SR) == (2048, 512)  # silence: the middle


def test_other_sample_rates_scale_the_windows_in_time():
    # 100 Hz at 22.05 kHz: 4 * 22050 / 100 = 882 samples -> 1024 (46 ms), hop capped at 256
    assert choose_resolution(harmonic(100.0, rate=22050), 22050) == (1024, 256)
    assert choose_resolution(harmonic(300.0, rate=22050), 22050) == (512, 128)


def test_auto_is_the_chosen_explicit_settings():
    tone = harmonic(220.0, seconds=1.0)
    auto = pvrnn.time_stretch(tone, SR, 1.5, n_fft="auto")
    explicit = pvrnn.time_stretch(tone, SR, 1.5, n_fft=1024, hop_length=256)
    assert torch.equal(auto, explicit)
    # a hop given with "auto" is kept
    kept = pvrnn.time_stretch(tone, SR, 1.5, n_fft="auto", hop_length=128)
    assert torch.equal(kept, pvrnn.time_stretch(tone, SR, 1.5, n_fft=1024, hop_length=128))
    # a sound shorter than the chosen window gets the longest one it holds
    low = harmonic(50.0, seconds=0.07)  # 3087 samples; 50 Hz wants 4096
    assert pvrnn.time_stretch(low, SR, 2.0, n_fft="auto").shape[-1] == 2 * low.shape[-1]


def test_auto_refuses_what_cannot_go_with_it():
    tone = harmonic(220.0, seconds=0.5)
    with pytest.raises(PvrnnError, match="n_fft='fast'"):
        pvrnn.time_stretch(tone, SR, 2.0, n_fft="fast")
    with pytest.raises(PvrnnError, match="window="):
        pvrnn.time_stretch(tone, SR, 2.0, n_fft="auto", window=torch.hann_window(1024))
    with pytest.raises(PvrnnError, match="factor="):
        pvrnn.time_stretch(tone, SR, torch.full((100,), 2.0), n_fft="auto")
    with pytest.raises(PvrnnError, match="audio="):
        pvrnn.time_stretch(torch.full((4096,), math.nan), SR, 2.0, n_fft="auto")
    # where the whole sound is not at hand, 'auto' is refused with the reason
    with pytest.raises(PvrnnError, match="n_fft='auto'.*whole sound"):
        pvrnn.Stretcher(SR, factor=2.0, n_fft="auto")
    with pytest.raises(PvrnnError, match="n_fft='auto'.*whole sound"):
        pvrnn.pitch_shift(tone, SR, 3.0, n_fft="auto")


def test_a_long_file_is_measured_on_the_same_excerpts_as_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(resolution, "EXCERPT_SECONDS", 0.5)  # "long" = over 3 s here
    rate = 16000
    audio = torch.cat([harmonic(300.0, 2.0, rate), harmonic(45.0, 2.0, rate)])
    path = tmp_path / "long.wav"
    sf.write(path, audio.numpy(), rate, subtype="FLOAT")
    with pvrnn.io.AudioReader(path) as reader:
        from_file = choose_resolution_from_reader(reader)
        first = next(iter(reader.blocks(1000)))  # the reader still reads from the start
    assert from_file == choose_resolution(audio, rate)
    torch.testing.assert_close(first[0], audio[:1000])


def test_excerpts_of_an_hour_end_at_the_last_sample():
    """Excerpt starts in integers: a float32 linspace put the last one 8 samples short (the
    one-hour streaming benchmark's CLI run failed on it)."""
    length = 3600 * SR + 123
    n = int(resolution.EXCERPT_SECONDS * SR)
    starts = resolution._starts(length, SR)
    assert len(starts) == resolution.EXCERPTS and starts[0] == 0
    assert starts[-1] + n == length
    assert all(b > a for a, b in zip(starts, starts[1:]))
