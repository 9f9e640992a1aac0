"""``medseg qc DATASET|WORKSPACE``: rule-based QC from the shell, with a progress bar and JSON/CSV reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medseg.ownership import guarded_file
from medseg.qc.findings import SEVERITIES


def _param(text: str) -> tuple[str, str, float]:
    try:
        key, value = text.split("=", 1)
        check, name = key.split(".", 1)
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--set takes CHECK.PARAM=NUMBER like specks.min_pixels=30, got {text!r}"
        ) from None
    return check.strip(), name.strip(), int(number) if number.is_integer() and "." not in value else number


def _processes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--processes takes a whole number of at least 1, got {text!r}")
    return n


def _layouts() -> tuple[str, ...]:
    from medseg.datasets import layout_names

    return layout_names()


def add_parser(sub) -> None:
    from medseg.qc.checks_registry import CHECKS

    listing = "; ".join(f"{c.name}: {c.summary}" for c in CHECKS.values())
    p = sub.add_parser(
        "qc",
        help="rule-based QC of a dataset folder or a workspace: findings table, JSON/CSV report",
        description="Checks every sample (grey noise, specks, holes, empty/full/border-only masks, unreadable or "
        "unpaired files, size mismatches, exact and near duplicates and their disagreeing masks, "
        "dark, over-exposed and blurred images; for CT/MR volumes also label ids, grid mismatches, gaps in "
        "an organ's slices, stray 3-D islands and slices unlike their neighbours, naming the slices) and prints "
        "counts per check, then the worst "
        "findings. A workspace gets the findings stored (source 'qc'); a dataset folder is only "
        "read. No mask is changed: fixes are offered, never applied. Checks: " + listing,
    )
    p.add_argument("path", metavar="DATASET|WORKSPACE", help="a dataset folder or a workspace folder")
    p.add_argument("--checks", default=None, metavar="A,B", help="only these checks (default: all)")
    p.add_argument(
        "--set",
        dest="params",
        action="append",
        default=[],
        type=_param,
        metavar="CHECK.PARAM=N",
        help="override a check's parameter, e.g. specks.min_pixels=30 (repeatable)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the findings as CSV")
    p.add_argument(
        "--queue-csv",
        default=None,
        metavar="FILE",
        help="a workspace: write its model-free review queue as CSV (rank, sample, score, each signal's "
        "standing, the reasons; no training)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace report files an earlier medseg run wrote (and nobody changed since)",
    )
    p.add_argument(
        "--min-severity",
        default="info",
        choices=SEVERITIES,
        help="leave out findings below this severity from the table and the reports (default info)",
    )
    p.add_argument("--worst", type=int, default=20, metavar="N", help="findings listed after the counts (20)")
    p.add_argument(
        "--fail-on",
        default=None,
        choices=SEVERITIES,
        help="exit 3 when a finding of this severity or worse is left (for CI)",
    )
    p.add_argument("--layout", default=None, choices=_layouts(), help="force a dataset layout instead of detecting it")
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="decoding threads (default: CPUs - 1, at most 4)"
    )
    p.add_argument(
        "--processes",
        type=_processes,
        default=None,
        metavar="N",
        help="worker processes for decoding and comparing samples: 1 none (threads only), more always "
        "(default: every CPU, at most 4, from 1,000 samples on)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_qc)


def _open(path: Path, layout: str | None):
    """A workspace when the folder holds one, else a dataset."""
    from medseg.workspace.store import DB_NAME

    if (path / DB_NAME).is_file():
        from medseg.workspace import Workspace

        return Workspace.open(path)
    from medseg.datasets import open_dataset

    return open_dataset(path, layout=layout)


def _cmd_qc(args: argparse.Namespace) -> int:
    from medseg.cli.progress import run_job
    from medseg.qc.run import run_qc

    params: dict[str, dict] = {}
    for check, name, value in args.params:
        params.setdefault(check, {})[name] = value
    # refused before hours of QC, not after: never into the dataset or the workspace, nor over a foreign file
    outputs = {
        what: guarded_file(path, purpose=f"the QC {what}", sources=[args.path], overwrite=args.overwrite)
        for what, path in (("report", args.json), ("findings table", args.csv), ("review queue", args.queue_csv))
        if path
    }
    source = _open(Path(args.path), args.layout)
    if args.queue_csv and not hasattr(source, "current_mask"):
        from medseg.errors import WorkspaceError

        raise WorkspaceError(
            f"--queue-csv {args.queue_csv}: {args.path} is a dataset folder, not a workspace; the review queue "
            f"lives in a workspace (medseg workspace create WORKSPACE {args.path}, then medseg qc WORKSPACE)"
        )
    try:  # Ctrl-C: Cancelled (exit 130, nothing written), reported by medseg.cli.main like any error
        report = run_job(
            lambda token: run_qc(
                source, args.checks, params, workers=args.workers, processes=args.processes, cancel=token
            ),
            what="qc",
            unit="sample",
            quiet=args.quiet,
        )
        if args.queue_csv:
            from medseg.cli.queue_csv import write_queue_csv
            from medseg.qc.queue import review_queue

            queue = review_queue(source, models=False)
            folder, path = outputs["review queue"]
            folder.mkdir()
            write_queue_csv(queue, path)
            folder.record(path)
            print(f"queue: {path}", file=sys.stderr)
    finally:
        if hasattr(source, "close"):
            source.close()
    shown = report.at_least(args.min_severity)
    print(shown.table(args.worst))
    for what, (folder, path) in outputs.items():
        if what == "review queue":
            continue  # written above, while the workspace was open
        folder.mkdir()
        shown.to_json(path) if what == "report" else shown.to_csv(path)
        folder.record(path)
        print(f"{'report' if what == 'report' else 'findings'}: {path}", file=sys.stderr)
    if args.fail_on and report.at_least(args.fail_on).findings:
        return 3
    return 0
