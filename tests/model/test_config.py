"""SoundModelConfig and presets: the blog's settings, one rule per setting, bad input."""

from __future__ import annotations

import pytest

from pvrnn import FrameCodec, PvrnnError, SoundModel, SoundModelConfig, SpectralRNN
from pvrnn.model.config import PRESETS


def test_presets_hold_the_blogs_settings():
    expected = {
        "sine": (512, 128, 10, 1, 100, 10, 1),
        "clarinet": (512, 128, 20, 2, 100, 20, 3),
        "piano": (2048, 512, 20, 2, 150, 20, 5),
    }
    for name, (n_fft, hop, k, layers, hidden, seq, c) in expected.items():
        config = SoundModel.from_preset(name).config
        got = (config.n_fft, config.hop_length, config.n_partials, config.num_layers,
               config.hidden_size, config.seq_length, config.n_components)
        assert got == (n_fft, hop, k, layers, hidden, seq, c), name
        assert config.cell == "lstm" and config.optimizer == "adagrad"
    assert set(PRESETS) == set(expected)


def test_bad_construction():
    with pytest.raises(PvrnnError, match="preset="):
        SoundModel.from_preset("violin")
    with pytest.raises(PvrnnError, match="hiden_size"):
        SoundModel.from_preset("sine", hiden_size=10)
    with pytest.raises(PvrnnError, match="mode="):
        SoundModel(mode="relative")
    with pytest.raises(PvrnnError, match="hop_length="):
        SoundModelConfig(n_fft=512, hop_length=1024)
    with pytest.raises(PvrnnError, match="n_partials=300"):
        SoundModelConfig(n_fft=512, n_partials=300)
    with pytest.raises(PvrnnError, match="validation="):
        SoundModelConfig(validation=0.7)


@pytest.mark.parametrize("field,value", [
    ("n_partials", 0), ("mode", "relative"), ("magnitude", "cubic"),
])
def test_codec_settings_are_checked_by_the_codecs_rule(field, value):
    settings = {**dict(n_partials=20, mode="delta", magnitude="linear"), field: value}
    with pytest.raises(PvrnnError) as codec_error:
        FrameCodec(**settings)
    with pytest.raises(PvrnnError) as config_error:
        SoundModelConfig(**settings)
    assert str(config_error.value) == str(codec_error.value)


@pytest.mark.parametrize("field,value", [
    ("hidden_size", 0), ("num_layers", 1.5), ("n_components", 0), ("cell", "rnn"),
    ("dropout", 1.0), ("dropout", True), ("loss", "l1"), ("n_components", 3),
])
def test_network_settings_are_checked_by_the_networks_rule(field, value):
    settings = {**dict(hidden_size=8, num_layers=2, n_components=1, cell="lstm", dropout=0.0,
                       loss="mse"), field: value}
    with pytest.raises(PvrnnError) as network_error:
        SpectralRNN(4, **settings)
    with pytest.raises(PvrnnError) as config_error:
        SoundModelConfig(**settings)
    assert str(config_error.value) == str(network_error.value)


def test_training_settings_take_overrides_and_check_them():
    config = SoundModelConfig.from_preset("sine")
    settings = config.training_settings(lr=0.5, batch_size=None)
    assert settings == dict(seq_length=10, batch_size=8, optimizer="adagrad", lr=0.5, clip=5.0,
                            validation=0.1)
    with pytest.raises(PvrnnError, match="optimizer="):
        config.training_settings(optimizer="sgd")


def test_round_trip_through_a_dict():
    config = SoundModelConfig.from_preset("piano", dropout=0.1)
    assert SoundModelConfig.from_dict(config.to_dict()) == config
    assert config.replace(hidden_size=50).hidden_size == 50
