"""cross_synthesize: identity with itself, carrier pitch with modulator envelope, deltas, fits."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import snr_db
from effects_signals import SR, envelope_error_db, pitch_cents, sine, voice

import pvrnn
from pvrnn import PvrnnError


def test_cross_with_itself_is_the_identity(clarinet):
    audio, rate = clarinet
    audio = audio[: rate]
    spectral = pvrnn.cross_synthesize(audio, audio, rate, mode="spectral")
    deltas = pvrnn.cross_synthesize(audio, audio, rate, mode="deltas", reset_every=None)
    assert snr_db(audio, spectral) > 60
    assert snr_db(audio, deltas) > 40


def test_cross_spectral_takes_the_carriers_pitch_and_the_modulators_envelope():
    t = torch.arange(SR, dtype=torch.float64) / SR
    carrier = sum(torch.sin(2 * math.pi * 220 * h * t) / h for h in range(1, 25)).float() * 0.1
    modulator = voice(150.0)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True)
    assert abs(pitch_cents(out, 220.0)) < 5
    # The output's harmonics (of 220 Hz) follow the modulator's formants.
    assert envelope_error_db(out, 220.0) < 1.6
    assert envelope_error_db(carrier, 220.0) > 2.5  # the carrier alone does not


def test_cross_deltas_follow_the_modulators_changes():
    carrier = sine(330.0, 1.0)
    ramp = torch.linspace(0.0, 1.0, SR)
    modulator = sine(330.0, 1.0) * ramp
    out = pvrnn.cross_synthesize(carrier, modulator, SR, mode="deltas", reset_every=None)
    # Carrier's first frame plus the modulator's growth: louder at the end than the carrier.
    first, last = out[: SR // 4].abs().max(), out[-SR // 4 :].abs().max()
    assert float(last) > 1.5 * float(first)
    assert abs(pitch_cents(out, 330.0)) < 5


@pytest.mark.parametrize("fit,length", [("loop", 30000), ("trim", 20000), ("stretch", 30000)])
def test_cross_fit_options(fit, length):
    carrier, modulator = sine(440.0, 30000 / SR), sine(220.0, 20000 / SR)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, fit=fit)
    assert out.shape == (length,)


def test_cross_broadcasts_leading_dims():
    carrier = torch.stack([sine(440.0, 0.3), sine(550.0, 0.3)])
    modulator = sine(220.0, 0.3)
    out = pvrnn.cross_synthesize(carrier, modulator, SR)
    assert out.shape == carrier.shape
    torch.testing.assert_close(out[1], pvrnn.cross_synthesize(carrier[1], modulator, SR),
                               atol=1e-5, rtol=0)


# -- bad input ------------------------------------------------------------------------------------
AUDIO = sine(440.0, 0.2)


@pytest.mark.parametrize("call,match", [
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:5000], SR), "modulator has 5000 samples"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="vocode"), "mode='vocode'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, fit="pad"), "fit='pad'"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, (SR, 48000)), "sample_rate=\\(44100"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO, SR, mode="deltas", reset_every=-1),
     "reset_every=-1"),
    (lambda: pvrnn.cross_synthesize(torch.zeros(2, 8820), torch.zeros(3, 8820), SR),
     "expected leading dims that broadcast"),
    (lambda: pvrnn.cross_synthesize(AUDIO, AUDIO[:100], SR, fit="trim"), "modulator="),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(PvrnnError, match=match):
        call()


def test_cross_envelope_lifter_follows_the_pitch():
    # A modulator at 700 Hz: a fixed 1.5 ms lifter resolves its harmonics (667 Hz and up), so
    # the "envelope" imposed on the carrier is a comb of them (24 dB off the formants). The
    # pitch-following lifter of pitch_shift (0.5 / 700 Hz) keeps the formants (6 dB: only 8
    # harmonics sample them).
    t = torch.arange(SR, dtype=torch.float64) / SR
    carrier = sum(torch.sin(2 * math.pi * 220 * h * t) / h for h in range(1, 25)).float() * 0.1
    modulator = voice(700.0)
    out = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True)
    fixed = pvrnn.cross_synthesize(carrier, modulator, SR, envelope=True, envelope_lifter=1.5e-3)
    assert envelope_error_db(out, 220.0) < 8.0
    assert envelope_error_db(fixed, 220.0) > 15.0  # the old default, the failure it avoids


# -- streaming: the same result from blocks, in bounded memory ------------------------------------
def _whole(carrier, modulator, rate, mode="spectral", envelope=False, reset_every=0.25,
           n_fft=2048, hop=512):
    """The definition on whole signals: PhaseVocoder frames, combined, resynthesized."""
    from pvrnn.dsp.envelope import lifter_samples, spectral_envelope

    pv = pvrnn.PhaseVocoder(n_fft, hop, sample_rate=rate)
    car, mod = pv.analyze(carrier), pv.analyze(modulator)
    if mode == "spectral":
        magnitude = mod.magnitude
        if envelope:
            lifter = lifter_samples(None, rate, n_fft, carrier, modulator)
            log_ratio = (spectral_envelope(mod.magnitude, n_fft, lifter, log=True)
                         - spectral_envelope(car.magnitude, n_fft, lifter, log=True))
            magnitude = car.magnitude * torch.exp(log_ratio)
        return pv.synthesize(car.replace(magnitude=magnitude), length=carrier.shape[-1])
    every = resets = None
    if reset_every is not None:
        every = max(1, round(reset_every * rate / hop))
        resets = car.replace(magnitude=car.magnitude[..., every::every, :],
                             deviation=car.deviation[..., every::every, :])
    out = pvrnn.Frames.from_deltas(mod.deltas(), car[0], reset_every=every, reset_frames=resets)
    return pv.synthesize(out, length=carrier.shape[-1])


def _pair(seconds: float = 2.0):
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    carrier = sum(torch.sin(2 * math.pi * 220 * h * t * (1 + 0.01 * torch.sin(6 * t))) / h
                  for h in range(1, 20)).float() * 0.1
    modulator = torch.cat([voice(150.0)] * math.ceil(seconds))[: t.shape[0]]
    modulator = modulator * (0.2 + torch.linspace(0, 1, t.shape[0]))  # a swell: deltas move
    return carrier, modulator


def _close(result, expected, tol=3e-6):
    assert result.shape == expected.shape and result.dtype == expected.dtype
    torch.testing.assert_close(result, expected, rtol=0, atol=tol * float(expected.abs().max()))


@pytest.mark.parametrize("options", [
    dict(mode="spectral"), dict(mode="spectral", envelope=True),
    dict(mode="deltas"), dict(mode="deltas", reset_every=None),
])
def test_cross_equals_the_whole_signal_definition(options):
    carrier, modulator = _pair()
    _close(pvrnn.cross_synthesize(carrier, modulator, SR, **options),
           _whole(carrier, modulator, SR, **options))


def test_cross_fits_stream_like_the_whole_signal_fits():
    carrier, modulator = _pair(2.0)
    short = modulator[: SR // 2 + 1234]
    looped = short.repeat(4)[: carrier.shape[-1]]
    _close(pvrnn.cross_synthesize(carrier, short, SR, fit="loop", envelope=True),
           _whole(carrier, looped, SR, envelope=True))
    stretched = pvrnn.time_stretch(short, SR, carrier.shape[-1] / short.shape[-1])
    _close(pvrnn.cross_synthesize(carrier, short, SR, fit="stretch", mode="deltas"),
           _whole(carrier, stretched, SR, mode="deltas"))
    _close(pvrnn.cross_synthesize(short, carrier, SR, fit="trim"),
           _whole(short, carrier[: short.shape[-1]], SR))
    # Float64 and broadcasting leading dims: a stereo carrier, a mono float64 modulator.
    stereo = torch.stack([carrier, 0.5 * carrier.flip(-1)])
    result = pvrnn.cross_synthesize(stereo, modulator.double(), SR, mode="deltas")
    _close(result, _whole(stereo.double(), modulator.double().expand(2, -1), SR, mode="deltas"),
           tol=1e-10)


def _interleaved(stream, carrier, modulator, seed):
    """Feed carrier and modulator cut apart at random and interleaved at random."""
    g = torch.Generator().manual_seed(seed)
    queues = []
    for which, audio in enumerate((carrier, modulator)):
        cuts, i = [], 0
        while i < audio.shape[-1]:
            j = min(audio.shape[-1], i + int(torch.randint(0, 6000, (1,), generator=g)))
            block = audio[..., i:j]
            empty = audio[..., :0]
            cuts.append((block, empty) if which == 0 else (empty, block))
            i = j
        queues.append(cuts)
    pieces = []
    while queues[0] or queues[1]:
        pick = int(torch.randint(0, 2, (1,), generator=g)) if queues[0] and queues[1] else \
            int(not queues[0])
        pieces.append(stream.feed(*queues[pick].pop(0)))
    return torch.cat([*pieces, stream.finish()], dim=-1)


@pytest.mark.parametrize("mode,envelope", [("spectral", True), ("deltas", False)])
def test_cross_stream_in_random_blocks_equals_cross_synthesize(mode, envelope):
    from pvrnn.dsp.envelope import lifter_samples
    from pvrnn.effects.cross import CrossStream

    carrier, modulator = _pair(3.0)
    carrier = torch.stack([carrier, 0.7 * carrier])
    modulator = modulator.expand(2, -1)
    n = carrier.shape[-1]
    expected = pvrnn.cross_synthesize(carrier, modulator, SR, mode=mode, envelope=envelope)
    for seed in (0, 1):
        stream = CrossStream(2, SR, n, mode=mode,
                             lifter=lifter_samples(None, SR, 2048, carrier, modulator)
                             if envelope else None,
                             every=22 if mode == "deltas" else None, n_fft=2048, hop_length=512,
                             window="hann", dtype=torch.float32, device="cpu")
        _close(_interleaved(stream, carrier, modulator, seed), expected, tol=1e-6)


def test_cross_stream_keeps_bounded_state():
    # Fed a long signal block by block, the stream holds about a window of audio, whatever
    # has gone through it.
    from pvrnn.effects.cross import CrossStream

    n = 40 * SR
    stream = CrossStream(1, SR, n, mode="deltas", lifter=None, every=22, n_fft=2048,
                         hop_length=512, window="hann", dtype=torch.float32, device="cpu")
    block = sine(330.0, 1.0).unsqueeze(0)
    largest = 0
    for _ in range(40):
        stream.feed(block, block * 0.5)
        held = (stream.carrier.buf.shape[-1] + stream.modulator.buf.shape[-1]
                + stream.out.acc.shape[-1])
        largest = max(largest, held)
    assert stream.finish().shape[-1] >= 0
    assert largest < 3 * SR  # the blocks themselves and a few windows, not 40 s


def test_cross_progress_bar(capsys):
    carrier, modulator = _pair(1.0)
    pvrnn.cross_synthesize(carrier, modulator, SR, progress=True)
    assert "cross" in capsys.readouterr().err


def test_cross_stream_misuse_raises():
    from pvrnn.effects.cross import CrossStream

    stream = CrossStream(1, SR, 10000, mode="spectral", lifter=None, every=None, n_fft=2048,
                         hop_length=512, window="hann", dtype=torch.float32, device="cpu")
    stream.feed(torch.zeros(1, 10000), torch.zeros(1, 4000))
    with pytest.raises(PvrnnError, match="the carrier has 10000 and the modulator 4000 of "
                                         "10000 samples"):
        stream.finish()
    with pytest.raises(PvrnnError, match="10001 samples fed to a stream of 10000"):
        stream.feed(torch.zeros(1, 1), torch.zeros(1, 0))
