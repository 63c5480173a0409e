"""A corpus on disk: the cache, the epoch plan, validation by files, the log, bad input."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import pvrnn
from pvrnn import PvrnnError, SoundModel
from pvrnn.model.corpus import FrameCorpus
from pvrnn.model.log import read_log
from pvrnn.model.streams import CorpusStreams

SR = 22050

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> SoundModel:
    return SoundModel.from_preset("sine", **{"hidden_size": 16, "n_partials": 6, **overrides})


@pytest.fixture
def folder(tmp_path):
    """Four 1 s tones of different pitch and level (one file per tone)."""
    for i, (f, a) in enumerate([(220, 0.1), (330, 0.2), (440, 0.3), (550, 0.4)]):
        pvrnn.save_audio(tmp_path / f"tone{i}.wav", a * pvrnn.examples.sine(f, 1.0, SR), SR)
    return tmp_path


def reference_frames(path, model) -> pvrnn.Frames:
    from pvrnn.model.data import source_frames

    return source_frames(str(path), None, model.config)


def test_cache_is_made_once_and_invalidated_by_the_file_or_the_settings(folder):
    model = tiny()
    corpus = FrameCorpus([folder]).prepare(model.config)
    cached = sorted((folder / ".pvrnn-cache").glob("*.npy"))
    assert len(cached) == 4 and corpus.n_frames == [f.n_frames for f in
                                                      map(lambda p: reference_frames(p, model),
                                                          sorted(folder.glob("*.wav")))]
    expected = reference_frames(folder / "tone2.wav", model)
    torch.testing.assert_close(corpus.frames(2).magnitude, expected.magnitude, rtol=0, atol=0)
    torch.testing.assert_close(corpus.frames(2).deviation, expected.deviation, rtol=0, atol=0)
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    FrameCorpus([folder]).prepare(model.config)  # cached: nothing written
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps
    pvrnn.save_audio(folder / "tone2.wav", 0.5 * pvrnn.examples.sine(660, 0.5, SR), SR)
    os.utime(folder / "tone2.wav", ns=(1, 1))  # a new mtime whatever the clock's resolution
    again = FrameCorpus([folder]).prepare(model.config)
    assert len(list((folder / ".pvrnn-cache").glob("*.npy"))) == 4  # the stale one removed
    torch.testing.assert_close(again.frames(2).magnitude,
                               reference_frames(folder / "tone2.wav", model).magnitude)
    other = FrameCorpus([folder], cache_dir=folder / "elsewhere").prepare(tiny(n_partials=4).config)
    assert other.array(0).shape[1:] == (2, 4)
    assert len(list((folder / "elsewhere").glob("*.npy"))) == 4


def test_epoch_plans_shuffle_and_keep_pairs_inside_files(folder):
    model = tiny()
    corpus = FrameCorpus([folder]).prepare(model.config)
    settings = dict(seq_length=10, batch_size=4, validation=0.25, seed=0)
    streams = CorpusStreams(corpus, settings, torch.device("cpu"))
    held = {s for s, _, _ in streams._part.held_out}
    plans = [streams.plan(e) for e in (1, 2, 3)]
    for files, rows in plans:
        assert files.shape[0] == 4 and not held & set(np.unique(files).tolist())
        n = np.array(corpus.n_frames)[files]
        assert ((rows >= 0) & (rows + 1 < n)).all()  # input and target in the same file
        same = files[:, 1:] == files[:, :-1]  # consecutive pairs of a stream: the next row
        assert (rows[:, 1:][same] == rows[:, :-1][same] + 1).all()
    assert not all(np.array_equal(plans[0][0], p[0]) for p in plans[1:])  # shuffled
    assert len({int(p[1][0, 0]) for p in plans}) > 1  # random offsets
    assert np.array_equal(streams.plan(2)[1], plans[1][1])  # reproducible from (seed, epoch)


@pytest.mark.parametrize("mode, magnitude", [("absolute", "log"), ("absolute", "linear"),
                                             ("delta", "linear"), ("delta", "log")])
def test_a_step_encodes_every_pair_exactly_as_the_codec_does(folder, mode, magnitude):
    """Steps read each run of consecutive rows once and encode in place: the features must be
    those of ``codec.encode`` on each pair's own frames, bit for bit."""
    model = tiny()
    corpus = FrameCorpus([folder]).prepare(model.config)
    settings = dict(seq_length=7, batch_size=4, validation=0.25, seed=3)
    streams = CorpusStreams(corpus, settings, torch.device("cpu"), mode=mode)
    codec = pvrnn.FrameCodec(n_partials=4, mode=mode, magnitude=magnitude)
    streams.prepare(codec.fit(streams.codec_frames()))
    files, rows = streams.plan(2)
    extra = 2 if mode == "delta" else 1
    for t, (inputs, targets) in enumerate(streams.epoch(2)):
        assert inputs.dtype == targets.dtype == torch.float32
        for b in range(files.shape[0]):
            for s in range(inputs.shape[1]):
                f, r = int(files[b, t * 7 + s]), int(rows[b, t * 7 + s])
                expected = codec.encode(corpus.frames(f, r, r + 1 + extra)).float()
                assert torch.equal(inputs[b, s], expected[0])
                assert torch.equal(targets[b, s], expected[1])


