"""``medseg runs DIR...``: training runs side by side.

Each DIR is a run folder (what ``medseg train``, the Fine-tune dock or ``medseg rank`` wrote) or a folder
of run folders. Prints one row per run: model, the data and label revision it trained on, train /
validation samples, epochs done / planned, the best checkpoint's epoch, how the run ended, its time, the
validation Dice per class of the best checkpoint and, where the run has one, the final evaluation's mean
Dice per class (``evaluation/summary.json``). A run whose record files are damaged (a cut-off metrics.csv,
an unreadable summary.json) is listed with what could be read, marked * and explained below the table.
``--out DIR`` writes ``runs.csv`` (the table) and
``runs_curves.png`` (every run's learning curves overlaid); ``--json FILE`` the table for scripts.
Nothing is loaded but the runs' small files: no torch, no model.
"""

from __future__ import annotations

import argparse
import json
import sys

OUT_CSV, OUT_CURVES = "runs.csv", "runs_curves.png"


def cmd_runs(args: argparse.Namespace) -> int:
    from medseg.ownership import OutputFolder, guarded_file
    from medseg.runs.table import format_table, read_runs, table_rows

    # refused before anything is read: never over a file medseg did not write
    out = OutputFolder(args.out, purpose="the runs comparison", overwrite=args.overwrite) if args.out else None
    out_paths = out.check(OUT_CSV, OUT_CURVES) if out else []
    json_out = guarded_file(args.json, purpose="the runs table", overwrite=args.overwrite) if args.json else None
    runs = read_runs(args.dirs)
    print(format_table(runs))
    if out is not None:
        from medseg.runs.curves import plot_runs
        from medseg.runs.table import write_table_csv

        out.mkdir()
        csv_path, png_path = out_paths
        write_table_csv(runs, csv_path)
        plot_runs([(r.name, r.rows) for r in runs], png_path)
        out.record(csv_path, png_path)
        print(f"table: {csv_path}\ncurves: {png_path}", file=sys.stderr)
    if json_out is not None:
        folder, path = json_out
        header, rows = table_rows(runs)
        folder.mkdir()
        records = [
            {
                **dict(zip(header, row)),
                "path": str(r.path),
                "checkpoint": str(r.checkpoint or ""),
                "best": r.best,
                "damaged": r.damaged,
            }
            for r, row in zip(runs, rows)
        ]
        path.write_text(json.dumps({"runs": records}, indent=2, allow_nan=False, default=str), encoding="utf-8")
        folder.record(path)
        print(f"json: {path}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="training runs side by side: model, data revision, epochs, best validation Dice per class, time",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="a run folder or a folder of run folders")
    p.add_argument("--out", metavar="DIR", help=f"write {OUT_CSV} and {OUT_CURVES} (overlaid learning curves)")
    p.add_argument("--json", metavar="FILE", help="write the table as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier medseg runs wrote")
    p.set_defaults(func=cmd_runs)
