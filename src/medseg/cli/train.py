"""``medseg train CONFIG.yaml``: run the Trainer in this process, alone or as one rank under torchrun.

Output: a progress bar on stderr, or with ``--events jsonl`` exactly one JSON
event per line on stdout and nothing else (anything else that writes to stdout,
Python or C, is sent to stderr), so another process can follow the run.
SIGINT/SIGTERM ask the Trainer to stop after the current step and write its
checkpoint; a second SIGINT aborts at once.

Exit status: 0 finished, 130 cancelled (the checkpoint was written: the shell's
"interrupted", so scripts can tell it from a failure), 2 invalid config, command
line or data (the message names the file or option), 1 a bug in napari-medseg
(the traceback is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from medseg.cli.options import set_dotted
from medseg.cli.train_output import Progress, event_output

EXIT_FINISHED, EXIT_FAILED, EXIT_CONFIG, EXIT_CANCELLED = 0, 1, 2, 130

# flag -> dotted config key; applied after the YAML and after every --set
FLAG_KEYS = {
    "root": "data.root", "epochs": "epochs", "batch_size": "batch_size", "lr": "optim.lr",
    "arch": "model.arch", "encoder": "model.encoder", "device": "device", "precision": "precision",
    "out": "out_dir", "seed": "seed",
}


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config (also under torchrun --nproc_per_node N)",
        description=__doc__.split("\n\n", 1)[1])
    p.add_argument("config", help="training config (YAML); flags below override its fields")
    p.add_argument("--root", metavar="DIR", help="data.root: the dataset folder")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="F", help="optim.lr")
    p.add_argument("--arch", metavar="A", help="model.arch, e.g. Unet, UnetPlusPlus, PlainUNet")
    p.add_argument("--encoder", metavar="E", help="model.encoder, e.g. resnet34, efficientnet-b1")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--out", metavar="DIR", help="out_dir: the run folder (checkpoints, config copy, event log)")
    p.add_argument("--resume", metavar="RUN_OR_CKPT", help="continue a run folder or a last.medseg checkpoint")
    p.add_argument("--events", choices=["none", "jsonl"], default="none",
                   help="jsonl: one JSON event per line on stdout and nothing else (default: progress bar)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field, e.g. --set data.image_size=[128,160] --set optim.name=sgd "
                        "(VALUE is read as YAML; repeatable)")
    p.add_argument("--weights-digest", metavar="DIR",
                   help="after training write DIR/rank<N>.sha256, a digest of this rank's parameters "
                        "(to check that data-parallel replicas agree)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of a failure")
    p.set_defaults(func=cmd_train)


def build_config(args: argparse.Namespace):
    """The TrainConfig from the YAML, then ``--set`` overrides, then the named flags; ConfigError lists all problems."""
    import yaml

    from medseg.training.config import ConfigError, TrainConfig

    path = Path(args.config)
    try:
        d = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError([f"cannot read the file: {e.strerror or e}"], str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], str(path)) from None
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError([f"the top level must be a mapping, got {type(d).__name__}"], str(path))
    problems: list[str] = []
    for item in args.overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.001")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            problems.append(f"--set {item!r}: VALUE is not valid YAML ({e})")
            continue
        set_dotted(d, key.strip(), value, problems, f"--set {key.strip()}")
    for attr, key in FLAG_KEYS.items():
        value = getattr(args, attr, None)
        if value is not None:
            set_dotted(d, key, value, problems, f"--{attr.replace('_', '-')}")
    try:
        config = TrainConfig.from_dict(d, source=str(path))
    except ConfigError as e:
        problems.extend(e.problems)
    if problems:
        raise ConfigError(problems, str(path))
    return config


def check_run_folder(config) -> Path:
    """The run folder a user chose, refused inside the training data's source files or a workspace."""
    from medseg.destinations import check_destination

    return check_destination(config.out_dir, sources=[config.data.root] if config.data.root else [],
                             purpose="the training run")


def resume_target(path: str | None) -> Path | None:
    """A run folder means its ``last.medseg`` (the resumable checkpoint); a checkpoint is taken as it is."""
    if path is None:
        return None
    p = Path(path)
    return p / "last.medseg" if (p / "last.medseg").is_dir() else p


def cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    jsonl = args.events == "jsonl"
    show = Progress(enabled=not jsonl)
    # handlers first: a cancel that arrives while torch is still importing must not kill the process
    with event_output(jsonl) as emit, _cancel_on_signals(show) as cancel:
        try:
            return _train(args, emit, cancel, show)
        except KeyboardInterrupt:  # the second Ctrl-C: stop now, without the checkpoint of this step
            from medseg.training.events import Failed

            _fail(emit, Failed(error="aborted by a second interrupt; the current step has no checkpoint "
                                     "(the last one written at an epoch end or cancel is intact)"), args)
            return EXIT_CANCELLED
        finally:
            show.close()


