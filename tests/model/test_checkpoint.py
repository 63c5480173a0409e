"""Model files: save/load round trip, what the file holds, bad files, older files."""

from __future__ import annotations

import pytest
import torch

from pvrnn import PvrnnError, SoundModel
from pvrnn.model.checkpoint import FORMAT_VERSION, atomic_save

#: sine, sine_model, delta_model, tiny
pytest_plugins = ["model_fixtures"]

SR = 44100

pytestmark = pytest.mark.usefixtures("one_thread")


def test_save_load_generate_identical(sine_model, tmp_path):
    path = tmp_path / "sine.pt"
    sine_model.save(path)
    again = SoundModel.load(path, device="cpu")
    a = sine_model.generate(seconds=0.5, variance_scale=0.5, reset_every=0.1, seed=3)
    b = again.generate(seconds=0.5, variance_scale=0.5, reset_every=0.1, seed=3)
    assert torch.equal(a, b)
    assert again.config == sine_model.config
    assert again.history == sine_model.history
    assert not list(tmp_path.glob("*.tmp"))


def test_model_file_holds_only_tensors_and_plain_containers(sine_model, tmp_path):
    path = tmp_path / "sine.pt"
    sine_model.save(path)
    data = torch.load(path, weights_only=True)
    assert data["format_version"] == FORMAT_VERSION
    assert data["config"] == sine_model.config.to_dict()
    assert set(data) >= {"codec", "network", "reference", "history", "training"}
    assert not any(k.startswith("_orig_mod") for k in data["network"])
    # Only the partials of the reference frames are kept, and not the whole sound.
    kept = sum(r["prime_magnitude"].shape[0] + r["middle_magnitude"].shape[0]
               for r in data["reference"])
    assert all(r["prime_magnitude"].shape[-1] == 10 for r in data["reference"])
    assert kept < 1034


def test_bad_model_files(sine_model, tmp_path):
    with pytest.raises(PvrnnError, match="missing.pt"):
        SoundModel.load(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    sine_model.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(PvrnnError, match="truncated.pt"):
        SoundModel.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save([1, 2, 3], foreign)
    with pytest.raises(PvrnnError, match="foreign.pt"):
        SoundModel.load(foreign)
    data = torch.load(good, weights_only=True)
    data["network"]["head.weight"] = torch.zeros(3, 3)
    mismatched = tmp_path / "mismatched.pt"
    torch.save(data, mismatched)
    with pytest.raises(PvrnnError, match="mismatched.pt"):
        SoundModel.load(mismatched)
    data = torch.load(good, weights_only=True)
    data["format_version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(data, newer)
    with pytest.raises(PvrnnError, match="newer.pt.*format_version"):
        SoundModel.load(newer)


def test_a_resume_must_match_the_models_configuration(sine_model, tmp_path):
    path = tmp_path / "sine.pt"
    sine_model.save(path)
    other = SoundModel.from_preset("sine", hidden_size=50)
    with pytest.raises(PvrnnError, match="hidden_size=100.*hidden_size=50"):
        other.fit(torch.zeros(SR), sample_rate=SR, checkpoint=path, resume=True,
                  progress=False)


def test_version_1_files_load_and_keep_their_last_epoch(sine_model, tmp_path):
    # version 1: no best_epoch in the history, no latest weights in the training state
    data = sine_model.state_dict()
    data["format_version"] = 1
    del data["history"]["best_epoch"]
    del data["training"]["network"]
    path = tmp_path / "v1.pt"
    torch.save(data, path)
    model = SoundModel.load(path, device="cpu")
    assert model.history["best_epoch"] == sine_model.history["epoch"][-1]
    for a, b in zip(model.network.state_dict().values(),
                    sine_model.network.state_dict().values()):
        assert torch.equal(a, b)


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "model.pt"
    atomic_save({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    with pytest.raises(PvrnnError, match="path="):
        atomic_save({}, tmp_path / "no" / "such" / "folder.pt")


def test_files_from_before_a_field_existed_mean_what_they_meant(sine_model, tmp_path):
    """A file without bottleneck / input_noise / representation was trained with none of them
    (not with today's defaults, which have a bottleneck and input noise)."""
    data = sine_model.state_dict()
    for key in ("bottleneck", "input_noise", "representation"):
        del data["config"][key]
    torch.save(data, tmp_path / "older.pt")
    loaded = SoundModel.load(tmp_path / "older.pt", device="cpu")
    assert loaded.config.bottleneck is None and loaded.config.input_noise == 0.0
    assert loaded.config.representation == "pv"
    torch.testing.assert_close(loaded.generate(0.1, seed=2), sine_model.generate(0.1, seed=2))
