"""The Fine-tune dock's past runs: every run folder in the dock's output folder, newest first, with its
model, epochs, the best checkpoint's validation Dice, the final evaluation's Dice and how it ended; the
selected run's learning curves (its ``curves.png``); "Use for Predict" puts its checkpoint into the
session, which Predict follows.

The rows come from :mod:`medseg.runs` (small files, no torch: read on the main thread), refreshed when the
output folder changes (a workspace opened, a folder picked) and when a run of the dock ends. A run whose
files are damaged is listed as unreadable, with the reason in its tooltip, not dropped in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("run", "model", "epochs", "val Dice", "eval Dice", "ended")
HEADER_TIPS = (
    "The run folder: the dock names its runs by their start time",
    "Architecture (encoder)",
    "Epochs done / planned",
    "Mean validation Dice of the best checkpoint, measured during training at the training image size",
    "Mean Dice of the final evaluation of the best checkpoint on the validation split, at each image's own size",
    "How the run ended: finished, cancelled, failed, or unfinished (running, or killed)",
)
CURVES_WIDTH = 420  # px: the picture is scaled to the dock's width, at most this
LIST_ROWS = 4  # the table is as tall as its runs up to this many; more scroll (one run leaves no blank block)


def _dice(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _eval_dice(run: Any) -> float | None:
    """The final evaluation's mean Dice over classes, when the run has one."""
    classes = (run.evaluation or {}).get("classes") or {}
    means = [
        v["dice"]["mean"]
        for v in classes.values()
        if isinstance(v, dict) and isinstance(v.get("dice"), dict) and v["dice"].get("mean") is not None
    ]
    return sum(means) / len(means) if means else None


def _unreadable(path: Path, error: str) -> str:
    """What a damaged run folder's row says when selected: why, and its checkpoint when one is there."""
    from medseg.runs.files import BEST, LAST

    text = f"{path.name} cannot be read: {error}"
    kept = next((path / n for n in (BEST, LAST) if (path / n).is_dir()), None)
    if kept is not None and str(kept) not in error:  # a damaged record file, not the model: it can be used
        text += f"\nIts checkpoint can still be added in Predict (Add checkpoint...): {kept}"
    return text


