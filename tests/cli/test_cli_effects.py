"""``pvrnn stretch | pitch | cross | analyze`` driven as a user would: subprocesses.

Each subprocess costs an interpreter start and ``import torch``, so the checks are grouped:
one run per behaviour, several assertions per run.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 44100


def pvrnn_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pvrnn.cli", *args], input=stdin,
                          capture_output=True, timeout=300)


def write_tone(path: Path, freq: float = 440.0, seconds: float = 1.0,
               channels: int = 1) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.4 * np.sin(2 * np.pi * freq * t)
    data = np.stack([tone, 0.5 * tone], axis=1)[:, :channels] if channels > 1 else tone
    sf.write(path, data, SR)
    return path


def f0_of(path: Path) -> float:
    import torch

    from pvrnn.metrics import estimate_f0

    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    f0 = estimate_f0(torch.from_numpy(audio[:, 0].copy()), SR)
    return float(f0[f0.shape[-1] // 10 : -f0.shape[-1] // 10].nanmedian())


def test_stretch_writes_a_longer_file_at_the_same_pitch_and_keeps_channels(tmp_path):
    source = write_tone(tmp_path / "tone.wav", channels=2)
    result = pvrnn_cli("stretch", str(source), str(tmp_path / "slow.flac"), "--factor", "2")
    assert result.returncode == 0, result.stderr.decode()
    info = sf.info(tmp_path / "slow.flac")
    assert info.frames == 2 * SR and info.channels == 2 and info.samplerate == SR
    assert abs(1200 * math.log2(f0_of(tmp_path / "slow.flac") / 440.0)) < 5
    # The output now exists: refused without --force, accepted with it.
    again = pvrnn_cli("stretch", str(source), str(tmp_path / "slow.flac"), "--factor", "3")
    assert again.returncode == 1
    assert again.stderr.decode().count("\n") == 1 and "--force" in again.stderr.decode()
    forced = pvrnn_cli("stretch", str(source), str(tmp_path / "slow.flac"), "--factor", "3",
                       "--force")
    assert forced.returncode == 0 and sf.info(tmp_path / "slow.flac").frames == 3 * SR
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_pitch_through_stdin_and_stdout(tmp_path):
    source = write_tone(tmp_path / "tone.wav", seconds=0.8)
    result = pvrnn_cli("pitch", "-", "-", "--semitones", "-3", "--preserve-formants",
                       stdin=source.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    (tmp_path / "out.wav").write_bytes(result.stdout)
    assert sf.info(tmp_path / "out.wav").frames == int(0.8 * SR)
    expected = 440.0 * 2 ** (-3 / 12)
    assert abs(1200 * math.log2(f0_of(tmp_path / "out.wav") / expected)) < 5


def test_cross_needs_fit_for_different_lengths(tmp_path):
    carrier = write_tone(tmp_path / "carrier.wav", 220.0, 1.0)
    modulator = write_tone(tmp_path / "modulator.wav", 330.0, 0.6)
    out = tmp_path / "cross.wav"
    refused = pvrnn_cli("cross", str(carrier), str(modulator), str(out), "--mode", "deltas")
    assert refused.returncode == 1 and not out.exists()
    message = refused.stderr.decode()
    assert message.count("\n") == 1 and "fit=" in message
    done = pvrnn_cli("cross", str(carrier), str(modulator), str(out), "--mode", "spectral",
                     "--envelope", "--fit", "stretch")
    assert done.returncode == 0, done.stderr.decode()
    assert sf.info(out).frames == SR


def test_analyze_prints_a_summary_and_writes_the_picture(tmp_path):
    pytest.importorskip("matplotlib")
    source = write_tone(tmp_path / "tone.wav", 261.63, 1.0)
    picture = tmp_path / "tone.png"
    result = pvrnn_cli("analyze", str(source), "--plot", str(picture))
    assert result.returncode == 0, result.stderr.decode()
    summary = result.stdout.decode()
    assert "duration:    1.000 s" in summary and "44100 Hz" in summary
    assert "261." in summary and "C4" in summary
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,reason", [
    (["stretch", "{missing}", "{out}", "--factor", "2"], "no such file"),
    (["stretch", "{text}", "{out}", "--factor", "2"], "could not be read as audio"),
    (["stretch", "{tone}", "{tone}", "--factor", "2", "--force"], "other than the input"),
    (["stretch", "{tone}", "{out}", "--factor", "0"], "factor=0"),
    (["stretch", "{tone}", "{out}", "--factor", "1", "--to", "-2"], "--to=-2"),
    (["stretch", "{tone}", "{dir}/no/such/folder/out.wav", "--factor", "2"], "existing folder"),
    (["pitch", "{tone}", "{out}", "--semitones", "nan"], "semitones=nan"),
    (["cross", "{tone}", "{tone48}", "{out}"], "sample rate"),
    (["cross", "-", "-", "{out}"], "at most one of them on stdin"),
    (["analyze", "{tone}", "--plot", "{dir}/x.txt"], "--plot="),
])
def test_bad_input_exits_1_with_one_line(tmp_path, capsys, args, reason):
    # In-process (the same main() the script runs): one line on stderr, status 1, no output.
    from pvrnn.cli import main

    paths = {"missing": tmp_path / "missing.wav", "out": tmp_path / "out.wav",
             "text": tmp_path / "notes.txt", "tone": tmp_path / "tone.wav", "dir": tmp_path,
             "tone48": tmp_path / "tone48.wav"}
    paths["text"].write_text("not audio\n")
    write_tone(paths["tone"], seconds=0.2)
    sf.write(paths["tone48"], np.zeros(9600), 48000)
    status = main([a.format(**paths) for a in args])
    message = capsys.readouterr().err
    assert status == 1, message
    assert message.count("\n") == 1 and message.startswith("pvrnn ") and reason in message
    assert not paths["out"].exists()


def test_entry_point_exit_status_and_usage_errors(tmp_path):
    missing = pvrnn_cli("stretch", str(tmp_path / "missing.wav"), str(tmp_path / "o.wav"),
                        "--factor", "2")
    assert missing.returncode == 1 and missing.stderr.decode().count("\n") == 1
    wrong = pvrnn_cli("stretch", "a.wav", "b.wav", "--factor", "2", "--bogus")
    assert wrong.returncode == 2 and "--bogus" in wrong.stderr.decode()
    help_text = pvrnn_cli("stretch", "--help")
    assert help_text.returncode == 0
    assert "example:\n  pvrnn stretch " in help_text.stdout.decode()


def test_every_command_has_help_with_an_example(capsys):
    from pvrnn.cli import main

    for command in ("stretch", "pitch", "cross", "analyze"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert f"example:\n  pvrnn {command} " in capsys.readouterr().out


def test_file_to_file_streams_to_the_in_memory_result_with_a_progress_bar(tmp_path):
    # stretch and pitch from a file to a file run block by block (bounded memory): the
    # written result is the in-memory one (to one 16-bit step), loud results are scaled
    # rather than clipped, and no temporary file is left.
    import os

    import torch

    import pvrnn

    t = np.arange(int(1.5 * SR)) / SR
    left = 0.9 * np.sin(2 * np.pi * 330 * t) + 0.3 * (np.arange(t.size) % 11025 < 40)
    data = np.stack([left, 0.5 * np.sin(2 * np.pi * 550 * t)], axis=1)
    sf.write(tmp_path / "in.wav", data, SR, subtype="FLOAT")
    audio = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
    env = {**os.environ, "PVRNN_PROGRESS": "1"}
    for args, offline in (
        (["stretch", "--factor", "1.5", "--to", "0.75"],
         lambda: pvrnn.time_stretch(audio, SR, lambda s: 1.5 - 0.75 * s / 1.5,
                                    n_fft="auto", link_channels=True)),
        (["pitch", "--semitones", "4"],
         lambda: pvrnn.pitch_shift(audio, SR, 4.0, link_channels=True)),
    ):
        out = tmp_path / "out.wav"
        result = subprocess.run(
            [sys.executable, "-m", "pvrnn.cli", args[0], str(tmp_path / "in.wav"), str(out),
             "--force", *args[1:]], capture_output=True, timeout=300,
            env={**env, "PYTHONPATH": str(Path(pvrnn.__file__).parents[1])})
        assert result.returncode == 0, result.stderr.decode()
        ref = offline().numpy()
        peak = np.abs(ref).max()
        assert peak > 1  # the loud input comes out over full scale: it must be scaled
        written = sf.read(out, dtype="float32", always_2d=True)[0].T
        assert written.shape == ref.shape
        assert np.abs(written - ref * 0.999 / peak).max() <= 1.5 / 32768
        assert "scaled down" in result.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_cross_file_to_file_streams_to_the_in_memory_result(tmp_path):
    # cross from files to a file runs block by block (bounded memory): the written result is
    # the in-memory one (to one 16-bit step), channels broadcast, loud results are scaled
    # rather than clipped, and a long input shows a progress bar.
    import os

    import torch

    import pvrnn

    t = np.arange(int(1.5 * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 220 * h * t) / h for h in range(1, 12))
    carrier = np.stack([0.9 * tone, 0.3 * tone], axis=1)
    u = np.arange(int(0.7 * SR)) / SR
    modulator = (0.5 * np.sin(2 * np.pi * 150 * u) * np.sin(2 * np.pi * 2 * u) ** 2)[:, None]
    sf.write(tmp_path / "car.wav", carrier, SR, subtype="FLOAT")
    sf.write(tmp_path / "mod.wav", modulator, SR, subtype="FLOAT")
    car = torch.from_numpy(np.ascontiguousarray(carrier.T, dtype=np.float32))
    mod = torch.from_numpy(np.ascontiguousarray(modulator.T, dtype=np.float32))
    env = {**os.environ, "PVRNN_PROGRESS": "1",
           "PYTHONPATH": str(Path(pvrnn.__file__).parents[1])}
    out = tmp_path / "out.wav"
    for flags, offline in (
        (["--envelope", "--fit", "stretch"],
         lambda: pvrnn.cross_synthesize(car, mod, SR, envelope=True, fit="stretch")),
        (["--mode", "deltas", "--fit", "loop"],
         lambda: pvrnn.cross_synthesize(car, mod, SR, mode="deltas", fit="loop")),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pvrnn.cli", "cross", str(tmp_path / "car.wav"),
             str(tmp_path / "mod.wav"), str(out), "--force", *flags], capture_output=True,
            timeout=300, env=env)
        assert result.returncode == 0, result.stderr.decode()
        ref = offline().numpy()
        scale = 0.999 / np.abs(ref).max() if np.abs(ref).max() > 1 else 1.0
        written = sf.read(out, dtype="float32", always_2d=True)[0].T
        assert written.shape == ref.shape == (2, carrier.shape[0])
        assert np.abs(written - ref * scale).max() <= 1.5 / 32768
    long = np.sin(2 * np.pi * 330 * np.arange(int(10.5 * SR)) / SR) * 0.3
    sf.write(tmp_path / "long.wav", long, SR)
    result = subprocess.run(
        [sys.executable, "-m", "pvrnn.cli", "cross", str(tmp_path / "long.wav"),
         str(tmp_path / "long.wav"), str(out), "--force"], capture_output=True, timeout=300,
        env=env)
    assert result.returncode == 0 and "cross:" in result.stderr.decode()  # the bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["car.wav", "long.wav", "mod.wav",
                                                          "out.wav"]


def test_cross_failing_midway_leaves_no_output(tmp_path):
    # The modulator turns to NaN after 3 s: the streamed blocks before it were written to a
    # temporary file, which goes away; the output never appears.
    from pvrnn.cli import main

    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(4 * SR) / SR)
    broken = tone.copy()
    broken[3 * SR :] = np.nan
    sf.write(tmp_path / "car.wav", tone, SR, subtype="FLOAT")
    sf.write(tmp_path / "mod.wav", broken, SR, subtype="FLOAT")
    status = main(["cross", str(tmp_path / "car.wav"), str(tmp_path / "mod.wav"),
                   str(tmp_path / "out.wav")])
    assert status == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["car.wav", "mod.wav"]


def test_stretch_chooses_its_window_from_the_file(tmp_path):
    """By default (--n-fft auto) the file streams with the settings time_stretch(n_fft="auto")
    chooses."""
    import torch

    import pvrnn

    t = np.arange(2 * SR) / SR
    low = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 20))  # wants 4096
    source = tmp_path / "low.wav"
    sf.write(source, (0.2 * low).astype(np.float32), SR, subtype="FLOAT")
    result = pvrnn_cli("stretch", str(source), str(tmp_path / "out.wav"), "--factor", "1.5")
    assert result.returncode == 0, result.stderr.decode()
    got, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    audio = torch.from_numpy((0.2 * low).astype(np.float32))
    want = pvrnn.time_stretch(audio[None], SR, 1.5, n_fft="auto", link_channels=True)[0]
    assert got.shape[0] == want.shape[0]
    assert np.abs(got - want.numpy()).max() < 2 / 32768  # the 16-bit file's rounding
    assert np.abs(got - pvrnn.time_stretch(audio, SR, 1.5).numpy()).max() > 1e-3  # not 2048
    fixed = pvrnn_cli("stretch", str(source), str(tmp_path / "fixed.wav"), "--factor", "1.5",
                      "--n-fft", "2048")
    assert fixed.returncode == 0, fixed.stderr.decode()
    got, _ = sf.read(tmp_path / "fixed.wav", dtype="float32")
    assert np.abs(got - pvrnn.time_stretch(audio, SR, 1.5).numpy()).max() < 2 / 32768
    bad = pvrnn_cli("stretch", str(source), str(tmp_path / "bad.wav"), "--factor", "2",
                    "--n-fft", "fast")
    assert bad.returncode != 0 and "auto" in bad.stderr.decode()
