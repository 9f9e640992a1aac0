"""``medseg rank WORKSPACE``: model-based label-quality ranking from the shell, then the review queue's top.

By default two small models of one recipe are fitted to every label (``--fit-all``,
:mod:`medseg.qc.fit_all`; ``--models N``): the labels they cannot fit come first. On CVC-ClinicDB
video blocks never used for choosing it raised the queue's AUROC from 0.949
(model-free) to 0.974, where five out-of-fold models gave 0.947, in less than
half their time. ``--folds K`` trains K out-of-fold models instead (each on the
other folds' groups, with a validation Dice line per fold), ``--checkpoint
CKPT`` scores with one given model (fast, but biased: the model may have learnt
the very labels it judges). The first Ctrl-C (or SIGTERM) stops after the
current training step or sample: the folds already scored stay stored; a
second Ctrl-C aborts at once, which loses only the fold in progress.

Volume workspaces (CT/MR cases) are ranked the same way: the folds split
cases, the fold models train on slices, each volume scores as its worst
slices, and the queue names the slices to open.

``--folds K --fold I`` trains and scores fold I alone into a fold file under the runs folder
(one job of a scheduler's array; it writes nothing into the workspace), ``--folds K --merge``
checks the K fold files and stores the ranking a single run gives; ``--devices cuda:0,cuda:1``
runs the folds here, one process per device (docs/CLUSTER.md).

Exit status: 0 done, 130 interrupted (completed folds kept), 2 a wrong input or option, 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg.cli.options import TRAINING_FLAG_KEYS, add_training_flags
from medseg.cli.rank_folds import add_fold_flags

# Small and CPU-affordable: 960 steps of 8 images at 64x96 whatever the dataset's size (max_steps_per_epoch
# bounds an epoch of a large one), the checkpoint of best validation Dice on an inner split of each fold's
# training groups. Chosen on CVC-ClinicDB frames 1-300 (fold models trained on ~150 frames of unseen video
# blocks): held-out Dice 0.37-0.41 where 25 epochs without the step bound reached 0.08 (median 0).
# On a GPU, raise image_size, width and epochs.
DEFAULT_CONFIG = {
    "data": {"val_fraction": 0.2, "image_size": [64, 96], "cache_mb": 512},
    "model": {"arch": "PlainUNet", "kwargs": {"depth": 4, "base_channels": 8, "dropout": 0.0}},
    "loss": "seed004_bce_dice",
    "augment": "light",
    "optim": {"name": "adam", "lr": 0.003, "scheduler": "cosine"},
    "epochs": 60,
    "max_steps_per_epoch": 16,
    "batch_size": 8,
    "precision": "auto",
    "val_overlays": 0,
}
# --fit-all: the same network passing over every sample each epoch, no validation split (module
# medseg.qc.fit_all: 60 passes ranked the planted errors of CVC-ClinicDB frames 1-297 best)
FIT_ALL_CONFIG = {
    **DEFAULT_CONFIG,
    "data": {**DEFAULT_CONFIG["data"], "val_fraction": 0.0},
    "max_steps_per_epoch": 40,  # medseg.qc.fit_all.MAX_STEPS_PER_EPOCH: 60 epochs within 2,400 steps
    "channels_last": True,
}
FLAG_KEYS = {**TRAINING_FLAG_KEYS, "image_size": "data.image_size"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rank",
        help="rank a workspace's labels by model agreement (out-of-fold) and print the review queue",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("workspace", metavar="WORKSPACE", help="a workspace folder (medseg workspace create)")
    p.add_argument(
        "--folds",
        type=int,
        default=None,
        metavar="K",
        help="rank with K out-of-fold models trained on group folds instead (a validation Dice line per fold)",
    )
    p.add_argument(
        "--fit-all",
        action="store_true",
        help="the default: a small model fitted to every label, the labels it cannot fit come first "
        "(biased by design, weighed by what it finds in errors planted in your labels; 60 passes over the data)",
    )
    p.add_argument(
        "--models",
        type=int,
        default=None,
        metavar="N",
        help="how many models of that recipe (seeds SEED, SEED+1, ...) score each label by their mean "
        "probabilities (default 2: steadier than one; 1 takes half the time)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="CKPT",
        help="score with this one model instead (biased: it may have seen these labels)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="YAML",
        help="training config of the ranking model(s) (default: a small PlainUNet at 64x96, 60 epochs)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any training config field, e.g. --set augment=none (VALUE is YAML)",
    )
    helps = {"seed": "training seed (the fold split uses 0 unless --fold-seed)"}
    add_training_flags(p, helps)
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="training size (default 64 96)")
    p.add_argument("--fold-seed", type=int, default=0, metavar="N", help="seed of the group K-fold split (0)")
    add_fold_flags(p)
    p.add_argument(
        "--init-from",
        default=None,
        metavar="CKPT",
        help="start each fold model from this checkpoint (same architecture and classes as the fold models)",
    )
    p.add_argument(
        "--encoder-weights",
        default=None,
        metavar="FILE",
        help="a local encoder weights file for the fold models (smp architectures; nothing is downloaded)",
    )
    p.add_argument(
        "--method", default=None, help="score method name (default fit-all, oof-kK with --folds, checkpoint)"
    )
    p.add_argument("--runs", default=None, metavar="DIR", help="training run folders (default WORKSPACE/runs/METHOD)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="queue rows printed (20)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the whole queue as JSON")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the whole queue as CSV")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace queue files an earlier medseg run wrote (and nobody changed since)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rank)


def build_rank_config(args: argparse.Namespace):
    """FIT_ALL_CONFIG (DEFAULT_CONFIG with ``--folds``) or the YAML, then ``--set``, then the flags, on the
    workspace; ConfigError lists every problem."""
    from medseg.cli.options import build_config

    defaults = DEFAULT_CONFIG if getattr(args, "folds", None) is not None else FIT_ALL_CONFIG
    return build_config(args, FLAG_KEYS, defaults, data_root=str(args.workspace))


def cmd_rank(args: argparse.Namespace) -> int:
    from medseg.cli.progress import Bar
    from medseg.errors import Cancelled
    from medseg.workspace import Workspace

    ws = Workspace.open(args.workspace)  # clean errors exit 2, bugs 1: medseg.cli.main reports them
    with ws:
        args.outputs = _check_outputs(ws, args)
        bar = Bar("rank", "step", args.quiet)
        try:
            end = _run(ws, args, bar)
        except Cancelled as c:
            if c.partial is None:
                raise
            bar.close()
            print(
                f"interrupted: {len(c.partial.scores)} samples of {c.partial.folds_done} completed fold(s) are "
                f"stored under {c.partial.method!r}",
                file=sys.stderr,
            )
            return _report(ws, c.partial, args, cancelled=True)
        except KeyboardInterrupt:
            print("\naborted: the folds scored before this one are stored", file=sys.stderr)
            return 130
        finally:
            bar.close()
        if args.fold is not None:
            from medseg.cli.rank_folds import report_fold

            return report_fold(end, args)
        return _report(ws, end, args)


def _check_outputs(ws, args: argparse.Namespace) -> dict:
    """Refuse, before any training, outputs inside the workspace or its dataset or over a foreign file.

    ``--runs`` chosen by the user is refused anywhere in the workspace: only the default
    (WORKSPACE/runs/METHOD) is medseg's own job area there."""
    from medseg.destinations import check_destination
    from medseg.ownership import guarded_file

    if args.runs is not None:
        check_destination(args.runs, workspaces=[ws.root], purpose="the ranking's fold runs")
    return {
        kind: guarded_file(path, purpose="the review queue", workspaces=[ws.root], overwrite=args.overwrite)
        for kind, path in (("json", args.json), ("csv", args.csv))
        if path
    }


