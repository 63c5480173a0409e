"""pvrnn.plot: figures from audio and Frames, a clear error without matplotlib."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import pvrnn

pytest.importorskip("matplotlib")

from pvrnn import plot  # noqa: E402  (after the skip: the module itself needs no matplotlib)

SR = 44100


def tone(freq: float = 440.0, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


def test_importing_pvrnn_does_not_import_matplotlib():
    code = "import sys, pvrnn, pvrnn.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert out.stdout.decode().strip() == "False", out.stderr.decode()


def test_spectrogram_from_audio_and_frames(tmp_path):
    figure = plot.plot_spectrogram(tone(), SR, title="a4", db_range=60)
    ax = figure.axes[0]
    assert ax.get_title() == "a4" and ax.get_xlabel() == "time (s)"
    assert 1000 <= ax.get_ylim()[1] < 3000  # the axis stops a little above the content
    figure.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    frames = pvrnn.PhaseVocoder(sample_rate=SR).analyze(tone())
    assert plot.plot_spectrogram(frames, fmax=5000).axes[0].get_ylim()[1] == 5000


def test_instantaneous_frequency_points_sit_on_the_partial():
    figure = plot.plot_instantaneous_frequency(tone(440.0), SR, db_range=20)
    points = figure.axes[0].collections[0].get_offsets()
    assert len(points) > 0
    assert abs(float(torch.tensor(points[:, 1]).median()) - 440.0) < 1.0


def test_plot_frames_has_two_panels_and_draws_on_given_axes():
    frames = pvrnn.PhaseVocoder(n_fft=1024, hop_length=256, sample_rate=SR).analyze(tone())
    figure = plot.plot_frames(frames, title="tone")
    images = [ax for ax in figure.axes if ax.get_ylabel()]
    assert len(images) >= 2 and figure.get_suptitle() == "tone"
    other = plot.plot_spectrogram(tone(), SR)
    again = plot.plot_spectrogram(tone(220.0), SR, ax=other.axes[0], colorbar=False)
    assert again is other


def test_compare_spectrograms_both_call_forms():
    a, b = tone(440.0), tone(660.0, 0.8)
    figure = plot.compare_spectrograms([a, b], SR, titles=["a", "b"])
    titles = [ax.get_title() for ax in figure.axes]
    assert "a" in titles and "b" in titles
    figure = plot.compare_spectrograms(a, b, sample_rate=SR)
    assert len([ax for ax in figure.axes if ax.get_ylabel() == "frequency (Hz)"]) == 2


@pytest.mark.parametrize("call,match", [
    (lambda: plot.plot_spectrogram(tone()), "sample_rate=None"),
    (lambda: plot.plot_spectrogram(torch.zeros(2, 3, 4096), SR), "one sound"),
    (lambda: plot.plot_spectrogram(tone(), SR, db_range=0), "db_range=0"),
    (lambda: plot.compare_spectrograms([tone()], SR, titles=["a", "b"]), "titles="),
    (lambda: plot.compare_spectrograms([], SR), "at least one sound"),
])
def test_bad_input(call, match):
    with pytest.raises(pvrnn.PvrnnError, match=match):
        call()


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(pvrnn.PvrnnError, match=r"pip install pvrnn\[plot\]") as caught:
        plot.plot_spectrogram(tone(), SR)
    assert isinstance(caught.value, ImportError)  # `except ImportError` works too


def test_figures_join_pyplot_when_the_caller_uses_it():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plot.plot_spectrogram(tone(), SR)
    try:
        assert figure.number in plt.get_fignums()  # so plt.show() and notebooks display it
    finally:
        plt.close(figure)
