"""Shared fixtures: devices to run on, and real recordings read straight from the package data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# Under pytest-xdist each worker gets one core: torch's own threads would only fight over it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

@pytest.fixture(scope="module")
def one_thread():
    """Small recurrent steps gain nothing from intra-op threads (used by the model tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DATA = Path(__file__).resolve().parents[1] / "pvrnn" / "examples" / "data"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def read_wav(name: str) -> tuple[torch.Tensor, int]:
    """A bundled recording as float32 (time,), independently of pvrnn.io."""
    audio, rate = sf.read(DATA / name, dtype="float32")
    return torch.from_numpy(np.ascontiguousarray(audio)), rate


@pytest.fixture(scope="session")
def clarinet() -> tuple[torch.Tensor, int]:
    return read_wav("clarinet_a4.wav")


@pytest.fixture(scope="session")
def long_recording() -> tuple[torch.Tensor, int]:
    """60 s of real instruments at 44.1 kHz: the four bundled recordings, repeated."""
    parts = [read_wav(name)[0] for name in
             ("clarinet_phrase.wav", "piano_phrase.wav", "clarinet_a4.wav", "piano_c4.wav")]
    whole = torch.cat(parts)
    repeats = -(-60 * 44100 // whole.shape[0])
    return whole.repeat(repeats)[: 60 * 44100], 44100


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = reference.double().cpu(), estimate.double().cpu()
    noise = (reference - estimate).square().sum()
    return float(10 * torch.log10(reference.square().sum() / noise))