def _run(ws, args: argparse.Namespace, bar):
    """Run the ranking to its end: its RankResult; the first Ctrl-C cancels (Cancelled, with the folds kept)."""
    from medseg.cli.progress import run_job
    from medseg.qc.oof import iter_rank_oof
    from medseg.qc.ranking import BIAS_NOTE, iter_score_checkpoint

    chosen = [
        name
        for name, on in (
            ("--fit-all", args.fit_all),
            ("--folds", args.folds is not None),
            ("--checkpoint", bool(args.checkpoint)),
        )
        if on
    ]
    from medseg.errors import RankingError

    if len(chosen) > 1:
        raise RankingError(f"{' and '.join(chosen)} are different ways to rank: give one of them, not both")
    if args.models is not None and (args.checkpoint or args.folds is not None):
        raise RankingError("--models is for the fitted ranking (the default), not --folds or --checkpoint")
    from medseg.cli.rank_folds import fold_job, fold_mode

    mode = fold_mode(args)
    if mode is not None:  # --fold I, --merge, --devices: medseg.qc.fold_files, medseg.qc.fold_parallel
        return run_job(fold_job(ws, args, mode, build_rank_config(args)), bar=bar, on_event=_Lines(bar))
    if not args.checkpoint and args.folds is None:
        from medseg.qc.fit_all import iter_rank_fit

        config = build_rank_config(args)

        def job(token):
            return iter_rank_fit(
                ws,
                config,
                method=args.method,
                cancel=token,
                runs_dir=args.runs,
                init_from=args.init_from,
                encoder_weights=args.encoder_weights,
                models=args.models,
            )
    elif args.checkpoint:
        bar.note(f"warning: {BIAS_NOTE}; out-of-fold ranking (no --checkpoint) is unbiased")

        def job(token):
            return iter_score_checkpoint(
                ws, args.checkpoint, device=args.device or "auto", cancel=token, method=args.method or "checkpoint"
            )
    else:
        config = build_rank_config(args)

        def job(token):
            return iter_rank_oof(
                ws,
                config,
                folds=args.folds,
                seed=args.fold_seed,
                method=args.method,
                cancel=token,
                runs_dir=args.runs,
                init_from=args.init_from,
                encoder_weights=args.encoder_weights,
            )

    return run_job(job, bar=bar, on_event=_Lines(bar))


