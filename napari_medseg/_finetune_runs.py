"""The Fine-tune dock's past runs: every run folder in the dock's output folder, newest first, with its
model, epochs, the best checkpoint's validation Dice, the final evaluation's Dice and how it ended; the
selected run's learning curves (its ``curves.png``); "Use for Predict" puts its checkpoint into the
session, which Predict follows.

The rows come from :mod:`medseg.runs` (small files, no torch), read in a thread worker through
``start_job`` when the output folder changes (a workspace opened, a folder picked), when a run of the dock
ends and on Refresh; the newest read wins (an older one that ends later is dropped). The selected run's
``curves.png`` is decoded in a worker too (a ``QImage``, which a worker may make; the pixmap is made on
the main thread) and scaled to the dock: to its width, and to the height the scroll area shows below the
list's controls, so the whole picture is in view at once on a 1366x768 screen.

A run whose record files are damaged (a cut-off ``metrics.csv``, an unreadable ``evaluation/summary.json``)
is listed with what could be read, its name marked ``*``, and what is wrong above its curves: its checkpoint
stays usable. A run whose checkpoint config is damaged is listed as unreadable, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
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
CURVES_MIN_HEIGHT = 200  # px: a short dock scrolls rather than shrink the picture past reading
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


def read_folder(folder: Path) -> list[Any]:
    """Worker body: the run folders in ``folder``, newest first (the dock names its runs by their start
    time), each a RunSummary or ``(path, error)`` when it cannot be read."""
    from medseg.errors import RunFolderError
    from medseg.runs.table import is_run_folder, read_run

    if not folder.is_dir():
        return []
    runs: list[Any] = []
    for p in sorted((p for p in folder.iterdir() if is_run_folder(p)), reverse=True):
        try:
            runs.append(read_run(p))
        except (RunFolderError, OSError) as e:
            runs.append((p, str(e)))
    return runs


def read_picture(path: Path) -> tuple[Path, QImage | None, bool]:
    """Worker body: ``(path, its decoded picture or None, whether the file is there)``."""
    image = QImage(str(path))
    return path, (None if image.isNull() else image), path.is_file()


class RunList(QWidget):
    """See the module docstring. ``folder()`` is where the dock writes its runs; ``say(text)`` its message."""

    def __init__(self, session: Any, folder: Callable[[], Path], say: Callable[[str], Any], parent=None):
        super().__init__(parent)
        self.session, self._folder, self._say = session, folder, say
        self.runs: list[Any] = []  # RunSummary, or (path, error) for an unreadable one
        self._reads = self._decodes = 0  # request numbers: the newest wins
        self._reading: int | None = None  # the request a read is on its way for
        self._decoding: Path | None = None  # the curves.png being decoded for the selected run
        self._picture: tuple[Path, QImage] | None = None  # the selected run's decoded curves
        self._watched: QObject | None = None  # the scroll area's viewport whose height the picture fits
        self._placed: tuple[Path, int] | None = None  # the picture shown and its width
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
        self.damage = QLabel()  # what is wrong with the selected run's record files
        self.damage.setWordWrap(True)
        self.damage.setVisible(False)
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
        layout.addWidget(self.damage)
        layout.addWidget(self.curves)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.use_button.clicked.connect(self.use_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.refresh()

    @property
    def folder(self) -> Path | None:
        text = str(self._folder() or "")
        return None if text in ("", ".") else Path(text).expanduser()  # "." is an unset file field

    def _closed(self) -> bool:
        """The dock was closed while a read was on its way: its widgets are gone (a lambda on ``destroyed``
        crashed PyQt6 when the dock was deleted)."""
        try:
            self.objectName()
        except RuntimeError:
            return True
        return False

    @property
    def busy(self) -> bool:
        """A read of the runs or a decoding of the selected run's curves is on its way."""
        return self._reading is not None or self._decoding is not None

    def refresh(self, *_: Any) -> None:
        """Read the run folders again, in a worker (the selection stays on the same run when it is still there)."""
        from napari_medseg._jobs import call, start_job

        self._reads += 1
        request, folder = self._reads, self.folder
        if folder is None:
            self._reading = None
            self._got(request, None, [])
            return
        self._reading = request
        start_job(
            self.session.jobs,
            lambda token: call(read_folder, folder),
            "Reading the past runs",
            stoppable=False,
            progress=False,
            on_result=lambda runs: self._got(request, folder, runs),
            on_error=lambda e: self._failed(request, folder, e),
        )

    def _failed(self, request: int, folder: Path, error: BaseException) -> None:
        if not self._closed() and request == self._reads:
            self._reading = None
            self.title.setText(f"Past runs in {folder} cannot be read: {error}")

    def _got(self, request: int, folder: Path | None, runs: list[Any]) -> None:
        if self._closed() or request != self._reads:
            return  # the folder changed meanwhile (or Refresh): a newer read is on its way
        self._reading = None
        keep = getattr(self.selected(), "path", None)
        self.runs = runs
        if folder is None:
            self.title.setText("Past runs: no output folder chosen")
        else:
            self.title.setText(f"Past runs in {folder}: {len(runs)}" if runs else f"No runs yet in {folder}")
        self.table.blockSignals(True)  # one _show_selected below, not one per row
        self.table.setRowCount(len(runs))
        for i, run in enumerate(runs):
            if isinstance(run, tuple):
                cells, tip = [run[0].name, "unreadable", "", "", "", ""], run[1]
            else:
                epochs = f"{run.epochs_done}/{run.epochs_planned}" if run.epochs_planned else str(run.epochs_done)
                evaluated = "unreadable" if "evaluation" in run.damaged else _dice(_eval_dice(run))
                name = f"{run.name} *" if run.damaged else run.name
                cells = [name, run.model, epochs, _dice(run.best_dice()), evaluated, run.state]
                tip = f"{run.path}\ndata: {run.data}\ncheckpoint: {run.checkpoint or 'none'}"
                tip = "\n".join([*run.damaged.values(), tip])
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.table.setItem(i, j, item)
        self._fit_rows()
        rows = [i for i, r in enumerate(runs) if getattr(r, "path", None) == keep]
        if rows:
            self.table.selectRow(rows[0])
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)
        self._picture = None  # a run that ended since may have drawn its curves again
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

    def _say_curves(self, text: str) -> None:
        self.curves.setMinimumHeight(0)
        self.curves.setPixmap(QPixmap())
        self.curves.setText(text)

    def _show_selected(self) -> None:
        from medseg.runs.files import CURVES_PNG

        run = self.selected()
        self.use_button.setEnabled(run is not None and run.checkpoint is not None)
        damage = "\n".join(run.damaged.values()) if run is not None else ""
        self.damage.setText(damage)
        self.damage.setVisible(bool(damage))
        if run is None:
            self._decoding = None
            damaged = self._selected_row()  # an unreadable run says why here, not only in its tooltip
            self._say_curves(
                _unreadable(*damaged) if isinstance(damaged, tuple) else "Select a run to see its learning curves."
            )
            return
        path = run.path / CURVES_PNG
        if self._picture is not None and self._picture[0] == path:
            self._place()
            return
        from napari_medseg._jobs import call, start_job

        self._decodes += 1
        request, self._decoding = self._decodes, path
        self._say_curves(f"Reading {run.name}'s learning curves...")
        start_job(
            self.session.jobs,
            lambda token: call(read_picture, path),
            "Reading a run's learning curves",
            stoppable=False,
            progress=False,
            on_result=lambda got: self._decoded(request, run, *got),
            on_error=lambda e: self._decoded(request, run, path, None, path.is_file()),
        )

    def _decoded(self, request: int, run: Any, path: Path, image: QImage | None, there: bool) -> None:
        if self._closed() or request != self._decodes:
            return  # another run was selected meanwhile
        self._decoding = None
        if image is not None:
            self._picture = (path, image)
            self._place()
        elif there:
            self._say_curves(
                f"{path} cannot be read as a picture (damaged?); the numbers are in its metrics.csv, and "
                f"medseg runs {run.path} --out DIR draws them again."
            )
        else:
            self._say_curves(f"{run.name} has no learning curves yet (they are drawn when a run ends).")

    def _place(self) -> None:
        """Show the decoded curves at the dock's width, and no taller than what the scroll area shows below
        the list's controls (the picture is 840 px wide: at 420 px its third panel ran off a 1366x768 screen)."""
        if self._picture is None:
            return
        image = self._picture[1]
        width = min(CURVES_WIDTH, max(200, self.width() - 8))
        room = self._room()
        if room is not None:
            width = min(width, max(CURVES_MIN_HEIGHT, room) * image.width() // image.height())
        if self._placed == (self._picture[0], width) and not self.curves.pixmap().isNull():
            return  # a resize that changes nothing here
        self._placed = (self._picture[0], width)
        scaled = QPixmap.fromImage(image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation))
        self.curves.setMinimumHeight(scaled.height())  # a word-wrapping label would squeeze the picture
        self.curves.setPixmap(scaled)

    def _room(self) -> int | None:
        """The height the enclosing scroll area shows below the list's controls, when it is scrolled to the
        list's top; None outside a scroll area."""
        area = self.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is None:
            return None
        if self._watched is not area.viewport():
            self._watched = area.viewport()
            self._watched.installEventFilter(self)  # a taller or shorter dock fits the picture again
        self.layout().activate()
        return area.viewport().height() - self.curves.y() - 4

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self._watched and event.type() == QEvent.Type.Resize:
            self._place()
        return super().eventFilter(obj, event)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._place()

    def use_selected(self) -> str | None:
        """Put the selected run's checkpoint into the session (Predict follows); the path, or None."""
        run = self.selected()
        if run is None or run.checkpoint is None:
            return None
        path = str(run.checkpoint)
        self.session.set_checkpoints([path])
        self._say(f"Predict now uses {path} (run {run.name}, validation Dice {_dice(run.best_dice())})")
        return path
