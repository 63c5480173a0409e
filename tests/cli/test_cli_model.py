"""``pvrnn train`` / ``pvrnn generate``: end to end as subprocesses, bad input in process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import soundfile as sf

import pvrnn
from pvrnn.cli import build_parser, main

SR = 44100


pytestmark = pytest.mark.usefixtures("one_thread")


def pvrnn_command(*args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PVRNN_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pvrnn.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``pvrnn train`` on a short sine: the model file and the folder."""
    folder = tmp_path_factory.mktemp("cli")
    pvrnn.save_audio(folder / "sine.wav", pvrnn.examples.sine(440.0, 1.5, SR), SR)
    result = pvrnn_command("train", "sine.wav", "-o", "sine.pt", "--preset", "sine",
                           "--epochs", "3", "--hidden-size", "16", "--seed", "1", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "wrote sine.pt: 3 epochs, kept epoch" in result.stdout
    history = pvrnn.SoundModel.load(folder / "sine.pt", device="cpu").history
    best = history["best_epoch"]  # the printed loss is the kept epoch's, not the last one's
    assert f"kept epoch {best} (validation loss {history['val_loss'][best - 1]:.4g})" in \
        result.stdout
    return folder / "sine.pt", folder


def test_train_writes_a_loadable_model(trained):
    path, _ = trained
    model = pvrnn.SoundModel.load(path, device="cpu")
    assert model.config.hidden_size == 16 and model.config.n_partials == 10
    assert model.history["epoch"] == [1, 2, 3]
    assert model.training_settings["seed"] == 1
    assert not list(path.parent.glob("*.tmp"))
    from pvrnn.model.log import read_log

    rows = [r for r in read_log(path.with_suffix(".csv")) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # the log beside the model


def test_generate_writes_the_wav(trained):
    path, folder = trained
    result = pvrnn_command("generate", str(path), "-o", "out.wav", "--seconds", "0.5",
                           "--variance-scale", "0.1", "--reset-every", "0.1", "--seed", "2",
                           "--batch", "2", "--normalize", cwd=folder)
    assert result.returncode == 0, result.stderr
    for name in ("out-1.wav", "out-2.wav"):
        audio, rate = sf.read(folder / name)
        assert rate == SR and audio.shape == (round(0.5 * SR),)
        assert 0.85 < abs(audio).max() <= 0.9  # -1 dBFS
    # bad input: one line on stderr naming the problem, exit status 1
    (folder / "broken.pt").write_bytes(path.read_bytes()[:1000])
    result = pvrnn_command("generate", "broken.pt", "-o", "x.wav", cwd=folder)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "broken.pt" in result.stderr


@pytest.mark.parametrize("args,match", [
    (["generate", "{model}", "-o", "{existing}"], "exists"),
    (["generate", "{model}", "-o", "{new}", "--seconds", "-1"], "seconds="),
    (["generate", "{model}", "-o", "{new}", "--variance-scale", "-2"], "variance_scale="),
    (["generate", "{model}", "-o", "{new}", "--reset-every", "0"], "reset_every="),
    (["generate", "{folder}/missing.pt", "-o", "{new}"], "missing.pt"),
    (["train", "{wav}", "-o", "{existing}"], "exists"),
    (["train", "{wav}", "-o", "{new_model}", "--resume"], "resume"),
    (["train", "{wav}", "-o", "{new_model}", "--epochs", "0"], "epochs="),
    (["train", "{wav}", "-o", "{new_model}", "--nproc", "512"], "nproc=512"),
    (["train", "{wav}", "-o", "{new_model}", "--patience", "0"], "patience="),
    (["train", "{folder}/missing.wav", "-o", "{new_model}"], "missing.wav"),
])
def test_bad_input_is_one_line_and_exit_1(trained, capsys, args, match):
    path, folder = trained
    (folder / "exists.wav").write_bytes(b"x")
    names = dict(model=str(path), existing=str(folder / "exists.wav"),
                 new=str(folder / "new.wav"), folder=str(folder), wav=str(folder / "sine.wav"),
                 new_model=str(folder / "new.pt"))
    status = main([a.format(**names) for a in args])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and match in err, err
    assert not (folder / "new.wav").exists()


def test_help_has_examples():
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"][0]
    for name in ("train", "generate"):
        text = actions.choices[name].format_help()
        assert "example:" in text and f"pvrnn {name}" in text


def test_train_reads_folders(tmp_path, capsys):
    folder = tmp_path / "sounds"
    (folder / "more").mkdir(parents=True)
    pvrnn.save_audio(folder / "a.wav", pvrnn.examples.sine(440.0, 0.5, SR), SR)
    pvrnn.save_audio(folder / "more" / "b.flac", pvrnn.examples.sine(660.0, 0.5, SR), SR)
    (folder / "notes.txt").write_text("not audio")
    status = main(["train", str(folder), "-o", str(tmp_path / "m.pt"), "--preset", "sine",
                   "--epochs", "1", "--hidden-size", "8", "--batch-size", "2"])
    assert status == 0, capsys.readouterr().err
    model = pvrnn.SoundModel.load(tmp_path / "m.pt", device="cpu")
    assert len(model._reference) == 2  # both files, the text file skipped
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", str(empty), "-o", str(tmp_path / "n.pt")]) == 1
    assert "no audio files" in capsys.readouterr().err