class _Lines:
    """The lines above the bar: each fold's start and end (and, without a bar, its epochs)."""

    def __init__(self, bar):
        self.bar, self.where = bar, "model"

    def __call__(self, event) -> None:
        from medseg.qc.ranking import FoldScored, FoldStarted
        from medseg.training.events import EpochEnd

        if isinstance(event, FoldStarted):
            one = event.folds == 1  # --fit-all: one model on every label
            self.where = "model fitted to every label" if one else f"fold {event.fold + 1}/{event.folds}"
            if not self.bar.enabled:
                self.bar.note(f"{self.where}: training on {event.n_train}, scoring {event.n_score}")
        elif isinstance(event, EpochEnd) and not self.bar.enabled:
            self.bar.note(f"{self.where}: epoch {event.epoch + 1} loss {event.train_loss:.4f}")
        elif isinstance(event, FoldScored) and event.folds == 1:
            self.bar.note(f"{self.where}: {event.n_scored} samples scored in {event.seconds:.0f} s")
        elif isinstance(event, FoldScored):
            self.where = f"fold {event.fold + 1}/{event.folds}"  # --merge and --devices start no fold here
            dice = "no validation Dice" if event.val_dice is None else f"validation Dice {event.val_dice:.3f}"
            self.bar.note(f"{self.where}: {dice}; {event.n_scored} samples scored in {event.seconds:.0f} s")


def _report(ws, end, args: argparse.Namespace, cancelled: bool = False) -> int:
    from medseg.qc.queue import review_queue

    method = end.method
    if cancelled and not end.scores:
        return 130
    from medseg.qc.ranking import describe_fold_dice

    queue = review_queue(ws, method=method)
    details = ws.score_details(method)
    print(queue_table(queue, args.top, details))
    if describe_fold_dice(end):
        print(f"{describe_fold_dice(end)[0].upper()}{describe_fold_dice(end)[1:]}", file=sys.stderr)
    elif end.biased and end.folds_done == 1 and not args.checkpoint:
        print(describe_fit(details, getattr(args, "init_from", None)), file=sys.stderr)
    for kind, (folder, path) in getattr(args, "outputs", {}).items():
        folder.mkdir()
        if kind == "json":
            path.write_text(json.dumps([item_dict(i, details.get(i.sample_id)) for i in queue], indent=1))
        else:
            write_csv(queue, path, details)
        folder.record(path)
        print(f"queue: {path}", file=sys.stderr)
    return 130 if cancelled else 0


def describe_fit(details: dict, init_from=None) -> str:
    """The --fit-all model's agreement with the labels it was fitted to, in one line; ``init_from``: the
    checkpoint it started from (--init-from), named so that a reader knows what the model knew before."""
    import numpy as np

    models = max((len(d.get("models") or ()) for d in details.values()), default=0)
    who = f"The mean of the {models} models fitted to every label" if models > 1 else "The model fitted to every label"
    who += f" (started from {init_from})" if init_from else ""
    dice = [d["dice"] for d in details.values() if isinstance(d.get("dice"), (int, float))]
    if not dice:
        return f"{who} scored no sample"
    return f"{who} agrees with them at median Dice {float(np.median(dice)):.2f}: the labels it could not fit come first"


def item_dict(item, details: dict | None = None) -> dict:
    """A queue row for JSON; ``details`` (its score's) add the fold that scored it and that fold's Dice."""
    d = details or {}
    return {
        "fold": d.get("fold"),
        "fold_dice": d.get("fold_dice"),
        "sample_id": item.sample_id,
        "status": item.status,
        "score": item.score,
        "method": item.method,
        "priority": item.priority,
        "signals": list(item.signals),
        "standings": dict(item.standings),
        "reason": item.reason,
        "slices": list(item.slices),
        "findings": [f.to_dict() for f in item.findings],
    }


def write_csv(queue, path: Path, details: dict | None = None) -> None:
    from medseg.cli.queue_csv import write_queue_csv

    write_queue_csv(queue, path, details)


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def queue_table(queue, top: int, details: dict) -> str:
    """The queue's first ``top`` rows: its order is the priority's (ascending), the signals say why."""
    rows = [f"{'#':>4}  {'sample':<16} {'status':<11} {'priority':>8} {'score':>6} {'dice':>5} {'clean':>6}  why"]
    for k, item in enumerate(queue[:top], 1):
        d = details.get(item.sample_id, {})
        why = "; ".join(item.signals) or item.reason
        rows.append(
            f"{k:>4}  {item.sample_id:<16.16} {item.status:<11} {item.priority:>8.3f} {_num(item.score):>6} "
            f"{_num(d.get('dice')):>5} {_num(d.get('cleanlab')):>6}  {why}"
        )
    rest = len(queue) - min(top, len(queue))
    if rest > 0:
        rows.append(f"... {rest} more (--top N, --json FILE)")
    return "\n".join(rows)
