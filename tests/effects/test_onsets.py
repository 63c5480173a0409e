"""detect_onsets: one frame per click, nothing in steady sounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from effects_signals import SR, clicks, sine

from pvrnn import PvrnnError
from pvrnn.effects.onsets import detect_onsets


def test_detect_onsets_finds_each_click_and_nothing_in_steady_sounds():
    found = detect_onsets(clicks(2.0), SR)
    assert int(found.sum()) == len(np.arange(0.1, 1.95, 0.25))
    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    vibrato = torch.sin(2 * math.pi * 220 * t + 3 * torch.sin(2 * math.pi * 5 * t)).float()
    assert int(detect_onsets(vibrato, SR)[..., 2:].sum()) == 0
    noise = torch.randn(2 * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    assert int(detect_onsets(noise, SR)[..., 2:].sum()) == 0


def test_bad_threshold_names_the_argument():
    with pytest.raises(PvrnnError, match="threshold=0"):
        detect_onsets(sine(440.0, 0.2), SR, threshold=0)
