"""Sources to frames (edge frames left out), the held-out split, streams and BPTT windows."""

from __future__ import annotations

import pytest
import torch

import pvrnn
from pvrnn import PvrnnError, SoundModelConfig
from pvrnn.model.data import analyze_sources, layout, source_frames, split, windows

#: sine, sine_model, delta_model, tiny
pytest_plugins = ["model_fixtures"]

SR = 44100

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sources_paths_tensors_and_frames(sine, tiny, tmp_path):
    path = tmp_path / "a.wav"
    pvrnn.save_audio(path, sine, SR)
    two = torch.stack([sine, 0.5 * sine])
    model = tiny()
    model.fit([str(path), two], sample_rate=SR, epochs=1, progress=False)
    assert len(model._reference) == 3
    frames = pvrnn.PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR).analyze(sine)
    model = tiny()
    model.fit(frames, epochs=1, progress=False)
    assert model.sample_rate == SR
    with pytest.raises(PvrnnError, match="sample_rate"):
        tiny().fit(sine, epochs=1, progress=False)
    with pytest.raises(PvrnnError, match=r"sources\[1\].sample_rate"):
        tiny().fit([frames, pvrnn.PhaseVocoder(n_fft=512, hop_length=128,
                                               sample_rate=22050).analyze(sine)],
                   epochs=1, progress=False)
    with pytest.raises(PvrnnError, match="n_fft"):
        tiny().fit(pvrnn.PhaseVocoder(n_fft=1024, hop_length=128, sample_rate=SR).analyze(sine),
                   epochs=1, progress=False)
    with pytest.raises(PvrnnError, match="batch_size"):
        tiny().fit(sine[:8000], sample_rate=SR, batch_size=64, epochs=1, progress=False)
    with pytest.raises(PvrnnError, match="sources"):
        tiny().fit(42, sample_rate=SR, epochs=1, progress=False)


def test_audio_loses_its_edge_frames_and_frames_are_used_as_given(sine):
    config = SoundModelConfig.from_preset("sine")  # n_fft 512, hop 128: 2 edge frames
    full = pvrnn.PhaseVocoder(n_fft=512, hop_length=128, sample_rate=SR).analyze(sine)
    trimmed = source_frames(sine, SR, config)
    assert trimmed.n_frames == full.n_frames - 4 and trimmed.n_bins == 10
    torch.testing.assert_close(trimmed.magnitude, full.magnitude[2:-2, :10])
    assert source_frames(full, None, config).n_frames == full.n_frames
    sounds = analyze_sources([torch.stack([sine, sine]), full], SR, config)
    assert [f.magnitude.shape for f in sounds] == [trimmed.magnitude.shape] * 2 + [
        (full.n_frames, 10)]
    with pytest.raises(PvrnnError, match="sources.sample_rate"):
        analyze_sources(sine, SR, config, expected_rate=22050)


def test_split_of_one_sound_is_an_interior_stretch():
    parts = split([100], 0.1)
    assert parts.held_out == ((0, 45, 55),)
    assert parts.train == ((0, 0, 45), (0, 55, 100))
    assert split([100], 0.0).held_out == ()
    with pytest.raises(PvrnnError, match="validation="):
        split([3], 0.5)


def test_split_of_several_sounds_holds_out_whole_sounds_by_seed():
    parts = split([50, 60, 70, 80], 0.25, seed=0)
    assert len(parts.held_out) == 1 and len(parts.train) == 3
    assert all(start == 0 for _, start, _ in parts.train + parts.held_out)
    assert sorted(s for s, _, _ in parts.train + parts.held_out) == [0, 1, 2, 3]
    assert split([50, 60, 70, 80], 0.25, seed=0) == parts
    held = {split([50, 60, 70, 80], 0.25, seed=s).held_out for s in range(10)}
    assert len(held) > 1  # the seed picks
    assert len(split([50, 60], 0.1).held_out) == 1  # at least one sound, and one kept
    assert len(split([50, 60, 70], 0.5).train) == 1


def test_layout_cuts_stretches_into_streams_side_by_side():
    a = torch.arange(11.0)[:, None]  # 11 rows: streams of (11 - 1) // 2 = 5
    b = 100 + torch.arange(7.0)[:, None]  # 7 rows: streams of 3
    inputs, targets = layout([a, b], batch_size=2)
    assert inputs.shape == targets.shape == (2, 8, 1)
    assert inputs[:, :, 0].tolist() == [[0, 1, 2, 3, 4, 100, 101, 102],
                                        [5, 6, 7, 8, 9, 103, 104, 105]]
    torch.testing.assert_close(targets, inputs + 1)
    with pytest.raises(PvrnnError, match="batch_size=8"):
        layout([b], batch_size=8)
    assert windows(45, 20) == [(0, 20), (20, 40), (40, 45)]