def test_fit_on_a_folder_holds_out_files_fits_the_codec_on_training_files_and_logs(folder):
    model = tiny()
    path = folder / "m.pt"
    history = model.fit(folder, epochs=3, batch_size=4, validation=0.25, progress=False,
                        checkpoint=path, log_every=5, seed=2)
    streams = CorpusStreams(FrameCorpus([folder]).prepare(model.config),
                            dict(seq_length=10, batch_size=4, validation=0.25, seed=2),
                            torch.device("cpu"))
    train = [reference_frames(folder / f"tone{s}.wav", model) for s, _, _ in streams._part.train]
    assert len(train) == 3
    expected = torch.cat([f.magnitude for f in train]).double().mean(0)
    torch.testing.assert_close(model.codec.mean[:6], expected)
    rows = read_log(folder / "m.csv")
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert [r["val_loss"] for r in epochs] == pytest.approx(history["val_loss"], rel=1e-6)
    assert any(r["kind"] == "step" for r in rows)
    saved = SoundModel.load(path, device="cpu")
    best = saved.history["best_epoch"]
    assert history["val_loss"][best - 1] == min(history["val_loss"])
    assert len(saved._reference) == 4 and torch.isfinite(saved.generate(seconds=0.1)).all()


def test_corpus_resume_is_exact_and_schedules_change_the_rate(folder):
    def fit(epochs, path, resume=False, schedule="plateau"):
        model = tiny(optimizer="adam")
        model.fit(folder, epochs=epochs, batch_size=4, progress=False, schedule=schedule,
                  checkpoint=folder / path, resume=resume)
        return model

    straight = fit(5, "a.pt")
    fit(2, "b.pt")
    resumed = fit(5, "b.pt", resume=True)
    for a, b in zip(straight.network.state_dict().values(),
                    resumed.network.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.history["train_loss"] == straight.history["train_loss"]
    assert [r["lr"] for r in read_log(folder / "b.csv") if r["kind"] == "epoch"] == \
        [r["lr"] for r in read_log(folder / "a.csv") if r["kind"] == "epoch"]
    fit(4, "c.pt", schedule="cosine")
    lrs = [r["lr"] for r in read_log(folder / "c.csv") if r["kind"] == "epoch"]
    assert len(lrs) == 4 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.05 * 0.2
    with pytest.raises(PvrnnError, match="schedule="):
        fit(6, "b.pt", resume=True, schedule="cosine")


def test_bf16_autocast_trains_on_cpu(folder):
    history = tiny().fit(folder, epochs=1, batch_size=4, progress=False, precision="bf16")
    assert math.isfinite(history["train_loss"][0])
    with pytest.raises(PvrnnError, match="precision="):
        tiny().fit(folder, epochs=1, progress=False, precision="fp16")


def test_bad_files_are_named_or_skipped(folder):
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(PvrnnError, match="broken.wav.*--skip-bad"):
        FrameCorpus([folder]).prepare(tiny().config)
    with pytest.warns(UserWarning, match="broken.wav"):
        corpus = FrameCorpus([folder], skip_bad=True).prepare(tiny().config)
    assert len(corpus.n_frames) == 4
    pvrnn.save_audio(folder / "other_rate.wav", pvrnn.examples.sine(440, 0.5, 16000), 16000)
    with pytest.raises(PvrnnError, match="16000 Hz.*sample-rate"), pytest.warns(UserWarning):
        FrameCorpus([folder], skip_bad=True).prepare(tiny().config)
    resampled = FrameCorpus([folder], skip_bad=True, sample_rate=SR)
    with pytest.warns(UserWarning):
        assert len(resampled.prepare(tiny().config).n_frames) == 5
    empty = folder / "empty"
    empty.mkdir()
    with pytest.raises(PvrnnError, match="no audio files"):
        FrameCorpus([empty])
    with pytest.raises(PvrnnError, match="no such file"):
        FrameCorpus([folder / "missing"])


def test_a_read_only_folder_is_cached_in_the_user_cache(folder, tmp_path_factory, monkeypatch):
    """A sound library one cannot write to (a system folder) still trains: its analysis goes
    to $XDG_CACHE_HOME/pvrnn. (os.access is patched: the tests may run as root.)"""
    import pvrnn.model.corpus as corpus_module

    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(corpus_module.os, "access", lambda path, mode: False)
    corpus = FrameCorpus([folder]).prepare(tiny().config)
    assert not (folder / ".pvrnn-cache").exists()
    assert len(list((home / "pvrnn").rglob("*.npy"))) == 4 and len(corpus.n_frames) == 4


def test_a_dft_model_trains_on_a_corpus_with_its_own_features(folder):
    """The loader's codec copy is the model's codec class (not always FrameCodec)."""
    from pvrnn.model.dft import DFTCodec

    model = tiny(representation="dft", loss="mse", n_components=1)
    model.fit(folder, epochs=1, progress=False, device="cpu")
    assert isinstance(model.codec, DFTCodec)
    streams = CorpusStreams(FrameCorpus([folder]).prepare(model.config),
                            dict(batch_size=2, seq_length=4, seed=0, validation=0.0), "cpu")
    streams.prepare(model.codec)
    assert type(streams._codec) is DFTCodec
