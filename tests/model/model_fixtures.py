"""Fixtures shared by the model tests: a sine, trained models, a factory of tiny models.

A plugin the test modules that use them name in ``pytest_plugins`` (a ``conftest.py`` here
would shadow the ``conftest`` module that other tests import by name).
"""

from __future__ import annotations

import pytest
import torch

import pvrnn
from pvrnn import SoundModel

SR = 44100


@pytest.fixture(scope="module")
def sine() -> torch.Tensor:
    return pvrnn.examples.sine(440.0, 3.0, SR)


@pytest.fixture(scope="module")
def sine_model(sine, one_thread) -> SoundModel:
    """The sine preset trained on a 440 Hz sine (12 epochs, about a second on one core)."""
    model = SoundModel.from_preset("sine")
    model.fit(sine, sample_rate=SR, epochs=12, progress=False, device="cpu")
    return model


@pytest.fixture(scope="module")
def delta_model(clarinet, one_thread) -> SoundModel:
    """A small delta-mode model of the clarinet, briefly trained: it drifts without resets."""
    audio, rate = clarinet
    model = SoundModel.from_preset("clarinet", mode="delta", hidden_size=32, num_layers=1,
                                   n_components=1)
    model.fit(audio, sample_rate=rate, epochs=30, progress=False, device="cpu")
    return model


@pytest.fixture
def tiny():
    """A factory of tiny sine-preset models (16 units, 6 partials), with overrides."""

    def make(**overrides) -> SoundModel:
        return SoundModel.from_preset("sine", **{"hidden_size": 16, "n_partials": 6,
                                                 "epochs": 2, **overrides})

    return make
