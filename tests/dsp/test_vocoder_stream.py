"""The phase vocoder on blocks: frames from blocks cut anywhere equal PhaseVocoder.analyze, audio
from runs of frames equals PhaseVocoder.synthesize; misuse raises PvrnnError."""

from __future__ import annotations

import math

import pytest
import torch

from pvrnn import Frames, PhaseVocoder, PvrnnError
from pvrnn.dsp.vocoder_stream import AnalysisStream, SynthesisStream

SR = 44100


def _cuts(n: int, seed: int, most: int = 3000) -> list[tuple[int, int]]:
    """Consecutive blocks of 0 to ``most`` samples (some empty) covering ``[0, n)``."""
    g = torch.Generator().manual_seed(seed)
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + int(torch.randint(0, most, (1,), generator=g))))
    return list(zip(cuts[:-1], cuts[1:]))


def _signal(n: int, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / SR
    tone = torch.sin(2 * math.pi * 440 * t + 2 * torch.sin(2 * math.pi * 3 * t))
    noise = torch.randn(2, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (0.5 * tone + 0.05 * noise).to(dtype)


def _analyse(pv: PhaseVocoder, audio: torch.Tensor, seed: int):
    stream = AnalysisStream(pv, audio.shape[0], audio.shape[-1], dtype=audio.dtype,
                            device="cpu")
    g = torch.Generator().manual_seed(seed + 1)
    mags, devs, start = [], [], None
    for a, b in _cuts(audio.shape[-1], seed):
        stream.feed(audio[:, a:b])
        ready = stream.ready()
        while stream.done < ready:  # runs of random lengths
            stop = min(ready, stream.done + int(torch.randint(1, 40, (1,), generator=g)))
            magnitude, deviation, phase = stream.take(stop)
            start = phase if start is None else start
            mags.append(magnitude)
            devs.append(deviation)
    assert stream.ready() == stream.done == pv.n_frames(audio.shape[-1])
    return torch.cat(mags, dim=1), torch.cat(devs, dim=1), start


@pytest.mark.parametrize("n_fft,hop,n,dtype", [
    (2048, 512, 30000, torch.float32),
    (512, 200, 9001, torch.float64),  # a hop that does not divide n_fft, an odd length
    (256, 128, 256, torch.float32),  # exactly one window
])
def test_analysis_of_blocks_equals_analyze(n_fft, hop, n, dtype):
    pv = PhaseVocoder(n_fft, hop, sample_rate=SR)
    audio = _signal(n, dtype)
    whole = pv.analyze(audio)
    for seed in (0, 1):
        magnitude, deviation, start = _analyse(pv, audio, seed)
        assert magnitude.dtype == dtype and magnitude.shape == whole.magnitude.shape
        torch.testing.assert_close(magnitude, whole.magnitude, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(deviation, whole.deviation, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(start.to(torch.float64),
                                   whole.start_phase.to(torch.float64), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_synthesis_of_runs_equals_synthesize(dtype):
    pv = PhaseVocoder(1024, 256, sample_rate=SR)
    n = 40000
    frames = pv.analyze(_signal(n, dtype))
    g = torch.Generator().manual_seed(3)
    gain = (0.5 + torch.rand(frames.magnitude.shape, generator=g, dtype=torch.float64))
    frames = frames.replace(magnitude=frames.magnitude * gain.to(dtype))  # not consistent
    whole = pv.synthesize(frames, length=n)
    stream = SynthesisStream(pv, 2, n, dtype=dtype, device="cpu")
    pieces, f0 = [], 0
    while f0 < frames.n_frames:
        f1 = min(frames.n_frames, f0 + int(torch.randint(1, 30, (1,), generator=g)))
        part = frames[f0:f1]
        pieces.append(stream.add(part.magnitude, part.deviation,
                                 frames.start_phase if f0 == 0 else None))
        f0 = f1
    pieces.append(stream.finish())
    streamed = torch.cat(pieces, dim=1)
    assert streamed.dtype == dtype and streamed.shape == whole.shape == (2, n)
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(streamed, whole, rtol=0, atol=tol * float(whole.abs().max()))


def test_analysis_then_synthesis_of_blocks_is_the_input():
    pv = PhaseVocoder(2048, 512, sample_rate=SR)
    audio = _signal(50000)
    analysis = AnalysisStream(pv, 2, 50000, dtype=torch.float32, device="cpu")
    synthesis = SynthesisStream(pv, 2, 50000, dtype=torch.float32, device="cpu")
    pieces = []
    for a, b in _cuts(50000, 7, most=9000):
        analysis.feed(audio[:, a:b])
        if analysis.ready() > analysis.done:
            first = analysis.done == 0
            magnitude, deviation, phase = analysis.take(analysis.ready())
            pieces.append(synthesis.add(magnitude, deviation, phase if first else None))
    out = torch.cat([*pieces, synthesis.finish()], dim=1)
    assert out.shape == audio.shape
    torch.testing.assert_close(out, audio, rtol=0, atol=1e-4)


def test_misuse_raises():
    pv = PhaseVocoder(512, 128, sample_rate=SR)
    with pytest.raises(PvrnnError, match="vocoder="):
        AnalysisStream("hann", 1, 1000, dtype=torch.float32, device="cpu")
    with pytest.raises(PvrnnError, match="length=100: expected an integer >= 512"):
        SynthesisStream(pv, 1, 100, dtype=torch.float32, device="cpu")
    with pytest.raises(PvrnnError, match="vocoder.win_length=256"):
        AnalysisStream(PhaseVocoder(512, 128, win_length=256), 1, 1000, dtype=torch.float32,
                       device="cpu")
    gappy = torch.zeros(512)
    gappy[200:300] = 1.0  # its overlap-added square vanishes between frames at hop 256
    with pytest.raises(PvrnnError, match="hop_length=256"):
        SynthesisStream(PhaseVocoder(512, 256, window=gappy), 1, 2000, dtype=torch.float32,
                        device="cpu")
    analysis = AnalysisStream(pv, 1, 1000, dtype=torch.float32, device="cpu")
    analysis.feed(torch.zeros(1, 900))
    with pytest.raises(PvrnnError, match="stop=99: expected a frame in"):
        analysis.take(99)
    with pytest.raises(PvrnnError, match="1001 samples fed to a stream of 1000"):
        analysis.feed(torch.zeros(1, 101))
    synthesis = SynthesisStream(pv, 1, 1000, dtype=torch.float32, device="cpu")
    frames = Frames(torch.ones(1, 3, 257), deviation=torch.zeros(1, 3, 257), sample_rate=SR,
                    n_fft=512, hop_length=128)
    with pytest.raises(PvrnnError, match="start_phase=None"):
        synthesis.add(frames.magnitude, frames.deviation)
    synthesis.add(frames.magnitude, frames.deviation, torch.zeros(1, 257))
    with pytest.raises(PvrnnError, match="finish: 3 of 8 frames"):
        synthesis.finish()
    with pytest.raises(PvrnnError, match="at most 5 more frames"):
        synthesis.add(torch.ones(1, 6, 257), torch.zeros(1, 6, 257))
