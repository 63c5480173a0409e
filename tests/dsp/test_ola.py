"""Overlap-add: the inverse STFT equals torch.istft, blocks add up to the whole, and the envelope
table gives the overlap-added squared window of any run of frames."""

from __future__ import annotations

import pytest
import torch

from pvrnn import PhaseVocoder, PvrnnError
from pvrnn.dsp import ola


@pytest.mark.parametrize(
    "n_fft,hop,win_length,window,dtype",
    [
        (512, 128, None, "hann", torch.float32),
        (1000, 250, None, "hamming", torch.float64),  # n_fft no power of 2
        (1024, 150, 600, "blackman", torch.float32),  # hop no divisor of n_fft, short window
        (256, 256, None, "rectangular", torch.float32),  # no overlap at all
    ],
)
def test_overlap_add_matches_torch_istft(n_fft, hop, win_length, window, dtype):
    torch.manual_seed(0)
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window)
    audio = torch.randn(2, 9000, dtype=dtype)
    win = pv.window.to(dtype)
    spec = torch.stft(audio, n_fft, hop, pv.win_length, win, center=True, return_complex=True)
    spec = spec * (1 + 0.5 * torch.rand(spec.shape, dtype=dtype))  # not a consistent STFT
    left = (n_fft - pv.win_length) // 2
    padded = torch.nn.functional.pad(win, (left, n_fft - pv.win_length - left))
    table = ola.envelope_table(padded, hop)
    n_frames = spec.shape[-1]
    for length in [(n_frames - 1) * hop, 9000, 8000]:
        expected = torch.istft(spec, n_fft, hop, pv.win_length, win, center=True, length=length)
        result = ola.inverse_stft(spec.transpose(-1, -2), padded, hop, length, table)
        assert result.dtype == dtype and result.shape == (2, length)
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5 * float(
            expected.abs().max()))
    # Fewer bins (partials): the missing upper ones are zero.
    low = spec.clone()
    low[:, 40:] = 0
    expected = torch.istft(low, n_fft, hop, pv.win_length, win, center=True, length=9000)
    result = ola.inverse_stft(spec[:, :40].transpose(-1, -2), padded, hop, 9000, table)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_synthesis_refuses_a_length_the_windows_do_not_cover():
    # A short window zero-padded to n_fft leaves the last samples under no window at all.
    pv = PhaseVocoder(n_fft=1024, hop_length=150, win_length=600, sample_rate=16000)
    audio = torch.randn(4000)
    frames = pv.analyze(audio)
    spec = torch.stft(audio, 1024, 150, 600, window=pv.window, return_complex=True)
    assert pv.synthesize(frames, length=4200).shape == (4200,)
    torch.istft(spec, 1024, 150, 600, window=pv.window, length=4200)
    with pytest.raises(RuntimeError, match="window overlap add min"):  # torch's own check
        torch.istft(spec, 1024, 150, 600, window=pv.window, length=4201)
    with pytest.raises(PvrnnError, match=r"length=4201: expected at most 4200 samples"):
        pv.synthesize(frames, length=4201)



@pytest.mark.parametrize("n_fft,hop", [(512, 128), (1000, 300), (256, 256)])
def test_overlap_add_in_blocks_equals_one_call(n_fft, hop):
    # The effects add blocks of frames into a longer output: the sum must not depend on the
    # blocking, and must equal the direct definition (frame f at samples f * hop ...).
    generator = torch.Generator().manual_seed(2)
    frames = torch.randn(3, 23, n_fft, dtype=torch.float64, generator=generator)
    whole = ola.overlap_add(frames, hop)
    assert whole.shape == (3, 22 * hop + n_fft)
    direct = torch.zeros_like(whole)
    for f in range(23):  # the definition, frame by frame (a test oracle)
        direct[:, f * hop : f * hop + n_fft] += frames[:, f]
    torch.testing.assert_close(whole, direct)
    blocked = torch.zeros_like(whole)
    for j0 in range(0, 23, 5):
        ola.overlap_add(frames[:, j0 : j0 + 5], hop, out=blocked, offset=j0 * hop)
    torch.testing.assert_close(blocked, direct)


@pytest.mark.parametrize("window", ["hann", "blackman", "rectangular"])
def test_envelope_is_the_overlap_added_squared_window(window):
    from pvrnn.dsp.windows import make_window

    n_fft, hop, n_frames = 1024, 256, 9
    w = make_window(window, n_fft).double()
    table = ola.envelope_table(w, hop)
    direct = ola.overlap_add(w.square().expand(1, n_frames, n_fft), hop)[0]
    torch.testing.assert_close(ola.envelope(table, n_frames, 0, direct.shape[0]), direct)
    torch.testing.assert_close(ola.envelope(table, n_frames, 300, 1700), direct[300:1700])
    assert ola.envelope_minimum(table, n_frames, 300, 1700) == pytest.approx(
        float(direct[300:1700].min()))
