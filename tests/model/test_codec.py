"""FrameCodec: normalisation, exact inversion in both modes and scalings, state, bad input."""

from __future__ import annotations

import pytest
import torch

from pvrnn import FrameCodec, Frames, PhaseVocoder, PvrnnError


@pytest.fixture(scope="module")
def frames(clarinet):
    audio, rate = clarinet
    return PhaseVocoder(n_fft=512, hop_length=128, sample_rate=rate).analyze(audio)


MODES = [(mode, scale) for mode in ("absolute", "delta") for scale in ("linear", "log")]


@pytest.mark.parametrize("mode,scale", MODES)
def test_features_are_normalised(frames, mode, scale):
    codec = FrameCodec(n_partials=20, mode=mode, magnitude=scale).fit(frames)
    x = codec.encode(frames)
    rows = frames.n_frames - (mode == "delta")
    assert x.shape == (rows, 40) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(0), torch.zeros(40), atol=1e-4, rtol=0)
    assert ((x.std(0, unbiased=False) - 1).abs() < 1e-3).all()


@pytest.mark.parametrize("mode,scale", MODES)
def test_decode_inverts_encode(frames, mode, scale):
    codec = FrameCodec(n_partials=20, mode=mode, magnitude=scale).fit(frames)
    decoded = codec.decode(codec.encode(frames), start=frames[0])
    truth = frames.partials(20)[1:] if mode == "delta" else frames.partials(20)
    assert decoded.shape == truth.shape
    peak = float(truth.magnitude.max())
    assert (decoded.magnitude - truth.magnitude).abs().max() < 1e-5 * peak
    assert (decoded.frequency - truth.frequency).abs().max() < 1e-2  # Hz


def test_delta_decode_continues_the_phase(frames):
    codec = FrameCodec(n_partials=20, mode="delta").fit(frames)
    decoded = codec.decode(codec.encode(frames[100:]), start=frames[100])
    truth = frames.partials(20)[101:]
    difference = torch.remainder(decoded.phase() - truth.phase() + torch.pi, 2 * torch.pi)
    assert (difference - torch.pi).abs().max() < 1e-2


def test_decode_with_resets(frames):
    codec = FrameCodec(n_partials=8, mode="delta").fit(frames)
    x = codec.encode(frames)
    drifting = x + 0.05  # a biased model
    resets = frames.partials(8)[500]
    out = codec.decode(drifting, start=frames[0], reset_every=25, reset_frames=resets)
    free = codec.decode(drifting, start=frames[0])
    # Decoded row i is frame i + 1 after start: resets land on rows 24, 49, ...
    torch.testing.assert_close(out.magnitude[24::25], resets.magnitude.expand(41, 8))
    truth = frames.partials(8)[1:]
    error = (out.frequency - truth.frequency).abs().max()
    assert error < (free.frequency - truth.frequency).abs().max()


def test_fit_pools_many_sounds(frames):
    a, b = frames[:500], frames[500:]
    pooled = FrameCodec(n_partials=10, mode="absolute").fit([a, b])
    whole = FrameCodec(n_partials=10, mode="absolute").fit(frames)
    torch.testing.assert_close(pooled.mean, whole.mean)
    torch.testing.assert_close(pooled.std, whole.std)


def test_constant_features_do_not_blow_up():
    magnitude = torch.ones(50, 5)
    magnitude[:, 0] = torch.linspace(0, 1, 50)
    frames = Frames(magnitude, deviation=torch.zeros(50, 5), sample_rate=1000.0, n_fft=8,
                    hop_length=2)
    x = FrameCodec(n_partials=5, mode="absolute").fit(frames).encode(frames)
    assert torch.isfinite(x).all() and x.abs().max() < 10


@pytest.mark.parametrize("mode,scale", MODES)
def test_state_dict_round_trip(frames, mode, scale):
    codec = FrameCodec(n_partials=12, mode=mode, magnitude=scale).fit(frames)
    fresh = FrameCodec(n_partials=12, mode=mode, magnitude=scale)
    fresh.load_state_dict(codec.state_dict())
    assert fresh.fitted and fresh.analysis == codec.analysis
    torch.testing.assert_close(fresh.encode(frames), codec.encode(frames), rtol=0, atol=0)


def test_mismatched_state_is_refused(frames):
    state = FrameCodec(n_partials=12, mode="delta").fit(frames).state_dict()
    with pytest.raises(PvrnnError, match="mode='delta'"):
        FrameCodec(n_partials=12, mode="absolute").load_state_dict(state)
    with pytest.raises(PvrnnError, match="n_partials=12"):
        FrameCodec(n_partials=10, mode="delta").load_state_dict(state)


def test_bad_input(frames):
    with pytest.raises(PvrnnError, match="mode='deltas'"):
        FrameCodec(n_partials=4, mode="deltas")
    with pytest.raises(PvrnnError, match="magnitude='db'"):
        FrameCodec(n_partials=4, magnitude="db")
    with pytest.raises(PvrnnError, match="n_partials=0"):
        FrameCodec(n_partials=0)
    with pytest.raises(PvrnnError, match="n_partials=300"):
        FrameCodec(n_partials=300).fit(frames)
    with pytest.raises(PvrnnError, match="not fitted"):
        FrameCodec(n_partials=4).encode(frames)
    codec = FrameCodec(n_partials=4, mode="delta").fit(frames)
    other = PhaseVocoder(n_fft=1024, hop_length=256, sample_rate=44100).analyze(torch.zeros(4096))
    with pytest.raises(PvrnnError, match="frames.n_fft=1024"):
        codec.encode(other)
    with pytest.raises(PvrnnError, match="features="):
        codec.decode(torch.zeros(10, 7), start=frames[0])
    with pytest.raises(PvrnnError, match="start=None"):
        codec.decode(torch.zeros(10, 8))
    with pytest.raises(PvrnnError, match="frames="):
        codec.fit([])
