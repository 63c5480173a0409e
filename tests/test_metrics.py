"""pvrnn.metrics against signals whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pvrnn import PhaseVocoder, PvrnnError, metrics
from pvrnn.examples import harmonic, sine

SR = 44100
HALF_DB = 20 * math.log10(0.5)  # -6.0206 dB


def noise(n: int = SR // 2, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype)


def cents(f0: torch.Tensor, hz: float) -> torch.Tensor:
    return 1200 * torch.log2(f0.double() / hz)


# -- spectral convergence ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_sc_of_scaled_estimate_is_exact(dtype, tol):
    x = noise(dtype=dtype)
    assert float(metrics.spectral_convergence(x, 0.5 * x)) == pytest.approx(HALF_DB, abs=tol)
    # ||S - 1.5 S|| / ||S|| = 0.5 as well
    assert float(metrics.spectral_convergence(x, 1.5 * x)) == pytest.approx(HALF_DB, abs=tol)
    assert float(metrics.spectral_convergence(x, 0.9 * x)) == pytest.approx(-20.0, abs=tol)


def test_sc_identical_is_minus_inf_and_ignores_phase():
    x = sine(440.0, 0.2, SR)
    assert metrics.spectral_convergence(x, x).item() == -math.inf
    assert metrics.spectral_convergence(x, -x).item() == -math.inf  # magnitudes only


def test_sc_silent_reference():
    zero = torch.zeros(4096)
    assert metrics.spectral_convergence(zero, sine(440.0, 4096 / SR, SR)).item() == math.inf
    assert math.isnan(metrics.spectral_convergence(zero, zero).item())


def test_sc_batched_and_broadcast(device):
    x = torch.stack([noise(seed=1), noise(seed=2)]).to(device)
    scales = torch.tensor([0.5, 0.1, 0.9], device=device)[:, None, None]
    estimates = scales * x  # (3, 2, time)
    sc = metrics.spectral_convergence(x, estimates, n_fft=512, hop_length=128)
    assert sc.shape == (3, 2) and sc.device.type == device
    expected = 20 * torch.log10(1 - scales[:, 0, 0].double()).cpu()
    torch.testing.assert_close(sc.double().cpu(), expected[:, None].expand(3, 2), atol=1e-4, rtol=0)
    one = metrics.spectral_convergence(x[1], estimates[2, 1], n_fft=512, hop_length=128)
    torch.testing.assert_close(one, sc[2, 1], atol=1e-5, rtol=0)


def test_sc_against_numpy_reference():
    x, y = noise(4000, seed=3).double(), noise(4000, seed=4).double()

    def mag(a):
        padded = np.pad(a.numpy(), 256)
        frames = np.lib.stride_tricks.sliding_window_view(padded, 512)[::128]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
        return np.abs(np.fft.rfft(frames * window, axis=-1))

    ref, est = mag(x), mag(x + y)
    expected = 20 * np.log10(np.linalg.norm(ref - est) / np.linalg.norm(ref))
    got = metrics.spectral_convergence(x, x + y, n_fft=512, hop_length=128)
    assert float(got) == pytest.approx(expected, abs=1e-9)


# -- log-spectral distance ---------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.5, 2.0, 0.1])
def test_lsd_of_scaled_estimate_is_exact(scale):
    x = noise()
    lsd = metrics.log_spectral_distance(x, scale * x)
    assert float(lsd) == pytest.approx(abs(20 * math.log10(scale)), abs=1e-3)


def test_lsd_identical_is_zero_and_floor_matters():
    x = sine(440.0, 0.2, SR)
    assert metrics.log_spectral_distance(x, x).item() == 0.0
    # A sine's far bins sit below the -100 dB floor: halving it moves only the bins above.
    floored = metrics.log_spectral_distance(x, 0.5 * x)
    assert 0.0 < float(floored) < -HALF_DB
    unfloored = metrics.log_spectral_distance(x, 0.5 * x, floor_db=None)
    assert float(unfloored) == pytest.approx(-HALF_DB, abs=0.05)


def test_lsd_silence_does_not_dominate():
    x = torch.cat([torch.zeros(SR // 4), noise(SR // 4)])
    y = x.clone()
    y[: SR // 4] = 1e-9 * noise(SR // 4, seed=7)  # -140 dB "noise" where the reference is silent
    assert float(metrics.log_spectral_distance(x, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(metrics.log_spectral_distance(x, y, floor_db=None)) > 50


def test_lsd_batched(device):
    x = torch.stack([noise(seed=1), noise(seed=2)]).to(device)
    y = torch.stack([0.5 * x[0], 0.1 * x[1]])
    lsd = metrics.log_spectral_distance(x, y, n_fft=1024, hop_length=256)
    assert lsd.shape == (2,) and lsd.device.type == device
    torch.testing.assert_close(lsd.cpu(), torch.tensor([6.0206, 20.0]), atol=2e-3, rtol=0)


# -- bad input to the comparisons --------------------------------------------------------------
@pytest.mark.parametrize("fn", [metrics.spectral_convergence, metrics.log_spectral_distance])
@pytest.mark.parametrize("ref, est, kwargs, match", [
    (torch.zeros(100), torch.zeros(90), {}, r"has 100 samples but estimate has 90.*trim"),
    (torch.zeros(0), torch.zeros(0), {}, "reference=.*non-empty"),
    (torch.zeros(10, dtype=torch.int32), torch.zeros(10), {}, "reference=.*floating"),
    (torch.zeros(10), torch.tensor([0.0] * 9 + [math.nan]), {}, "estimate=.*NaN"),
    (torch.zeros(2, 10), torch.zeros(3, 10), {}, "broadcast"),
    (torch.zeros(10), torch.zeros(10), {"n_fft": 0}, "n_fft="),
    (torch.zeros(10), torch.zeros(10), {"n_fft": 256, "hop_length": 512}, "hop_length="),
])
def test_comparison_bad_input(fn, ref, est, kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        fn(ref, est, **kwargs)


@pytest.mark.parametrize("floor_db", [3.0, math.nan, "low"])
def test_lsd_bad_floor(floor_db):
    with pytest.raises(PvrnnError, match="floor_db="):
        metrics.log_spectral_distance(noise(), noise(), floor_db=floor_db)


# -- f0 ----------------------------------------------------------------------------------------
F0S = [55.0, 110.0, 261.63, 440.0, 987.77]


@pytest.mark.parametrize("f0", F0S)
@pytest.mark.parametrize("tone", ["sine", "harmonic"])
def test_f0_of_clean_tones_to_hundredths_of_a_cent(tone, f0):
    # benchmarks/bench_accuracy.py prints the measured worst errors (README Results): sines
    # <= 0.016 cents, 12-harmonic tones <= 0.14 cents up to 440 Hz and 0.73 cents at 988 Hz.
    x = sine(f0, 0.5, SR) if tone == "sine" else harmonic(f0, 0.5, SR, n_harmonics=12)
    est = metrics.estimate_f0(x, SR)
    assert est.shape == (1 + x.shape[-1] // 512,) and est.dtype == torch.float32
    inner = est[3:-3]  # frames whose window lies inside the tone
    assert not torch.isnan(inner).any()
    limit = 0.05 if tone == "sine" else (0.25 if f0 <= 440.0 else 1.0)
    assert float(cents(inner, f0).abs().max()) < limit


def test_f0_frames_line_up_with_the_vocoder():
    for n in (4096, 4097, 5000, 5119, 5120):
        x = sine(440.0, n / SR, SR)
        frames = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=SR).analyze(x)
        assert metrics.estimate_f0(x, SR).shape[-1] == frames.n_frames == 1 + n // 512


def test_f0_silence_and_noise_are_unvoiced():
    assert torch.isnan(metrics.estimate_f0(torch.zeros(SR // 2), SR)).all()
    assert torch.isnan(metrics.estimate_f0(noise(), SR)).all()


def test_f0_two_notes_in_the_right_frames():
    x = torch.cat([sine(220.0, 0.5, SR), sine(330.0, 0.5, SR)])
    est = metrics.estimate_f0(x, SR)
    boundary = (SR // 2) / 512  # frame index of the change, ~43.07
    first, second = est[2: int(boundary) - 2], est[int(boundary) + 3: -3]
    assert float(cents(first, 220.0).abs().max()) < 2.0
    assert float(cents(second, 330.0).abs().max()) < 2.0


def test_f0_batched_matches_items(device):
    items = [sine(220.0, 0.3, SR), harmonic(330.0, 0.3, SR), noise(int(0.3 * SR))]
    batch = torch.stack(items).reshape(3, 1, -1).to(device)
    est = metrics.estimate_f0(batch, SR)
    assert est.shape == (3, 1, 1 + batch.shape[-1] // 512) and est.device.type == device
    for i, item in enumerate(items):
        torch.testing.assert_close(est[i, 0].cpu(), metrics.estimate_f0(item, SR),
                                   equal_nan=True, atol=1e-3, rtol=0)


def test_f0_float64_and_options():
    x = sine(440.0, 0.3, 16000, dtype=torch.float64)
    est = metrics.estimate_f0(x, 16000, hop_length=160, frame_length=1024, fmin=40.0, fmax=1000.0)
    assert est.dtype == torch.float64 and est.shape == (1 + x.shape[-1] // 160,)
    assert float(cents(est[4:-4], 440.0).abs().max()) < 0.5
    short = metrics.estimate_f0(sine(440.0, 100 / SR, SR), SR)  # shorter than a frame
    assert short.shape == (1,)


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 0}, "sample_rate="),
    ({"hop_length": 0}, "hop_length="),
    ({"frame_length": 4}, "frame_length="),
    ({"fmin": 20.0}, r"fmin=20.0: .*frame_length >= 4412"),
    ({"fmin": 500.0, "fmax": 400.0}, "fmax="),
    ({"fmax": 30000.0}, r"fmax=.*sample_rate / 2"),
    ({"threshold": 0.0}, "threshold="),
    ({"threshold": 1.5}, "threshold="),
    ({"win_length": 2047}, "win_length="),
])
def test_f0_bad_settings(kwargs, match):
    kwargs = {"sample_rate": SR, **kwargs}
    with pytest.raises(PvrnnError, match=match):
        metrics.estimate_f0(sine(440.0, 0.1, SR), **kwargs)


@pytest.mark.parametrize("audio, match", [
    (torch.zeros(0), "non-empty"),
    (torch.zeros(10, dtype=torch.int16), "floating"),
    (torch.tensor([0.0, math.inf]), "NaN or inf"),
    ([0.0, 1.0], "torch.Tensor"),
])
def test_f0_bad_audio(audio, match):
    with pytest.raises(PvrnnError, match=f"audio=.*{match}"):
        metrics.estimate_f0(audio, SR)


# -- pitch drift -------------------------------------------------------------------------------
def glide(f_start: float, total_cents: float, seconds: float, rate: int = SR) -> torch.Tensor:
    """A sine rising linearly in cents: f(t) = f_start * 2**(total_cents * t / seconds / 1200)."""
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    k = total_cents * math.log(2) / (1200 * seconds)
    cycles = f_start * torch.expm1(k * t) / k  # integral of f(t) dt
    return (0.5 * torch.sin(2 * math.pi * torch.remainder(cycles, 1.0))).float()


def test_drift_of_a_glide():
    seconds, total = 1.0, 100.0
    x = glide(440.0, total, seconds)
    drift = metrics.pitch_drift_cents(x, SR, reference=440.0)
    t = torch.arange(drift.shape[-1], dtype=torch.float64) * 512 / SR
    expected = total * t / seconds
    inner = slice(3, -3)
    assert not torch.isnan(drift[inner]).any()
    assert float((drift[inner].double() - expected[inner]).abs().max()) < 2.0
    # default reference: the median f0, i.e. the glide's midpoint
    centred = metrics.pitch_drift_cents(x, SR)
    assert float(centred[inner].nanmedian()) == pytest.approx(0.0, abs=1e-6)
    spread = float(centred[inner].max() - centred[inner].min())
    assert spread == pytest.approx(total * (drift.shape[-1] - 7) * 512 / SR / seconds, abs=2.0)


def test_drift_of_a_steady_tone_is_zero():
    x = sine(261.63 * 2 ** (7 / 1200), 0.3, SR)
    drift = metrics.pitch_drift_cents(x, SR, reference=261.63)
    assert float((drift[3:-3] - 7.0).abs().max()) < 0.5


def test_drift_reference_tensor_and_unvoiced():
    x = torch.stack([sine(220.0, 0.2, SR), torch.zeros(int(0.2 * SR))])
    drift = metrics.pitch_drift_cents(x, SR, reference=torch.tensor([220.0, 100.0]))
    assert drift.shape == (2, 1 + x.shape[-1] // 512)
    assert float(drift[0, 3:-3].abs().max()) < 0.5
    assert torch.isnan(drift[1]).all()
    assert torch.isnan(metrics.pitch_drift_cents(x[1], SR)).all()  # no voiced frame at all


@pytest.mark.parametrize("reference, match", [
    (0.0, "reference="),
    (-440.0, "reference="),
    (torch.tensor([440.0, 0.0]), "reference="),
    (torch.tensor([440.0, 220.0, 110.0]), "broadcastable"),
])
def test_drift_bad_reference(reference, match):
    x = torch.stack([sine(220.0, 0.1, SR), sine(330.0, 0.1, SR)])
    with pytest.raises(PvrnnError, match=match):
        metrics.pitch_drift_cents(x, SR, reference=reference)
