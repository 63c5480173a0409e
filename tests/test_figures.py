"""README Results figures that have no other home, asserted close to what is measured.

``benchmarks/bench_accuracy.py`` prints the figures; these tests hold the library to them with
a margin for float and platform differences. (The vocoder round trip and the YIN accuracy are
asserted in ``tests/dsp/test_vocoder.py`` and ``tests/test_metrics.py``.)
"""

from __future__ import annotations

import pytest
import torch

import pvrnn
from pvrnn import metrics

SR = 44100

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sine_preset_audio() -> torch.Tensor:
    """The sine preset fitted on examples.sine() with its own epochs (~3 s), 3 s generated."""
    model = pvrnn.SoundModel.from_preset("sine")
    model.fit(pvrnn.examples.sine(), sample_rate=SR, progress=False, device="cpu", seed=0)
    return model.generate(seconds=3.0, variance_scale=1e-5, seed=0)


def test_sine_preset_pitch_is_440_to_a_tenth_of_a_hertz(sine_preset_audio):
    # measured: 439.996 to 440.003 Hz (0.02 cents off); 0.1 Hz is 0.4 cents
    f0 = metrics.estimate_f0(sine_preset_audio, SR)
    assert float(torch.isnan(f0).float().mean()) < 0.05
    assert abs(float(f0.nanmedian()) - 440.0) < 0.1


def test_sine_preset_level_wobble_under_one_percent(sine_preset_audio):
    # measured: 0.11 to 0.12 % (std / mean of the 2048-sample frame RMS, hop 512)
    rms = sine_preset_audio.double().unfold(-1, 2048, 512).square().mean(-1).sqrt()
    assert float(rms.std() / rms.mean()) < 0.01
    assert 0.3 < float(rms.mean()) < 0.4  # the sine's RMS is 0.5 / sqrt(2) = 0.354
