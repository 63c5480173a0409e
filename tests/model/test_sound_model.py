"""SoundModel: the blog's sine experiment, delta drift vs resets, files, resume, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import pvrnn
from pvrnn import Frames, PvrnnError, SoundModel, SoundModelConfig, metrics
from pvrnn.model.network import SpectralRNN
from pvrnn.model.sound_model import PRESETS

SR = 44100


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sine() -> torch.Tensor:
    return pvrnn.examples.sine(440.0, 3.0, SR)


@pytest.fixture(scope="module")
def sine_model(sine) -> SoundModel:
    """The sine preset trained on a 440 Hz sine (12 epochs, about a second on one core)."""
    model = SoundModel.from_preset("sine")
    model.fit(sine, sample_rate=SR, epochs=12, progress=False, device="cpu")
    return model


@pytest.fixture(scope="module")
def delta_model(clarinet) -> SoundModel:
    """A small delta-mode model of the clarinet, briefly trained: it drifts without resets."""
    audio, rate = clarinet
    model = SoundModel.from_preset("clarinet", mode="delta", hidden_size=32, num_layers=1,
                                   n_components=1)
    model.fit(audio, sample_rate=rate, epochs=30, progress=False, device="cpu")
    return model


def tiny(**overrides) -> SoundModel:
    settings = dict(hidden_size=16, n_partials=6, epochs=2)
    settings.update(overrides)
    return SoundModel.from_preset("sine", **settings)


# -- the blog's experiments ---------------------------------------------------------------------
def test_sine_preset_generates_a_steady_440(sine_model):
    audio = sine_model.generate(seconds=3.0, variance_scale=1e-5, seed=0)
    assert audio.shape == (3 * SR,) and audio.dtype == torch.float32
    cents = metrics.pitch_drift_cents(audio, SR, reference=440.0)
    voiced = cents[~cents.isnan()]
    assert voiced.numel() > 0.95 * cents.numel()
    assert abs(float(voiced.median())) < 20
    assert float(voiced.abs().max()) < 20
    rms = audio.unfold(-1, 2048, 512).square().mean(-1).sqrt()
    assert float(rms.std() / rms.mean()) < 0.10
    assert 0.25 < float(rms.mean()) < 0.45  # the sine's RMS is 0.5 / sqrt(2) = 0.354


def test_delta_mode_drifts_less_with_resets(delta_model, clarinet):
    audio, rate = clarinet
    f0 = float(metrics.estimate_f0(audio, rate).nanmedian())

    def drift(reset_every):
        y = delta_model.generate(seconds=3.0, variance_scale=1.0, reset_every=reset_every,
                                 seed=0, batch=4)
        cents = metrics.pitch_drift_cents(y, rate, reference=f0)
        return float(cents.abs().nanmean(-1).mean())  # mean |cents| over frames and variations

    free, reset = drift(None), drift(0.25)
    assert free > 3 * reset, (free, reset)


# -- files --------------------------------------------------------------------------------------
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
    assert data["format_version"] == 1
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


# -- training -----------------------------------------------------------------------------------
def test_history_format(sine):
    model = tiny()
    history = model.fit(sine, sample_rate=SR, epochs=2, progress=False)
    assert history is model.history
    assert set(history) == {"epoch", "train_loss", "val_loss", "seconds", "frames"}
    assert history["epoch"] == [1, 2]
    assert all(math.isfinite(v) for v in history["train_loss"] + history["val_loss"])
    assert all(s > 0 for s in history["seconds"]) and history["frames"][0] > 0
    history = tiny().fit(sine, sample_rate=SR, epochs=1, validation=0.0, progress=False)
    assert history["val_loss"] == [None]


def test_training_is_deterministic_and_resume_is_exact(sine, tmp_path):
    straight = tiny(optimizer="adam")
    straight.fit(sine, sample_rate=SR, epochs=4, progress=False, seed=5)
    path = tmp_path / "ck.pt"
    interrupted = tiny(optimizer="adam")
    interrupted.fit(sine, sample_rate=SR, epochs=2, progress=False, seed=5, checkpoint=path)
    resumed = tiny(optimizer="adam")
    resumed.fit(sine, sample_rate=SR, epochs=4, progress=False, seed=5, checkpoint=path,
                resume=True)
    assert resumed.history["epoch"] == [1, 2, 3, 4]
    assert resumed.history["train_loss"] == straight.history["train_loss"]
    assert resumed.history["val_loss"] == straight.history["val_loss"]
    for (name, a), b in zip(straight.network.state_dict().items(),
                            resumed.network.state_dict().values()):
        assert torch.equal(a, b), name
    # the checkpoint after epoch 4 is a loadable model
    assert SoundModel.load(path, device="cpu").history["epoch"] == [1, 2, 3, 4]


def test_resume_rejects_other_settings(sine, tmp_path):
    path = tmp_path / "ck.pt"
    tiny().fit(sine, sample_rate=SR, epochs=1, progress=False, checkpoint=path)
    with pytest.raises(PvrnnError, match="lr="):
        tiny().fit(sine, sample_rate=SR, epochs=2, lr=0.5, progress=False, checkpoint=path,
                   resume=True)
    with pytest.raises(PvrnnError, match="hidden_size"):
        tiny(hidden_size=8).fit(sine, sample_rate=SR, epochs=2, progress=False,
                                checkpoint=path, resume=True)
    with pytest.raises(PvrnnError, match="checkpoint="):
        tiny().fit(sine, sample_rate=SR, epochs=2, progress=False, resume=True)


def test_nan_loss_names_the_epoch_and_keeps_the_last_good_checkpoint(sine, tmp_path,
                                                                    monkeypatch):
    import pvrnn.model.sound_model as model_module

    finished = {"epochs": 0}
    real_validation, real_loss = model_module._validation_loss, SpectralRNN.loss

    def counting_validation(*args):
        finished["epochs"] += 1
        return real_validation(*args)

    def poisoned(self, mixture, target):  # NaN from the second epoch on
        loss = real_loss(self, mixture, target)
        return loss * float("nan") if finished["epochs"] >= 1 and self.training else loss

    monkeypatch.setattr(model_module, "_validation_loss", counting_validation)
    monkeypatch.setattr(SpectralRNN, "loss", poisoned)
    model, path = tiny(), tmp_path / "ck.pt"
    with pytest.raises(PvrnnError, match="epoch 2"):
        model.fit(sine, sample_rate=SR, epochs=3, progress=False, checkpoint=path)
    saved = SoundModel.load(path, device="cpu")
    assert saved.history["epoch"] == model.history["epoch"] == [1]
    for a, b in zip(saved.network.state_dict().values(), model.network.state_dict().values()):
        assert torch.equal(a, b)
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_sources_paths_tensors_and_frames(sine, tmp_path):
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


def test_mse_loss_model_trains_and_generates(sine):
    model = tiny(loss="mse")
    history = model.fit(sine, sample_rate=SR, epochs=3, progress=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    audio = model.generate(seconds=0.2, variance_scale=0.0)
    assert audio.shape == (round(0.2 * SR),) and torch.isfinite(audio).all()


# -- generation ---------------------------------------------------------------------------------
def test_generation_shapes_and_determinism(sine_model):
    k = sine_model.config.n_partials
    one = sine_model.generate(seconds=0.25, seed=1)
    assert one.shape == (round(0.25 * SR),)
    many = sine_model.generate(seconds=0.25, seed=1, batch=3)
    assert many.shape == (3, round(0.25 * SR))
    assert torch.equal(sine_model.generate(seconds=0.25, seed=1), one)
    frames = sine_model.generate_frames(40, seed=2)
    assert isinstance(frames, Frames) and frames.shape == (40, k)
    assert sine_model.generate_frames(40, seed=2, batch=2).shape == (2, 40, k)
    a = sine_model.generate_frames(40, seed=2, variance_scale=1.0).magnitude
    b = sine_model.generate_frames(40, seed=3, variance_scale=1.0).magnitude
    assert not torch.equal(a, b)


def test_variance_scale_forms(sine_model):
    n = 30
    flat = sine_model.generate_frames(n, variance_scale=0.3, seed=0)
    tensor = sine_model.generate_frames(n, variance_scale=torch.full((n,), 0.3), seed=0)
    vector = sine_model.generate_frames(n, variance_scale=lambda t: 0.3 + 0 * t, seed=0)
    scalar = sine_model.generate_frames(n, variance_scale=lambda t: 0.3 + 0 * math.sin(t),
                                        seed=0)
    for other in (tensor, vector, scalar):
        torch.testing.assert_close(other.magnitude, flat.magnitude)
    per_item = sine_model.generate_frames(n, variance_scale=torch.full((2, n), 0.3), seed=0,
                                          batch=2)
    assert per_item.shape == (2, n, sine_model.config.n_partials)


def test_resets_draw_seeded_random_frames_from_the_middle(delta_model):
    every = 0.05  # seconds
    r = round(every * delta_model.frame_rate)
    middle = delta_model._reference_frames(0, "middle")[1:].magnitude

    def reset_frames(seed):
        frames = delta_model.generate_frames(200, reset_every=every, seed=seed)
        return frames.magnitude[r - 1 :: r]  # frames r, 2r, ... after the start

    a, b, c = reset_frames(0), reset_frames(0), reset_frames(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    difference = (a[:, None] - middle[None]).abs().amax(-1)  # (resets, candidates)
    assert float(difference.min(-1).values.max()) == 0.0  # each reset is a middle frame
    assert len({int(i) for i in difference.argmin(-1)}) > 3  # not one fixed frame


def test_rate_slows_the_change(delta_model):
    normal = delta_model.generate_frames(150, variance_scale=1.0, seed=0, rate=1.0)
    slow = delta_model.generate_frames(150, variance_scale=1.0, seed=0, rate=0.25)
    assert slow.shape == normal.shape

    def change(f):
        return float(torch.diff(f.deviation, dim=-2).abs().mean())

    assert change(slow) < 0.5 * change(normal)


def test_prime_on_other_audio_and_frames(sine_model):
    other = pvrnn.examples.sine(440.0, 1.0, SR, amplitude=0.3)
    audio = sine_model.generate(seconds=0.25, prime=other, variance_scale=0.0)
    assert torch.isfinite(audio).all()
    frames = sine_model.vocoder.analyze(other)
    again = sine_model.generate(seconds=0.25, prime=frames, variance_scale=0.0)
    assert torch.isfinite(again).all()
    assert sine_model.generate(seconds=0.1, prime=0).shape == (round(0.1 * SR),)


@pytest.mark.parametrize("kwargs,match", [
    (dict(seconds=0.0), "seconds="),
    (dict(seconds=-1.0), "seconds="),
    (dict(seconds=float("nan")), "seconds="),
    (dict(variance_scale=-0.5), "variance_scale="),
    (dict(variance_scale=float("inf")), "variance_scale="),
    (dict(variance_scale=torch.tensor([1.0, -1.0])), "variance_scale="),
    (dict(variance_scale="loud"), "variance_scale="),
    (dict(variance_scale=lambda t: -t), "variance_scale="),
    (dict(reset_every=0.0), "reset_every="),
    (dict(reset_every=1e-5), "reset_every="),
    (dict(rate=0.0), "rate="),
    (dict(batch=0), "batch="),
    (dict(seed=-1), "seed="),
    (dict(temperature=0.0), "temperature="),
    (dict(component="argmax"), "component="),
    (dict(prime=5), "prime="),
    (dict(prime="clarinet.wav"), "prime="),
])
def test_bad_generation_arguments(sine_model, kwargs, match):
    with pytest.raises(PvrnnError, match=match):
        sine_model.generate(**{"seconds": 0.1, **kwargs})


def test_bad_construction_and_unfitted():
    with pytest.raises(PvrnnError, match="preset="):
        SoundModel.from_preset("violin")
    with pytest.raises(PvrnnError, match="hiden_size"):
        SoundModel.from_preset("sine", hiden_size=10)
    with pytest.raises(PvrnnError, match="mode="):
        SoundModel(mode="relative")
    with pytest.raises(PvrnnError, match="hop_length="):
        SoundModelConfig(n_fft=512, hop_length=1024)
    with pytest.raises(PvrnnError, match="not fitted"):
        SoundModel().generate(seconds=1.0)
    with pytest.raises(PvrnnError, match="not fitted"):
        SoundModel().save("never.pt")
    with pytest.raises(PvrnnError, match="device="):
        SoundModel().fit(torch.zeros(10), sample_rate=SR, device="tpu")


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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_trained_model_loads_on_cpu(sine, tmp_path):
    model = tiny()
    model.fit(sine, sample_rate=SR, epochs=2, progress=False, device="cuda")
    assert model.device.type == "cuda"
    audio = model.generate(seconds=0.2, seed=0)
    assert audio.device.type == "cuda"
    model.save(tmp_path / "gpu.pt")
    cpu = SoundModel.load(tmp_path / "gpu.pt", device="cpu")
    assert cpu.device.type == "cpu"
    assert torch.isfinite(cpu.generate(seconds=0.2, seed=0)).all()


def test_gru_model_trains_and_generates(sine):
    model = tiny(cell="gru", n_components=2)
    model.fit(sine, sample_rate=SR, epochs=1, progress=False)
    audio = model.generate(seconds=0.2, batch=2, seed=0)
    assert audio.shape == (2, round(0.2 * SR)) and torch.isfinite(audio).all()
