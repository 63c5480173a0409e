"""``pvrnn train`` and ``pvrnn generate``: learn a sound, then play new ones from the model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import PvrnnError
from .main import add_command, check_output, progress_enabled, read_audio, write_audio

_TRAIN_SETTINGS = ("epochs", "seq_length", "batch_size", "optimizer", "lr", "clip", "validation")
_MODEL_FIELDS = ("mode", "magnitude", "n_partials", "hidden_size", "num_layers",
                 "n_components", "cell", "dropout", "loss", "representation")


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..model.config import PRESETS

    train = add_command(
        subparsers, "train", run_train,
        help="train a sound model on audio files",
        description="Analyse the audio files with the phase vocoder (once: the frames are "
                    "cached in .pvrnn-cache/ beside them, or --cache-dir) and train a "
                    "recurrent mixture-density network on their frames, read from disk in "
                    "shuffled windows. With several files, whole files are held out for "
                    "validation. The model file (the best-validation weights) is written "
                    "atomically after every epoch, with a CSV log beside it (MODEL.csv), so "
                    "an interrupted run keeps its last epoch and continues with --resume. "
                    "--nproc N trains on N processes (DistributedDataParallel, as torchrun "
                    "does). Settings left out come from the preset, or SoundModel()'s "
                    "defaults without --preset.",
        example="pvrnn train clarinet.wav -o clarinet.pt --preset clarinet --epochs 300\n"
                "  pvrnn train clarinet.wav -o clarinet.pt --epochs 600 --resume\n"
                "  pvrnn train library/ -o library.pt --epochs 50 --patience 5 "
                "--schedule plateau --plot\n"
                "  pvrnn train library/ -o library.pt --nproc 2   # = torchrun "
                "--nproc_per_node 2 -m pvrnn train library/ -o library.pt",
    )
    global _TRAIN_PARSER
    _TRAIN_PARSER = train
    train.add_argument("inputs", nargs="+", metavar="AUDIO",
                       help="audio files or folders of them (.wav .flac .ogg .aiff, searched "
                            "recursively) to learn from ('-' reads stdin)")
    train.add_argument("-o", "--output", required=True, metavar="MODEL.pt",
                       help="model file to write")
    train.add_argument("--preset", choices=sorted(PRESETS),
                       help="settings of one of the blog's experiments (default: SoundModel()'s)")
    train.add_argument("--epochs", type=int, help="total epochs (preset default)")
    train.add_argument("--seq-length", type=int, help="frames per BPTT window")
    train.add_argument("--batch-size", type=int, help="parallel streams per sound")
    train.add_argument("--optimizer", choices=("adagrad", "adam"))
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--clip", type=float, help="maximum gradient norm")
    train.add_argument("--validation", type=float, help="held-out fraction of each sound")
    train.add_argument("--mode", choices=("delta", "absolute"), help="codec mode")
    train.add_argument("--magnitude", choices=("linear", "log"), help="magnitude scaling")
    train.add_argument("--n-partials", type=int, help="lowest bins modelled")
    train.add_argument("--hidden-size", type=int, help="units per recurrent layer")
    train.add_argument("--num-layers", type=int, help="recurrent layers")
    train.add_argument("--n-components", type=int, help="mixture components")
    train.add_argument("--cell", choices=("lstm", "gru", "tcn"),
                       help="backbone: recurrent (lstm, gru) or dilated causal CNN (tcn)")
    train.add_argument("--representation", choices=("pv", "dft"),
                       help="frames: magnitude/frequency (pv) or GRUV's real/imag DFT (dft)")
    train.add_argument("--dropout", type=float, help="dropout between recurrent layers")
    train.add_argument("--loss", choices=("mdn", "mse"))
    train.add_argument("--sample-rate", type=float,
                       help="resample the inputs to this rate, Hz (default: the files' own)")
    train.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N'")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation")
    train.add_argument("--resume", action="store_true",
                       help="continue training the model in --output up to --epochs")
    train.add_argument("-f", "--force", action="store_true",
                       help="overwrite --output and its log")
    train.add_argument("--patience", type=int,
                       help="stop after this many epochs without a better validation loss")
    train.add_argument("--schedule", default="constant", choices=("constant", "cosine",
                                                                  "plateau"),
                       help="learning-rate schedule (plateau: halve it when validation stalls)")
    train.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                       help="bf16: autocast the forward pass (GPUs with bfloat16)")
    train.add_argument("--log-every", type=int, default=100, metavar="STEPS",
                       help="also log the running loss every this many steps (0: epochs only)")
    train.add_argument("--plot", action="store_true",
                       help="draw the loss curves to MODEL.png at the end (needs matplotlib)")
    train.add_argument("--nproc", type=int, default=1,
                       help="training processes (DistributedDataParallel: gloo on CPU, NCCL "
                            "on GPUs); batch-size is the global batch")
    train.add_argument("--workers", type=int, default=0,
                       help="data-loader processes reading the corpus")
    train.add_argument("--cache-dir", metavar="FOLDER",
                       help="cache the analysed frames here (default: .pvrnn-cache/ beside "
                            "each file)")
    train.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable or corrupt files with a warning instead of "
                            "stopping")

    gen = add_command(
        subparsers, "generate", run_generate,
        help="generate new sound from a trained model",
        description="Prime the model on its training sound (or --prime), sample new frames "
                    "one at a time and resynthesize them to a WAV file (written atomically).",
        example="pvrnn generate clarinet.pt -o new.wav --seconds 5 --variance-scale 0.3 "
                "--reset-every 0.25",
    )
    gen.add_argument("model", metavar="MODEL.pt", help="model file from 'pvrnn train'")
    gen.add_argument("-o", "--output", required=True, metavar="OUT.wav",
                     help="audio file to write ('-' writes WAV to stdout); with --batch N, "
                          "N files OUT-1.wav ... OUT-N.wav")
    gen.add_argument("--seconds", type=float, default=3.0, help="duration")
    gen.add_argument("--variance-scale", type=float, default=1.0,
                     help="multiplies the model's variance: 0 steady, 1 as learned, >1 wild")
    gen.add_argument("--reset-every", type=float, metavar="SECONDS",
                     help="return to a random frame of the training sound's middle this often")
    gen.add_argument("--rate", type=float, default=1.0,
                     help="speed of change (0.5 evolves half as fast, same pitch)")
    gen.add_argument("--temperature", type=float, default=1.0,
                     help="sharpen (<1) or flatten (>1) the mixture weights")
    gen.add_argument("--component", default="sample", choices=("sample", "most_likely"),
                     help="draw the mixture component, or take the heaviest (sound-rnn)")
    gen.add_argument("--prime", metavar="AUDIO", help="prime on this audio file instead")
    gen.add_argument("--batch", type=int, default=1, help="variations to generate")
    gen.add_argument("--normalize", action="store_true",
                     help="scale the result to a peak of -1 dBFS (otherwise audio that would "
                          "clip is an error)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    gen.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N'")
    gen.add_argument("-f", "--force", action="store_true", help="overwrite the output")


_TRAIN_PARSER: argparse.ArgumentParser | None = None


def _child_args(args: argparse.Namespace) -> list[str]:
    """The ``pvrnn train`` arguments of ``args`` without ``--nproc`` (for the workers)."""
    argv = ["train"]
    for action in _TRAIN_PARSER._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "nproc", "run", "command") or value is None:
            continue
        if not action.option_strings:
            argv.extend(value)
        elif isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[-1]] if value else []
        elif value != action.default:
            argv += [action.option_strings[-1], str(value)]
    return argv


def run_train(args: argparse.Namespace) -> int:
    from ..model import distributed
    from ..model.corpus import FrameCorpus
    from ..model.log import log_path
    from ..model.sound_model import SoundModel

    output = args.output
    if output == "-":
        raise PvrnnError("output='-': expected a file path (the model is written every epoch)")
    log = str(log_path(output))
    if not args.resume:
        check_output(output, force=args.force, inputs=args.inputs)
        if Path(log).exists() and not args.force and not distributed.launched():
            raise PvrnnError(f"output={output!r}: its log {log!r} exists; expected a new path "
                             "or --force")
    elif not Path(output).is_file():
        raise PvrnnError(f"output={output!r}: no model to resume; train without --resume first")
    if args.nproc < 1:
        raise PvrnnError(f"nproc={args.nproc}: expected an integer >= 1")
    if args.log_every < 0:
        raise PvrnnError(f"log_every={args.log_every}: expected an integer >= 0")
    if "-" in args.inputs:
        if args.nproc > 1:
            raise PvrnnError("inputs: '-' (stdin) cannot be read by several processes; "
                             "expected files with --nproc")
        sources, rate = read_audio("-", args.sample_rate)
    else:
        sources = FrameCorpus(args.inputs, sample_rate=args.sample_rate,
                              cache_dir=args.cache_dir, skip_bad=args.skip_bad)
        rate = None
    if args.nproc > 1 and not distributed.launched():
        distributed.launch(args.nproc, _child_args(args), device=args.device)
        return 0
    overrides = {k: getattr(args, k) for k in _MODEL_FIELDS if getattr(args, k) is not None}
    settings = {k: getattr(args, k) for k in _TRAIN_SETTINGS if getattr(args, k) is not None}
    if args.resume:
        model = SoundModel.load(output, device="cpu")
        saved = model.training_settings or {}
        differing = {k: v for k, v in overrides.items() if getattr(model.config, k) != v}
        if differing:
            key = next(iter(differing))
            raise PvrnnError(f"--{key.replace('_', '-')}={differing[key]}: the model in "
                             f"{output!r} has {getattr(model.config, key)!r}; a resumed run "
                             "keeps the model's settings")
        for key in _TRAIN_SETTINGS[1:]:
            settings.setdefault(key, saved.get(key))
        args.seed = saved.get("seed", args.seed)
    elif args.preset is not None:
        model = SoundModel.from_preset(args.preset, **overrides)
    else:
        model = SoundModel(**overrides)
    main = distributed.context().main if distributed.launched() else True
    try:
        history = model.fit(
            sources, sample_rate=rate, device=args.device, checkpoint=output,
            resume=args.resume, progress=progress_enabled(), seed=args.seed,
            patience=args.patience, schedule=args.schedule, precision=args.precision,
            log=log, log_every=args.log_every or None, workers=args.workers, **settings,
        )
        main = distributed.context().main
    finally:
        distributed.teardown()
    if not main:
        return 0
    epochs = history["epoch"][-1] if history["epoch"] else 0
    best = history["best_epoch"]
    val = None if best is None else history["val_loss"][best - 1]
    kept = "" if best is None else f", kept epoch {best}"
    val_text = "" if val is None else f" (validation loss {val:.4g})"
    train_text = f"{history['train_loss'][-1]:.4g}" if history["train_loss"] else "-"
    print(f"wrote {output}: {epochs} epochs{kept}{val_text}, last training loss {train_text}; "
          f"log {log}")
    if args.plot:
        from ..plot import plot_training

        figure = plot_training(log)
        image = str(Path(output).with_suffix(".png"))
        figure.savefig(image)
        print(f"wrote {image}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from ..model.sound_model import SoundModel

    if args.batch < 1:
        raise PvrnnError(f"batch={args.batch}: expected an integer >= 1")
    outputs = [args.output]
    if args.batch > 1:
        if args.output == "-":
            raise PvrnnError("output='-': expected a file path with --batch > 1")
        base = Path(args.output)
        outputs = [str(base.with_name(f"{base.stem}-{i}{base.suffix}"))
                   for i in range(1, args.batch + 1)]
    inputs = [args.model] + ([args.prime] if args.prime else [])
    for path in outputs:
        check_output(path, force=args.force, inputs=inputs)
    model = SoundModel.load(args.model, device=args.device)
    prime = None
    if args.prime:
        prime, rate = read_audio(args.prime, model.sample_rate)
        prime = prime.to(model.device)
    audio = model.generate(
        seconds=args.seconds, variance_scale=args.variance_scale, reset_every=args.reset_every,
        rate=args.rate, prime=prime, seed=args.seed, batch=args.batch,
        temperature=args.temperature, component=args.component, progress=progress_enabled(),
    )
    audio = audio.reshape(args.batch, -1).cpu()
    if args.normalize:
        peak = audio.abs().amax(-1, keepdim=True).clamp_min(1e-12)
        audio = audio * (10 ** (-1 / 20) / peak)
    for path, item in zip(outputs, audio):
        write_audio(path, item, model.sample_rate)
    if args.output != "-":
        seconds = audio.shape[-1] / model.sample_rate
        print(f"wrote {', '.join(outputs)}: {seconds:.2f} s at {model.sample_rate:g} Hz",
              file=sys.stdout)
    return 0
