"""``medseg train CONFIG.yaml``: run the Trainer in this process, alone or as one rank under torchrun.

Output: a progress bar on stderr, or with ``--events jsonl`` exactly one JSON
event per line on stdout and nothing else (anything else that writes to stdout,
Python or C, is sent to stderr), so another process can follow the run.
SIGINT/SIGTERM ask the Trainer to stop after the current step and write its
checkpoint; a second SIGINT aborts at once. A finished run's best checkpoint is
then evaluated on the validation split into RUN/evaluation/ (per_sample.csv,
summary.json: :mod:`medseg.cli.train_eval`; ``--no-evaluation`` skips it).

Exit status: 0 finished, 130 cancelled (the checkpoint was written: the shell's
"interrupted", so scripts can tell it from a failure), 2 invalid config, command
line or data (the message names the file or option), 1 a bug in napari-medseg
(the traceback is printed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medseg.cli.exits import EXIT_BUG, EXIT_DONE, EXIT_INPUT, EXIT_INTERRUPTED
from medseg.cli.options import TRAINING_FLAG_KEYS, add_training_flags
from medseg.cli.progress import Bar, cancel_on_signals
from medseg.cli.train_eval import final_evaluation
from medseg.cli.train_output import TrainLines, event_output

STOP_NOTE = "stopping after the current step and writing a checkpoint (Ctrl-C again to abort without one)"

# flag -> dotted config key; applied after the YAML and after every --set
FLAG_KEYS = {
    "root": "data.root",
    **TRAINING_FLAG_KEYS,
    "precision": "precision",
    "out": "out_dir",
    "slices": "data.slices",
    "window": "data.window",
    "labels": "data.statuses",
    "tensorboard": "tensorboard",
}


def window_arg(text: str):
    """``--window``: "percentile", "dicom", or CENTER,WIDTH (e.g. 40,400: a CT soft-tissue window in HU)."""
    if text in ("percentile", "dicom"):
        return text
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected CENTER,WIDTH (e.g. 40,400), percentile or dicom"
        ) from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the window's width must be > 0")
    return [center, width]


def labels_arg(text: str) -> list[str]:
    """``--labels``: a name of :data:`~medseg.workspace.label_sets.LABEL_SETS`, as the statuses it trains on."""
    from medseg.workspace.label_sets import LABEL_SETS

    if text not in LABEL_SETS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(LABEL_SETS)}")
    return list(LABEL_SETS[text])


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config (also under torchrun --nproc_per_node N)",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("config", help="training config (YAML); flags below override its fields")
    p.add_argument("--root", metavar="DIR", help="data.root: the dataset folder")
    add_training_flags(p)
    p.add_argument(
        "--slices",
        type=int,
        metavar="K",
        help="data.slices: on volumes, train 2.5-D on K neighbouring slices (odd) as channels (default 1)",
    )
    p.add_argument(
        "--window",
        type=window_arg,
        metavar="W",
        help="data.window: CENTER,WIDTH (CT in HU, e.g. 40,400), percentile (1..99 %%: MR; of the whole volume "
        "for volumes) or dicom; stored in the checkpoint and applied the same way at prediction",
    )
    p.add_argument(
        "--labels",
        type=labels_arg,
        metavar="L",
        help="on a workspace (--root WORKSPACE.medseg): which samples' current labels train: reviewed "
        "(accepted + corrected), corrected, or all (every sample not excluded: the default); data.statuses",
    )
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="tensorboard: also write TensorBoard event files into RUN/tensorboard (needs the tensorboard package)",
    )
    p.add_argument("--out", metavar="DIR", help="out_dir: the run folder (checkpoints, config copy, event log)")
    p.add_argument("--resume", metavar="RUN_OR_CKPT", help="continue a run folder or a last.medseg checkpoint")
    p.add_argument(
        "--events",
        choices=["none", "jsonl"],
        default="none",
        help="jsonl: one JSON event per line on stdout and nothing else (default: progress bar)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, e.g. --set data.image_size=[128,160] --set optim.name=sgd "
        "(VALUE is read as YAML; repeatable)",
    )
    p.add_argument(
        "--no-evaluation",
        action="store_true",
        help="skip the final evaluation of best.medseg on the validation split (RUN/evaluation/)",
    )
    p.add_argument(
        "--weights-digest",
        metavar="DIR",
        help="after training write DIR/rank<N>.sha256, a digest of this rank's parameters "
        "(to check that data-parallel replicas agree)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of a failure")
    p.set_defaults(func=cmd_train)


def build_config(args: argparse.Namespace):
    """The TrainConfig from the YAML, then ``--set`` overrides, then the named flags; ConfigError lists all problems."""
    from medseg.cli.options import build_config as build

    return build(args, FLAG_KEYS)


def check_run_folder(config) -> Path:
    """The run folder a user chose, refused inside the training data's source files or a workspace."""
    from medseg.destinations import check_destination

    return check_destination(
        config.out_dir, sources=[config.data.root] if config.data.root else [], purpose="the training run"
    )


def resume_target(path: str | None) -> Path | None:
    """A run folder means its ``last.medseg`` (the resumable checkpoint); a checkpoint is taken as it is."""
    if path is None:
        return None
    p = Path(path)
    return p / "last.medseg" if (p / "last.medseg").is_dir() else p


def cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    jsonl = args.events == "jsonl"
    bar = Bar("train", "step", quiet=jsonl)
    # handlers first: a cancel that arrives while torch is still importing must not kill the process; the
    # Trainer gets the token up front and looks at it after each step (on every rank at the same step)
    with event_output(jsonl) as emit, cancel_on_signals(bar.note, STOP_NOTE) as token:
        try:
            return _train(args, emit, token, bar)
        except KeyboardInterrupt:  # the second Ctrl-C: stop now, without the checkpoint of this step
            from medseg.jobs import Failed

            _fail(
                emit,
                Failed(
                    "aborted by a second interrupt; the current step has no checkpoint (the last one "
                    "written at an epoch end or cancel is intact)",
                    "KeyboardInterrupt",
                    EXIT_INTERRUPTED,
                ),
                args,
            )
            return EXIT_INTERRUPTED
        finally:
            bar.close()


def _failed(e: BaseException, tb: str = "", during_training: bool = False):
    """A ``Failed`` event for ``e``: exit 2 for a clean error (bad data, config or request), else 1 (a bug).
    Before training an OSError is a file the user named; during training it is named with its type."""
    from medseg.errors import MedsegError
    from medseg.jobs import Failed

    clean = isinstance(e, MedsegError) or (isinstance(e, OSError) and not during_training)
    message = f"{type(e).__name__}: {e}" if during_training or not clean else str(e)
    return Failed(message, type(e).__name__, EXIT_INPUT if clean else EXIT_BUG, tb)


def _train(args: argparse.Namespace, emit, token, bar: Bar) -> int:
    from medseg.errors import DestinationError
    from medseg.training.config import ConfigError

    try:
        config = build_config(args)
        check_run_folder(config)
    except (ConfigError, DestinationError) as e:
        _fail(emit, _failed(e), args)
        return EXIT_INPUT

    import traceback

    from medseg.errors import Cancelled
    from medseg.jobs import Result, drive
    from medseg.training.distributed import DistContext
    from medseg.training.trainer import Trainer

    ctx = None
    try:
        ctx = DistContext.from_env(config.device)
        trainer = Trainer(config, cancel=token, resume=resume_target(args.resume), dist=ctx)
    except Exception as e:  # noqa: BLE001 - whoever reads the stream gets an event, not a dead pipe
        failed = _failed(e, traceback.format_exc())
        _fail(emit, failed, args, ctx)
        _cleanup(ctx)
        return (
            failed.exit_code
            if failed.exit_code == EXIT_INPUT
            else _bug(EXIT_BUG, _tb_unless_shown(args, emit, failed.traceback))
        )
    main = ctx is None or ctx.is_main
    if not main:
        bar.close()
    lines = TrainLines(bar)
    code = EXIT_BUG
    try:
        # drive() without the token: the Trainer looks at it itself, so every rank stops at the same step
        for event in drive(trainer.run()):
            if isinstance(event, Result):
                code = EXIT_DONE
            elif isinstance(event, Cancelled):
                code = EXIT_INTERRUPTED
            evaluate = main and isinstance(event, Result) and not args.no_evaluation
            if emit is not None and main:
                if evaluate:  # before the Result: whoever follows the stream finds the files when it ends
                    final_evaluation(trainer, event.value, emit, token)
                emit(event)
            elif main:
                bar(event)
                lines(event)
                if evaluate:
                    _show_evaluation(trainer, event.value, token)
        if args.weights_digest:
            _write_digest(trainer, Path(args.weights_digest), ctx)
    except Exception as e:  # noqa: BLE001 - the Trainer logged it; the stream and the exit code say it
        failed = _failed(e, traceback.format_exc(), during_training=True)
        last = trainer.last_path if trainer.last_path.is_dir() else None
        _fail(emit, failed, args, ctx, last)
        code = (
            EXIT_INPUT
            if failed.exit_code == EXIT_INPUT
            else _bug(EXIT_BUG, _tb_unless_shown(args, emit, failed.traceback))
        )
    finally:
        _cleanup(ctx)
    return code


def _show_evaluation(trainer, summary, token) -> None:
    """The final evaluation with its own bar, then its table (``medseg evaluate``'s)."""
    from medseg.evaluate.table import summary_lines

    bar = Bar("final evaluation", "sample")
    try:
        result = final_evaluation(trainer, summary, bar, token)
    finally:
        bar.close()
    if result is not None:
        for line in summary_lines(result):
            print(line, file=sys.stderr)


def _tb_unless_shown(args, emit, tb: str) -> str:
    return "" if args.verbose and emit is None else tb  # -v has printed it with the error already


def _bug(code: int, tb: str = "") -> int:
    """Print what a bug report needs (the traceback, where to send it); ``code``."""
    from medseg.errors import BUG_LINE

    if tb:
        print(tb.rstrip(), file=sys.stderr)
    print(f"error: {BUG_LINE}", file=sys.stderr)
    return code


def _fail(emit, event, args, ctx=None, last_checkpoint: Path | None = None) -> None:
    if ctx is not None and not ctx.is_main:
        print(f"rank {ctx.rank}: error: {event.message}", file=sys.stderr)
    elif emit is not None:
        emit(event)
    else:
        print(f"error: {event.message}", file=sys.stderr)
        if args.verbose and event.traceback:
            print(event.traceback, file=sys.stderr)
        if last_checkpoint is not None:
            print(f"last good checkpoint: {last_checkpoint}", file=sys.stderr)


def _cleanup(ctx) -> None:
    if ctx is not None:
        ctx.cleanup()


def _write_digest(trainer, folder: Path, ctx) -> None:
    from medseg.destinations import check_destination
    from medseg.training.distributed import parameter_digest

    model = getattr(trainer, "model", None)
    if model is None:
        raise RuntimeError("--weights-digest: the Trainer exposes no .model to digest")
    check_destination(folder, sources=[trainer.config.data.root], purpose="the weights digests")
    folder.mkdir(parents=True, exist_ok=True)
    rank = ctx.rank if ctx is not None else 0
    (folder / f"rank{rank}.sha256").write_text(parameter_digest(model) + "\n")