class RunList(QWidget):
    """See the module docstring. ``folder()`` is where the dock writes its runs; ``say(text)`` its message."""

    def __init__(self, session: Any, folder: Callable[[], Path], say: Callable[[str], Any], parent=None):
        super().__init__(parent)
        self.session, self._folder, self._say = session, folder, say
        self.runs: list[Any] = []  # RunSummary, or (path, error) for an unreadable one
        self.title = QLabel("Past runs")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for j, tip in enumerate(HEADER_TIPS):
            self.table.horizontalHeaderItem(j).setToolTip(tip)
        self.curves = QLabel("Select a run to see its learning curves.")
        self.curves.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.curves.setWordWrap(True)
        self.use_button = QPushButton("Use for Predict")
        self.use_button.setToolTip("Predict (and Re-score) with the selected run's best checkpoint")
        self.refresh_button = QPushButton("Refresh")
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.curves)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.use_button.clicked.connect(self.use_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.refresh()

    @property
    def folder(self) -> Path | None:
        text = str(self._folder() or "")
        return None if text in ("", ".") else Path(text).expanduser()  # "." is an unset file field

    def refresh(self) -> None:
        """Read the run folders again (the selection stays on the same run when it is still there)."""
        from medseg.errors import RunFolderError
        from medseg.runs.table import is_run_folder, read_run

        selected = self.selected()
        keep = getattr(selected, "path", None)
        folder = self.folder
        there = folder is not None and folder.is_dir()
        paths = sorted((p for p in folder.iterdir() if is_run_folder(p)), reverse=True) if there else []
        self.runs = []
        for p in paths:  # newest first: the dock names its runs by their start time
            try:
                self.runs.append(read_run(p))
            except (RunFolderError, OSError) as e:
                self.runs.append((p, str(e)))
        if folder is None:
            self.title.setText("Past runs: no output folder chosen")
        else:
            self.title.setText(f"Past runs in {folder}: {len(self.runs)}" if self.runs else f"No runs yet in {folder}")
        self.table.setRowCount(len(self.runs))
        for i, run in enumerate(self.runs):
            if isinstance(run, tuple):
                cells, tip = [run[0].name, "unreadable", "", "", "", ""], run[1]
            else:
                epochs = f"{run.epochs_done}/{run.epochs_planned}" if run.epochs_planned else str(run.epochs_done)
                cells = [run.name, run.model, epochs, _dice(run.best_dice()), _dice(_eval_dice(run)), run.state]
                tip = f"{run.path}\ndata: {run.data}\ncheckpoint: {run.checkpoint or 'none'}"
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.table.setItem(i, j, item)
        self._fit_rows()
        rows = [i for i, r in enumerate(self.runs) if getattr(r, "path", None) == keep]
        if rows:
            self.table.selectRow(rows[0])
        else:
            self.table.clearSelection()
        self._show_selected()

    def _fit_rows(self) -> None:
        """The table's height: its header and runs, at least one row, at most LIST_ROWS (then it scrolls)."""
        t = self.table
        shown = min(max(t.rowCount(), 1), LIST_ROWS)
        row = t.rowHeight(0) if t.rowCount() else t.verticalHeader().defaultSectionSize()
        bar = t.horizontalScrollBar().sizeHint().height()  # room for the sideways bar a narrow dock shows
        t.setFixedHeight(t.horizontalHeader().sizeHint().height() + shown * row + bar + 2 * t.frameWidth())

    def _selected_row(self) -> Any:
        rows = {i.row() for i in self.table.selectedIndexes()}
        return self.runs[rows.pop()] if len(rows) == 1 else None

    def selected(self) -> Any:
        """The selected run's RunSummary (None when none, or an unreadable one, is selected)."""
        run = self._selected_row()
        return None if isinstance(run, tuple) else run

    def select(self, name: str) -> bool:
        """Select the run called ``name``; False when it is not listed."""
        for i, run in enumerate(self.runs):
            if not isinstance(run, tuple) and run.name == name:
                self.table.selectRow(i)
                return True
        return False

    def _show_selected(self) -> None:
        from medseg.runs.files import CURVES_PNG

        run = self.selected()
        self.use_button.setEnabled(run is not None and run.checkpoint is not None)
        self.curves.setMinimumHeight(0)
        if run is None:
            self.curves.setPixmap(QPixmap())
            damaged = self._selected_row()  # an unreadable run says why here, not only in its tooltip
            self.curves.setText(
                _unreadable(*damaged) if isinstance(damaged, tuple) else "Select a run to see its learning curves."
            )
            return
        path = run.path / CURVES_PNG
        picture = QPixmap(str(path))
        if picture.isNull():
            self.curves.setPixmap(QPixmap())
            self.curves.setText(
                f"{path} cannot be read as a picture (damaged?); the numbers are in its metrics.csv, and "
                f"medseg runs {run.path} --out DIR draws them again."
                if path.is_file()
                else f"{run.name} has no learning curves yet (they are drawn when a run ends)."
            )
            return
        width = min(CURVES_WIDTH, max(200, self.width() - 8))
        scaled = picture.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
        self.curves.setMinimumHeight(scaled.height())  # a word-wrapping label would squeeze the picture
        self.curves.setPixmap(scaled)

    def use_selected(self) -> str | None:
        """Put the selected run's checkpoint into the session (Predict follows); the path, or None."""
        run = self.selected()
        if run is None or run.checkpoint is None:
            return None
        path = str(run.checkpoint)
        self.session.set_checkpoints([path])
        self._say(f"Predict now uses {path} (run {run.name}, validation Dice {_dice(run.best_dice())})")
        return path
