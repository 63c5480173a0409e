"""Windows: one registry for the vocoder and the effects, names and tensors alike."""

from __future__ import annotations

import math

import pytest
import torch

from pvrnn import PhaseVocoder, PvrnnError
from pvrnn.dsp.windows import COSINE_WINDOWS, make_window, resolve_window


@pytest.mark.parametrize("name,torch_window", [
    ("hann", torch.hann_window), ("hamming", torch.hamming_window),
    ("blackman", torch.blackman_window), ("rectangular", torch.ones), ("boxcar", torch.ones),
])
def test_named_windows_are_the_periodic_ones_torch_makes(name, torch_window):
    for n in (16, 1000, 2048):
        expected = torch_window(n, dtype=torch.float64)
        torch.testing.assert_close(resolve_window(name, n).values, expected, atol=1e-12, rtol=0)
        assert make_window(name, n).dtype == torch.float32


def test_a_tensor_window_is_kept_as_given():
    given = torch.rand(512, dtype=torch.float64)
    assert torch.equal(make_window(given, 512), given.float())
    resolved = resolve_window(given, 512)
    assert resolved.coefficients is None and torch.equal(resolved.values, given)


@pytest.mark.parametrize("name", sorted(COSINE_WINDOWS))
def test_derivative_is_the_analytic_one(name):
    # A named window's time derivative from its coefficients, against the spectral derivative
    # used for tensor windows: the two ways the effects get reassigned frequencies agree.
    n = 1024
    x = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    analytic = sum(-a * m * (2 * math.pi / n) * torch.sin(m * x)
                   for m, a in enumerate(COSINE_WINDOWS[name]))
    like = torch.zeros(1, dtype=torch.float64)
    derivative = resolve_window(resolve_window(name, n).values, n).derivative(like)
    torch.testing.assert_close(derivative, analytic + 0 * x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("window,match", [
    ("kaiser", "window='kaiser'"),
    (torch.ones(100), "window=tensor"),
    (torch.ones(2, 512), "window=tensor"),
    (torch.full((512,), math.nan), "finite"),
    (3, "window=3"),
])
def test_bad_windows_are_refused_the_same_way_everywhere(window, match):
    with pytest.raises(PvrnnError, match=match):
        resolve_window(window, 512)
    with pytest.raises(PvrnnError, match=match):
        PhaseVocoder(n_fft=512, window=window)
