"""The ``medseg`` command: the engine from a shell, for scripts, clusters and CI.

Sub-commands so far:
  medseg info PATH...      what the readers make of files or DICOM series folders
  medseg index FOLDER      detect a dataset layout, index it, list every problem
  medseg predict CKPT INPUT... --out DIR   masks, probabilities and uncertainty from a checkpoint
  medseg train CONFIG.yaml [--events jsonl]  train a model (also under torchrun --nproc_per_node N)
  medseg export WS --format F --out DIR  the cleaned dataset (folders, nnU-Net, MONAI) + manifest
  medseg export-onnx CKPT [--out F] [--opset N]  ONNX with dynamic height/width and a short graph summary
  medseg import-weights FILE.pth --config C --classes N --out CKPT  a trusted state dict as a checkpoint
  medseg workspace create|info|history|status|verify   the review workspace beside a dataset
  medseg qc DATASET|WORKSPACE [--json F] [--csv F]  rule-based QC: findings table and report
  medseg rank WORKSPACE [--folds K | --checkpoint CKPT]  label-quality ranking; prints the review queue
  medseg evaluate CKPT... DATASET|WORKSPACE [--split test] [--out DIR]  Dice, IoU, HD95, ASSD, objects per sample
  medseg stats DATASET|WORKSPACE [--out DIR] [--json F]  dataset overview: numbers, summary, PNG plots
  medseg runs DIR... [--out DIR]  training runs side by side: table, CSV, overlaid learning curves

Exit status (every sub-command):
  0    done
  2    the input or the request is wrong: a missing or unreadable file, a bad option, a refused
       destination, skipped inputs (predict without --keep-going); one line on stderr names the
       file or the option
  3    qc --fail-on: findings at or above the given severity are left
  130  interrupted (Ctrl-C, SIGTERM where the command handles it)
  1    a bug in napari-medseg: the traceback is printed; please report it with the traceback
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from medseg.cli.evaluate import add_parser as add_evaluate
from medseg.cli.exits import EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED, one_line
from medseg.cli.export import add_parser as add_export
from medseg.cli.export_onnx import add_parser as add_export_onnx
from medseg.cli.import_weights import add_parser as add_import_weights
from medseg.cli.index import add_parser as add_index
from medseg.cli.info import add_parser as add_info
from medseg.cli.predict import add_parser as add_predict
from medseg.cli.qc import add_parser as add_qc
from medseg.cli.rank import add_parser as add_rank
from medseg.cli.runs import add_parser as add_runs
from medseg.cli.stats import add_parser as add_stats
from medseg.cli.train import add_train_parser as add_train
from medseg.cli.workspace import add_parser as add_workspace
from medseg.errors import BUG_LINE, Cancelled, MedsegError
from medseg.jobs import exit_code_of

_EXIT_CODES = """exit status: 0 done; 2 the input or the request is wrong (a one-line message names the file or
the option); 3 qc --fail-on found what it was asked to fail on; 130 interrupted; 1 a bug in napari-medseg
(the traceback is printed: please report it with the traceback)"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="medseg", description=__doc__.split("\n\n")[0], epilog=_EXIT_CODES)
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (
        add_info,
        add_index,
        add_predict,
        add_train,
        add_export,
        add_export_onnx,
        add_import_weights,
        add_workspace,
        add_qc,
        add_rank,
        add_evaluate,
        add_stats,
        add_runs,
    ):
        add(sub)
    return ap


def run_command(func, args: argparse.Namespace) -> int:
    """One sub-command with the exit codes of the module docstring: clean errors 2, Ctrl-C 130, bugs 1."""
    import traceback

    try:
        return func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MedsegError, OSError) as e:
        print(("\n" if isinstance(e, Cancelled) else "error: ") + one_line(e), file=sys.stderr)
        return exit_code_of(e) if isinstance(e, MedsegError) else EXIT_INPUT
    except Exception:  # noqa: BLE001 - anything else is ours to fix: say so, with what is needed to fix it
        traceback.print_exc()
        print(f"error: {BUG_LINE}", file=sys.stderr)
        return EXIT_BUG


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run_command(args.func, args)
