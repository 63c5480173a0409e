"""The defaults (issue 9): settings chosen for the sound, full band, phase-coherent synthesis."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError, SoundModel, SoundModelConfig
from pvrnn.metrics import consistency
from pvrnn.model.config import SEQ_SECONDS, choose_n_fft

SR = 44100


def _harmonic(f0: float, seconds: float = 1.0, rate: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return sum(torch.sin(2 * math.pi * h * f0 * t) / h for h in range(1, 8)).float() * 0.2


@pytest.mark.parametrize("f0, rate, expected", [
    (440.0, SR, 2048),   # 4 * 44100 / 440 = 401 bins: the lower end (46 ms)
    (98.0, SR, 2048),    # cello G2: 1800 -> 2048
    (60.0, SR, 4096),    # 2940 -> 4096
    (30.0, SR, 8192),    # 5880 -> 8192 (the upper end)
    (440.0, 16000, 1024),  # the range is in seconds: 46 ms at 16 kHz is 743 -> 1024
])
def test_n_fft_gives_four_bins_between_harmonics(f0, rate, expected):
    assert choose_n_fft(_harmonic(f0, 1.0, rate), rate) == expected


def test_unpitched_sounds_and_no_audio_get_the_lower_end():
    noise = torch.randn(SR, generator=torch.Generator().manual_seed(0))
    assert choose_n_fft(noise, SR) == 2048
    assert choose_n_fft(None, SR) == 2048


def test_resolve_fills_only_the_automatic_settings():
    config = SoundModelConfig()
    assert not config.resolved
    concrete = config.resolve(_harmonic(60.0), SR)
    assert concrete.resolved and not config.resolved  # a copy
    assert (concrete.n_fft, concrete.hop_length) == (4096, 1024)
    assert concrete.n_partials == 4096 // 2 + 1  # full band
    assert concrete.seq_length == round(SEQ_SECONDS * SR / 1024)
    fixed = SoundModelConfig(n_fft=1024, seq_length=33).resolve(_harmonic(60.0), SR)
    assert (fixed.n_fft, fixed.hop_length, fixed.n_partials, fixed.seq_length) == (
        1024, 256, 513, 33)
    with pytest.raises(PvrnnError, match="sample_rate"):
        config.resolve(_harmonic(60.0), None)


def test_presets_keep_the_blogs_training_settings():
    for name in ("sine", "clarinet", "piano"):
        c = SoundModelConfig.from_preset(name)
        assert c.resolved and c.bottleneck is None
        assert (c.optimizer, c.lr, c.magnitude) == ("adagrad", 0.05, "linear")


@pytest.fixture(scope="module")
def default_model(one_thread):
    """``SoundModel()`` as a user gets it, fitted briefly on a bundled recording."""
    audio, rate = pvrnn.examples.load("oboe")
    model = SoundModel()
    assert model.network is None and not model.fitted  # built when the sound is known
    model.fit(audio[: rate * 2], sample_rate=rate, epochs=40, progress=False, device="cpu")
    return model, audio, rate


def test_defaults_model_the_full_band(default_model):
    model, _, _ = default_model
    c = model.config
    assert c.resolved and c.n_partials == c.n_fft // 2 + 1
    assert model.network.n_features == 2 * c.n_partials
    assert model.codec.magnitude == "log"


def test_synthesize_is_exact_for_analysed_frames(default_model):
    model, audio, rate = default_model
    clip = audio[: rate]
    frames = model.vocoder.analyze(clip)
    again = model.synthesize(frames, length=clip.shape[-1])
    error = (again - clip).double().square().sum() / clip.double().square().sum()
    assert 10 * math.log10(float(error)) < -100


def test_synthesize_locks_generated_frames(default_model):
    model, _, _ = default_model
    frames = model.generate_frames(120, seed=3)
    assert frames.start_phase is None
    locked = float(consistency(frames, model.synthesize(frames)))
    plain = float(consistency(frames, model.synthesize(frames, phase="exact")))
    assert locked < -20.0 and locked < plain - 6.0, (locked, plain)
    audio = model.generate(1.0, seed=3)
    assert audio.shape == (rate_samples := round(model.sample_rate), ) and rate_samples > 0
    with pytest.raises(PvrnnError, match="phase="):
        model.synthesize(frames, phase="random")
    with pytest.raises(PvrnnError, match="frames="):
        model.synthesize(frames.magnitude)


def test_saved_model_keeps_the_resolved_settings(default_model, tmp_path):
    model, _, _ = default_model
    model.save(tmp_path / "m.pt")
    loaded = SoundModel.load(tmp_path / "m.pt", device="cpu")
    assert loaded.config == model.config
    torch.testing.assert_close(loaded.generate(0.2, seed=1), model.generate(0.2, seed=1))


def test_automatic_validation_holds_out_whole_sounds_only_when_there_are_enough():
    from pvrnn.model.config import AUTO_VALIDATION, auto_validation

    assert auto_validation(1) == auto_validation(2) == 0.0
    assert auto_validation(3) == auto_validation(50) == AUTO_VALIDATION
    tone = _harmonic(220.0, 0.6)
    one = SoundModel(n_fft=512, hidden_size=8, bottleneck=None, epochs=2)
    history = one.fit(tone, sample_rate=SR, progress=False, device="cpu")
    assert history["val_loss"] == [None, None] and history["best_epoch"] == 2  # the last
    assert one.training_settings["validation"] == 0.0
    many = SoundModel(n_fft=512, hidden_size=8, bottleneck=None, epochs=2)
    history = many.fit([tone, 0.5 * tone, _harmonic(330.0, 0.6)], sample_rate=SR,
                       progress=False, device="cpu")
    assert all(v is not None for v in history["val_loss"])
    assert many.training_settings["validation"] == AUTO_VALIDATION


def test_input_noise_only_in_training_mode():
    from pvrnn import SpectralRNN

    net = SpectralRNN(6, hidden_size=8, num_layers=1, n_components=1, input_noise=0.5)
    x = torch.randn(2, 5, 6)
    net.eval()
    torch.testing.assert_close(net.raw(x)[0], net.raw(x)[0])
    net.train()
    assert not torch.allclose(net.raw(x)[0], net.raw(x)[0])
    assert SpectralRNN(**net.config()).input_noise == 0.5
    for bad in (-0.1, float("nan"), "0.3", True):
        with pytest.raises(PvrnnError, match="input_noise"):
            SpectralRNN(6, input_noise=bad)
        with pytest.raises(PvrnnError, match="input_noise"):
            SoundModelConfig(input_noise=bad)


def test_automatic_settings_need_a_first_sound_they_can_read():
    model = SoundModel()
    with pytest.raises(PvrnnError, match="sample_rate=None: expected the sample rate"):
        model.fit(_harmonic(220.0, 0.5), progress=False)
    with pytest.raises(PvrnnError, match="sources=.*at least one"):
        model.fit([], sample_rate=SR, progress=False)
    with pytest.raises(PvrnnError, match="sources=.*audio file path"):
        model.fit([3.5], sample_rate=SR, progress=False)
    assert model.network is None  # nothing was built from a bad call
