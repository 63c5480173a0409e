"""`pvrnn demo` runs end to end (with a tiny training budget) and writes what it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_writes_audio_picture_model_and_summary(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "pvrnn.cli", "demo", "--out", str(out), "--epochs", "3",
         "--seconds", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in ("generated.wav", "original.wav", "model.pt", "spectrogram.png", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.txt").read_text()
    assert "timbre" in summary and "coherence" in summary and "vibrato" in summary
    assert "SoundModel()" in summary and "1025 bins" in summary  # the defaults, full band
    assert summary in result.stdout
    import pvrnn

    audio, rate = pvrnn.load_audio(out / "generated.wav")
    assert rate == 44100 and audio.shape[-1] == 44100


def test_demo_rejects_an_unknown_example(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pvrnn.cli", "demo", "--out", str(tmp_path), "--example", "bassoon"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "bassoon" in result.stderr and len(result.stderr.strip().splitlines()) == 1
