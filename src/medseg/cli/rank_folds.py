"""``medseg rank --folds K`` one fold per job, merged after: ``--fold I``, ``--merge``, ``--devices``.

A scheduler runs ``medseg rank WS --folds K --fold I`` for I = 0 .. K-1 anywhere the workspace
can be read (each job writes its fold file under the runs folder, nothing into the workspace),
then ``medseg rank WS --folds K --merge`` (the same options) checks and stores them and prints
the queue a single run prints. ``--devices cuda:0,cuda:1`` runs the folds here, one process per
device; with several local GPUs and no ``--device`` that is the default. docs/CLUSTER.md has a
Slurm example.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_fold_flags(p) -> None:
    p.add_argument(
        "--fold",
        type=int,
        default=None,
        metavar="I",
        help="with --folds K: train and score fold I (0..K-1) only, into a fold file under the runs folder "
        "(for a scheduler's array job; then --merge)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --folds K: check the K fold files (--fold jobs with the same options) and store the ranking",
    )
    p.add_argument(
        "--devices",
        default=None,
        metavar="LIST",
        help="with --folds K: run the folds in parallel, one process per device, e.g. cuda:0,cuda:1 or cpu,cpu "
        "(default: every local GPU when there are several and no --device)",
    )


def fold_mode(args: argparse.Namespace) -> str | None:
    """The mode asked for: "fold", "merge", "parallel", or None (the sequential ranking); RankingError for a
    wrong combination."""
    from medseg.errors import RankingError

    asked = [
        f for f, on in (("--fold", args.fold is not None), ("--merge", args.merge), ("--devices", args.devices)) if on
    ]
    if asked and args.folds is None:
        raise RankingError(f"{asked[0]} needs --folds K (the out-of-fold ranking it belongs to)")
    if len(asked) > 1:
        raise RankingError(f"{' and '.join(asked)}: give one of them")
    if asked and (args.checkpoint or args.fit_all):
        raise RankingError(
            f"{asked[0]} belongs to --folds K, not to {'--checkpoint' if args.checkpoint else '--fit-all'}"
        )
    if asked:
        return asked[0][2:]
    if args.folds is not None and not args.checkpoint and args.device is None:
        from medseg.qc.fold_parallel import local_gpus

        if len(local_gpus()) > 1:
            return "parallel"
    return None


def fold_job(ws, args: argparse.Namespace, mode: str, config):
    """The job (a function of the cancel token) of ``mode``."""
    from medseg.qc.fold_files import iter_merge_folds, iter_rank_fold
    from medseg.qc.fold_parallel import iter_rank_parallel, local_gpus

    common = {
        "folds": args.folds,
        "seed": args.fold_seed,
        "method": args.method,
        "runs_dir": args.runs,
        "init_from": args.init_from,
        "encoder_weights": args.encoder_weights,
    }
    if mode == "fold":
        return lambda token: iter_rank_fold(ws, config, fold=args.fold, cancel=token, **common)
    if mode == "merge":
        return lambda token: iter_merge_folds(ws, config, command=fold_command_line(args), **common)
    devices = args.devices.split(",") if args.devices else local_gpus()
    return lambda token: iter_rank_parallel(ws, config, devices=devices, cancel=token, **common)


def fold_command_line(args: argparse.Namespace) -> str:
    """The start of the fold jobs' command line, for the message naming a missing fold."""
    return f"medseg rank {shlex.quote(str(args.workspace))} --folds {args.folds} (with this merge's options)"


def report_fold(end, args: argparse.Namespace) -> int:
    """After ``--fold I``: where its file is, and what comes next."""
    print(f"fold {args.fold} of {args.folds}: {end}", file=sys.stderr)
    print(
        f"when all {args.folds} folds are done: medseg rank {shlex.quote(str(args.workspace))} --folds {args.folds} "
        "--merge (with the same options)",
        file=sys.stderr,
    )
    return 0