def _train(args: argparse.Namespace, emit, cancel: _CancelRequest, show: Progress) -> int:
    from medseg.errors import DestinationError, MedsegError
    from medseg.training.config import ConfigError
    from medseg.training.events import Failed

    try:
        config = build_config(args)
        check_run_folder(config)
    except (ConfigError, DestinationError) as e:
        _fail(emit, Failed(error=str(e)), args)
        return EXIT_CONFIG

    import traceback

    from medseg.inference.events import CancelToken
    from medseg.training.distributed import DistContext
    from medseg.training.trainer import Trainer

    token = cancel.attach(CancelToken())
    ctx = None
    try:
        ctx = DistContext.from_env(config.device)
        trainer = Trainer(config, cancel=token, resume=resume_target(args.resume), dist=ctx)
    except ConfigError as e:
        _fail(emit, Failed(error=str(e)), args, ctx)
        _cleanup(ctx)
        return EXIT_CONFIG
    except Exception as e:  # noqa: BLE001 - whoever reads the stream gets an event, not a dead pipe
        clean = isinstance(e, (MedsegError, OSError))
        message = str(e) if clean else f"{type(e).__name__}: {e}"
        _fail(emit, Failed(error=message, traceback=traceback.format_exc(), input_error=clean), args, ctx)
        _cleanup(ctx)
        return EXIT_CONFIG if clean else _bug(EXIT_FAILED, _tb_unless_shown(args, emit, traceback.format_exc()))
    main = ctx is None or ctx.is_main
    show.enabled = show.enabled and main
    code = EXIT_FAILED
    try:
        for event in trainer.run():
            code = _EXIT_BY_KIND.get(event.kind, code)
            if event.kind == "failed":
                code = EXIT_CONFIG if event.input_error else \
                    _bug(EXIT_FAILED, _tb_unless_shown(args, emit, event.traceback))
            if emit is not None and main:
                emit(event)
            elif main or event.kind == "failed":
                show(event, args.verbose)
        if args.weights_digest:
            _write_digest(trainer, Path(args.weights_digest), ctx)
    finally:
        _cleanup(ctx)
    return code


_EXIT_BY_KIND = {"finished": EXIT_FINISHED, "cancelled": EXIT_CANCELLED, "failed": EXIT_FAILED}


def _tb_unless_shown(args, emit, tb: str) -> str:
    return "" if args.verbose and emit is None else tb  # -v has printed it with the error already


def _bug(code: int, tb: str = "") -> int:
    """Print what a bug report needs (the traceback, where to send it); ``code``."""
    from medseg.errors import BUG_LINE

    if tb:
        print(tb.rstrip(), file=sys.stderr)
    print(f"error: {BUG_LINE}", file=sys.stderr)
    return code


def _fail(emit, event, args, ctx=None) -> None:
    if ctx is not None and not ctx.is_main:
        print(f"rank {ctx.rank}: error: {event.error}", file=sys.stderr)
    elif emit is not None:
        emit(event)
    else:
        print(f"error: {event.error}", file=sys.stderr)
        if args.verbose and event.traceback:
            print(event.traceback, file=sys.stderr)


def _cleanup(ctx) -> None:
    if ctx is not None:
        ctx.cleanup()


def _write_digest(trainer, folder: Path, ctx) -> None:
    from medseg.training.distributed import parameter_digest

    from medseg.destinations import check_destination

    model = getattr(trainer, "model", None)
    if model is None:
        raise RuntimeError("--weights-digest: the Trainer exposes no .model to digest")
    check_destination(folder, sources=[trainer.config.data.root], purpose="the weights digests")
    folder.mkdir(parents=True, exist_ok=True)
    rank = ctx.rank if ctx is not None else 0
    (folder / f"rank{rank}.sha256").write_text(parameter_digest(model) + "\n")


class _CancelRequest:
    """What the signal handler sets before the Trainer's CancelToken exists, and the token once it does."""

    def __init__(self) -> None:
        self.requested = False
        self.token = None

    def set(self) -> None:
        self.requested = True
        if self.token is not None:
            self.token.set()

    def attach(self, token):
        self.token = token
        if self.requested:
            token.set()
        return token


@contextlib.contextmanager
def _cancel_on_signals(show):
    """First SIGINT/SIGTERM: cancel after the current step. A second SIGINT: KeyboardInterrupt."""
    cancel = _CancelRequest()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum, frame):
        if cancel.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cancel.set()
        show.note(f"{signal.Signals(signum).name}: stopping after the current step and writing a checkpoint "
                  "(Ctrl-C again to abort without one)")

    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: what a Windows parent can send to a child
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
