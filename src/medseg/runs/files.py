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
import math
import os
from pathlib import Path
from typing import Any

from medseg.errors import RunFolderError

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def append_epoch(run_dir: str | Path, row: dict) -> Path:
    """Add an epoch's row to ``metrics.csv``, dropping any row of that epoch or later (a resumed run
    repeats the epoch it stopped in)."""
    path = Path(run_dir) / METRICS_CSV
    rows = read_metrics(run_dir) if path.is_file() else []
    rows = [r for r in rows if r.get("epoch") is not None and r["epoch"] < row["epoch"]]
    return write_metrics(run_dir, [*rows, row])


def _number(text: str, path: Path, line: int, column: str) -> float | int | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise RunFolderError(f"{path}: line {line}, column {column!r}: {text!r} is not a number") from None
    return int(value) if column == "epoch" else value


def read_metrics(run_dir: str | Path) -> list[dict[str, float | int | None]]:
    """The rows of a run's ``metrics.csv`` as numbers (empty cells None); RunFolderError names the file
    and line of anything else."""
    path = Path(run_dir) / METRICS_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RunFolderError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not a text file") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "epoch" not in reader.fieldnames:
        raise RunFolderError(f"{path}: not a medseg metrics file (no 'epoch' column in its header)")
    rows = []
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            raise RunFolderError(f"{path}: line {line} has more cells than the header")
        rows.append({k: _number(v or "", path, line, k) for k, v in raw.items()})
    return rows
