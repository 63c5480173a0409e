"""PhaseVocoder: reconstruction, frequency accuracy against analytic signals, batching, devices."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db

import pvrnn
from pvrnn import PhaseVocoder, PvrnnError

SR = 44100


def sine(freq: float, seconds: float, rate: int = SR, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t)).to(dtype)


# -- reconstruction ----------------------------------------------------------------------------
def test_round_trip_60s_real_recording_float32(long_recording):
    audio, rate = long_recording
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=rate)
    again = pv.synthesize(pv.analyze(audio), length=audio.shape[-1])
    assert again.dtype == torch.float32
    # benchmarks/bench_accuracy.py measures 113.5-117.4 dB (README Results); 110 leaves margin
    assert snr_db(audio, again) >= 110.0


def test_round_trip_60s_real_recording_float64(long_recording):
    audio, rate = long_recording
    audio = audio.double()
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=rate)
    again = pv.synthesize(pv.analyze(audio), length=audio.shape[-1])
    assert again.dtype == torch.float64
    # benchmarks/bench_accuracy.py measures 216.9-220.2 dB (README Results)
    assert snr_db(audio, again) >= 200.0


def test_round_trip_long_steady_sine_float32():
    # A steady partial is the worst case for accumulated rounding: it is the same every frame.
    audio = sine(1234.567, 60.0)
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=SR)
    assert snr_db(audio, pv.synthesize(pv.analyze(audio), length=audio.shape[-1])) >= 60.0


@pytest.mark.parametrize("n_fft,hop,window", [(512, 128, "hann"), (1024, 256, "hamming"),
                                              (2048, 512, "blackman"), (1000, 250, "hann")])
def test_round_trip_settings(clarinet, n_fft, hop, window):
    audio, rate = clarinet
    pv = PhaseVocoder(n_fft=n_fft, hop_length=hop, window=window, sample_rate=rate)
    assert snr_db(audio, pv.synthesize(pv.analyze(audio), length=audio.shape[-1])) >= 60.0


def test_default_length_and_frame_count():
    pv = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR)
    frames = pv.analyze(sine(440, 0.5))
    assert frames.n_frames == pv.n_frames(int(0.5 * SR)) == 1 + int(0.5 * SR) // 128
    assert frames.shape == (frames.n_frames, 257)
    assert pv.synthesize(frames).shape == ((frames.n_frames - 1) * 128,)


# -- frequency against analytic signals -------------------------------------------------------
@pytest.mark.parametrize("freq", [440.0, 1000.3, 3333.3, 96.1])
def test_stationary_sine_between_bins_reads_true_frequency(freq):
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=SR)
    frames = pv.analyze(sine(freq, 2.0, dtype=torch.float64))
    middle = frames[10:-10]
    peak = int(middle.magnitude.mean(0).argmax())
    around = middle.frequency[:, peak - 1 : peak + 2]
    assert peak * SR / 2048 != pytest.approx(freq, abs=1.0)  # the sine is not on a bin centre
    assert (around - freq).abs().max() < 0.1


def test_float32_frequency_precision():
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=SR)
    frames = pv.analyze(sine(1000.3, 2.0))
    peak = int(frames.magnitude.mean(0).argmax())
    assert frames.frequency.dtype == torch.float32
    assert (frames.frequency[10:-10, peak] - 1000.3).abs().max() < 0.1


def test_chirp_is_followed():
    f0, f1, seconds, hop = 200.0, 2000.0, 3.0, 512
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    rate = (f1 - f0) / seconds
    chirp = 0.5 * torch.sin(2 * math.pi * (f0 * t + 0.5 * rate * t**2))
    pv = PhaseVocoder(n_fft=2048, hop_length=hop, sample_rate=SR)
    frames = pv.analyze(chirp.float())
    peak = frames.magnitude.argmax(-1, keepdim=True)
    measured = frames.frequency.gather(-1, peak).squeeze(-1).double()[5:-5]
    # The advance from frame t-1 to t is the mean frequency between their centres.
    centres = (torch.arange(frames.n_frames, dtype=torch.float64) - 0.5) * hop / SR
    expected = (f0 + rate * centres)[5:-5]
    assert (measured - expected).abs().max() < 2.0
    assert measured[-1] - measured[0] > 1600.0  # it really swept


# -- batching and devices --------------------------------------------------------------------
@pytest.mark.parametrize("batch", [(1,), (3,), (2, 3)])
def test_batched_equals_item_by_item(batch):
    torch.manual_seed(0)
    audio = torch.randn(*batch, 4096) * 0.1
    pv = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=16000)
    frames = pv.analyze(audio)
    out = pv.synthesize(frames, length=4096)
    assert frames.shape == (*batch, 33, 257)
    flat = audio.reshape(-1, 4096)
    for i in range(flat.shape[0]):
        single = pv.analyze(flat[i])
        index = torch.unravel_index(torch.tensor(i), batch)
        item = tuple(int(j) for j in index)
        torch.testing.assert_close(frames.magnitude[item], single.magnitude)
        torch.testing.assert_close(frames.frequency[item], single.frequency)
        torch.testing.assert_close(out[item], pv.synthesize(single, length=4096))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(clarinet):
    audio, rate = clarinet
    pv = PhaseVocoder(n_fft=2048, hop_length=512, sample_rate=rate)
    cpu = pv.analyze(audio)
    gpu_pv = pv.to("cuda")
    gpu = gpu_pv.analyze(audio.cuda())
    assert gpu.device.type == "cuda"
    loud = cpu.magnitude > 1e-3 * cpu.magnitude.max()
    torch.testing.assert_close(gpu.magnitude.cpu(), cpu.magnitude, rtol=1e-4, atol=1e-4)
    assert (gpu.frequency.cpu() - cpu.frequency)[loud].abs().max() < 0.05
    out = gpu_pv.synthesize(gpu, length=audio.shape[-1])
    assert out.device.type == "cuda"
    assert snr_db(audio, out) >= 60.0


def test_frames_follow_the_module_device(device, clarinet):
    audio, rate = clarinet
    pv = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=rate).to(device)
    frames = pv.analyze(audio.to(device))
    assert frames.device.type == device
    assert pv.synthesize(frames).device.type == device


# -- partials ----------------------------------------------------------------------------------
def test_partials_synthesize_low_passed():
    low, high = sine(300.0, 1.0), sine(8000.0, 1.0)
    pv = PhaseVocoder(n_fft=1024, hop_length=256, sample_rate=SR)
    frames = pv.analyze(low + high).partials(100)  # 100 bins ~ 4.3 kHz
    out = pv.synthesize(frames, length=SR)
    assert frames.n_bins == 100
    assert snr_db(low[2048:-2048], out[2048:-2048]) > 40.0


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_fft=0), "n_fft=0"),
        (dict(n_fft=-512), "n_fft=-512"),
        (dict(n_fft=512.0), "n_fft=512.0"),
        (dict(n_fft=512, hop_length=1024), "hop_length=1024"),
        (dict(n_fft=512, hop_length=0), "hop_length=0"),
        (dict(n_fft=512, win_length=600), "win_length=600"),
        (dict(n_fft=512, window="triangle"), "window='triangle'"),
        (dict(n_fft=512, window=torch.ones(100)), "window=tensor"),
        (dict(n_fft=512, sample_rate=0), "sample_rate=0"),
        (dict(n_fft=512, sample_rate=float("nan")), "sample_rate=nan"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        PhaseVocoder(**kwargs)


@pytest.mark.parametrize(
    "audio,match",
    [
        (torch.zeros(0), "0 samples"),
        (torch.zeros(100), "at least 512 samples"),
        (torch.tensor(1.0), "at least one dimension"),
        (torch.zeros(2, 0), "0 samples"),
        (torch.full((4096,), float("nan")), "NaN or inf"),
        (torch.tensor([0.0] * 4095 + [float("inf")]), "NaN or inf"),
        (torch.zeros(4096, dtype=torch.int16), "floating-point"),
        ([0.0] * 4096, "torch.Tensor"),
    ],
)
def test_bad_audio(audio, match):
    pv = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR)
    with pytest.raises(PvrnnError, match="audio=") as info:
        pv.analyze(audio)
    assert match in str(info.value)


def test_synthesis_refuses_frames_of_other_settings():
    frames = PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR).analyze(sine(440, 0.2))
    with pytest.raises(PvrnnError, match="frames.n_fft=512"):
        PhaseVocoder(n_fft=1024, hop_length=128, sample_rate=SR).synthesize(frames)
    with pytest.raises(PvrnnError, match="frames.hop_length=128"):
        PhaseVocoder(n_fft=512, hop_length=256, sample_rate=SR).synthesize(frames)
    with pytest.raises(PvrnnError, match="frames.sample_rate=44100"):
        PhaseVocoder(n_fft=512, hop_length=128, sample_rate=22050).synthesize(frames)
    with pytest.raises(PvrnnError, match="frames="):
        PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR).synthesize(torch.zeros(3, 257))


def test_hop_too_large_to_invert_is_explained():
    pv = PhaseVocoder(n_fft=512, hop_length=512, sample_rate=SR)
    frames = pv.analyze(sine(440, 0.2))  # analysis alone is fine
    with pytest.raises(PvrnnError, match="hop_length=512"):
        pv.synthesize(frames)


def test_error_is_a_value_error():
    assert issubclass(pvrnn.PvrnnError, ValueError)
