"""A run folder's record files and ``metrics.csv``: one row per finished epoch.

``metrics.csv`` columns: ``epoch`` (1-based: the number of epochs done, as
people count them; the events count from 0), ``train_loss``, then each
validation metric the epoch measured as ``val_<metric>`` (the mean over
classes) and ``val_<metric>/<class>`` (``val_loss``, ``val_dice``,
``val_dice/polyp``, ``val_iou/...``, ``val_hd95/...`` and ``val_assd/...``
when the run measures surface distances, in the spacing's unit), ``lr`` (the
learning rate of the epoch's last step) and ``seconds`` (the epoch's wall time,
validation included). A metric that is undefined (a class absent from every
validation image) is an empty cell.

The file is rewritten whole, atomically, at each epoch end: a resumed run that
repeats an epoch replaces that epoch's row and every later one, so the file
always holds one row per epoch of the run as it stands.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import Any

from medseg.errors import MetricsDamaged, RunFolderError
from medseg.folder_swap import write_text_atomic

log = logging.getLogger(__name__)

METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
EVALUATION_DIR = "evaluation"  # the final evaluation of best.medseg on the validation split
EVALUATION_SUMMARY = "summary.json"
TENSORBOARD_DIR = "tensorboard"
CONFIG_YAML = "config.yaml"
CHECKPOINT_CONFIG = "config.json"  # inside a NAME.medseg checkpoint folder
BEST, LAST = "best.medseg", "last.medseg"

FIRST_COLUMNS = ("epoch", "train_loss")
LAST_COLUMNS = ("lr", "seconds")
VAL_METRICS = ("loss", "dice", "iou", "hd95", "assd")


def metric_columns(val: dict[str, Any]) -> dict[str, float | None]:
    """``{"val_<key>": value}`` of an epoch's validation dict: its loss and overlap / distance metrics
    (the counts it also holds, images, undefined cases, pseudo-labels, are left out)."""
    out: dict[str, float | None] = {}
    for key, value in val.items():
        if key.split("/")[0] not in VAL_METRICS or not isinstance(value, (int, float)):
            continue
        out[f"val_{key}"] = None if math.isnan(float(value)) else float(value)
    return out


def epoch_row(epoch: int, train_loss: float, val: dict[str, Any], lr: float | None, seconds: float) -> dict:
    """The ``metrics.csv`` row of an epoch event (``epoch`` 0-based as in the events)."""
    return {"epoch": epoch + 1, "train_loss": float(train_loss), **metric_columns(val), "lr": lr, "seconds": seconds}


def _columns(rows: list[dict]) -> list[str]:
    middle: list[str] = []
    for row in rows:
        for key in row:
            if key not in FIRST_COLUMNS and key not in LAST_COLUMNS and key not in middle:
                middle.append(key)
    # the means before their classes, metrics in VAL_METRICS order
    order = {m: i for i, m in enumerate(VAL_METRICS)}
    middle.sort(key=lambda c: (order.get(c[4:].split("/")[0], len(order)), "/" in c, c))
    return [*FIRST_COLUMNS, *middle, *LAST_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_metrics(run_dir: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` as the run's ``metrics.csv`` (atomically: a crash leaves the previous file)."""
    path = Path(run_dir) / METRICS_CSV
    columns = _columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_cell(row.get(c)) for c in columns])
    return write_text_atomic(path, buf.getvalue())


def append_epoch(run_dir: str | Path, row: dict) -> Path:
    """Add an epoch's row to ``metrics.csv``, dropping any row of that epoch or later (a resumed run
    repeats the epoch it stopped in). A damaged file (a copy cut off) is kept aside as
    ``metrics.csv.damaged`` and the new file starts from its whole rows: its damaged lines are not lost."""
    path = Path(run_dir) / METRICS_CSV
    try:
        rows = read_metrics(run_dir) if path.is_file() else []
    except MetricsDamaged as e:
        aside = _aside(path)
        os.replace(path, aside)
        log.warning("%s; the file is kept as %s", e, aside)
        rows = e.rows
    rows = [r for r in rows if r["epoch"] < row["epoch"]]
    return write_metrics(run_dir, [*rows, row])


def _aside(path: Path) -> Path:
    aside, n = path.with_name(f"{path.name}.damaged"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{n}")
    return aside


def _number(text: str, column: str) -> float | int | None:
    if text == "":
        return None
    value = float(text)  # ValueError: the caller names the line
    return int(value) if column == "epoch" else value


def _whole(header: list[str], cells: list[str], line: int, last_cut: bool) -> tuple[dict | None, str | None]:
    """(the row as numbers, None), or (None, what is wrong with line ``line``)."""
    missing = header[len(cells) :]
    if last_cut:
        lacks = f"; no cell for {', '.join(map(repr, missing))}" if missing else "; its last cell may be short"
        return None, f"line {line} is cut off (the file ends in it, without a line end{lacks})"
    if missing:
        return None, f"line {line} is cut short: no cell for {', '.join(map(repr, missing))}"
    if len(cells) > len(header):
        return None, f"line {line} has more cells than the header ({len(cells)}, not {len(header)})"
    row = {}
    for column, text in zip(header, cells):
        try:
            row[column] = _number(text, column)
        except ValueError:
            return None, f"line {line}, column {column!r}: {text!r} is not a number"
    if row.get("epoch") is None:
        return None, f"line {line} has no epoch number"
    return row, None


def _kept(rows: list[dict]) -> str:
    if not rows:
        return "no whole row is left"
    epochs = [r["epoch"] for r in rows]
    span = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {epochs[0]}-{epochs[-1]}"
    if len(rows) == 1:
        return f"its 1 whole row ({span}) is read"
    return f"its {len(rows)} whole rows ({span}) are read"


def read_metrics(run_dir: str | Path) -> list[dict[str, float | int | None]]:
    """The rows of a run's ``metrics.csv`` as numbers (empty cells None).

    RunFolderError names the file when it cannot be read as a metrics file at all; MetricsDamaged names
    the file and each damaged line (cut off, a cell missing or not a number, more cells than the header)
    and holds the whole rows, still usable. Every line medseg writes ends with a line end: a last line
    without one is the end of a file that was cut off (its last cell may be short, or empty)."""
    path = Path(run_dir) / METRICS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RunFolderError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not a text file") from None
    if not text.strip():
        raise MetricsDamaged(f"{path}: the file is empty (cut off before its header?): no epoch rows", [])
    cut = not text.endswith("\n")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    lines = [(reader.line_num, cells) for cells in reader if cells]
    if cut and not lines:
        raise MetricsDamaged(
            f"{path}: line 1, its header, is cut off (the file ends in it, without a line end): no epoch rows", []
        )
    if "epoch" not in header:
        raise RunFolderError(f"{path}: not a medseg metrics file (no 'epoch' column in its header)")
    rows, problems = [], []
    for k, (line, cells) in enumerate(lines):
        row, problem = _whole(header, cells, line, cut and k == len(lines) - 1)
        if problem is None:
            rows.append(row)
        else:
            problems.append(problem)
    if problems:
        raise MetricsDamaged(f"{path}: {'; '.join(problems)}; {_kept(rows)}", rows)
    return rows
