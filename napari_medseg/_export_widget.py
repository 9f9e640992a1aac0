"""Export dock widget: the workspace's cleaned dataset into a new folder, with its manifest and change summary.

The engine (``medseg.export.iter_export``) runs in a thread worker with a
napari progress bar; nothing appears in the target until the whole export is
written. A non-empty target is refused unless the user ticks "replace a
previous export" (and even then only a previous medseg export is replaced);
a target inside the dataset or the workspace is always refused.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Select,
    SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from medseg.export import DEFAULT_STATUSES, FORMATS, STATUSES
from napari_medseg._jobs import CANCELLED, cancellable
from napari_medseg._forms import form
from napari_medseg._notify import report_error
from napari_medseg._progress import Bar
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._session import session_for
from napari_medseg._viewer_access import real_viewer

if TYPE_CHECKING:
    import napari

NO_SPLIT, TRAIN_VAL, KFOLD = "none", "train / validation by group", "k folds by group"


def export_job(workspace: Any, out: Path, fmt: str, options: dict, cancel: threading.Event):
    """Worker body: the engine's events, then the result paired with its CHANGES.md text, or ``CANCELLED``.
    A cancel closes the engine's generator at its next sample, which removes its staging folder; a result
    already in place when the cancel came is kept and reported."""
    from medseg.export import ExportResult, iter_export
    from medseg.export.export import CHANGES_NAME

    result = yield from cancellable(iter_export(workspace, out, fmt, **options), cancel,
                                    lambda e: isinstance(e, ExportResult))
    if result is CANCELLED:
        yield CANCELLED
    elif result is not None:
        changes = result.out / CHANGES_NAME
        yield result, changes.read_text(encoding="utf-8") if changes.is_file() else ""


class ExportWidget(QWidget):
    """See the module docstring."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = real_viewer(napari_viewer)
        self.session = session_for(napari_viewer)
        self.form = form(
            ComboBox(name="fmt", label="Format", choices=list(FORMATS), value="folders"),
            FileEdit(name="out", label="Target folder", mode="d"),
            Select(name="statuses", label="Statuses", choices=list(STATUSES), value=list(DEFAULT_STATUSES)),
            ComboBox(name="split", label="Split", choices=[NO_SPLIT, TRAIN_VAL, KFOLD], value=NO_SPLIT),
            FloatSpinBox(name="val_fraction", label="Validation fraction", value=0.2, min=0.05, max=0.9, step=0.05),
            SpinBox(name="folds", label="Folds", value=5, min=2, max=20),
            SpinBox(name="seed", label="Seed", value=0, min=0, max=2**31 - 1),
            CheckBox(name="overwrite", label="Replace a previous export in this folder", value=False),
        )
        self.form.statuses.native.setMaximumHeight(90)
        self.workspace_label = QLabel()
        self.workspace_label.setWordWrap(True)
        self.export_button, self.cancel_button = QPushButton("Export"), QPushButton("Cancel")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # copy the path
        self.changes = QTextEdit()
        self.changes.setReadOnly(True)
        self.changes.setPlaceholderText("The export's change summary (CHANGES.md) appears here.")
        self.worker = self.pbar = self.result = self.job = None
        self._cancel = threading.Event()

        layout = QVBoxLayout(self)
        layout.addWidget(self.workspace_label)
        layout.addWidget(self.form.native)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.changes)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.form.split.changed.connect(self._sync)
        s = self.session
        connect_until_destroyed(self, [(s.workspace_changed, self._on_workspace),
                                       (s.status_changed, self._describe), (s.revision_saved, self._describe)])
        self._on_workspace(self.session.workspace)

    def _on_workspace(self, workspace: Any) -> None:
        if workspace is not None:
            root = Path(workspace.root)
            self.form.out.value = root.parent / f"{root.name}-export"
        self._describe()
        self._sync()

    def _describe(self, *_: Any) -> None:
        ws = self.session.workspace
        if ws is None:
            self.workspace_label.setText("<i>Open a dataset's workspace in the Dataset widget to export it.</i>")
            return
        counts = ws.summary()["by_status"]
        listed = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        self.workspace_label.setText(f"<b>Workspace</b> {ws.root}<br>{listed}")

    def _sync(self, *_: Any) -> None:
        self.form.val_fraction.visible = self.form.split.value == TRAIN_VAL
        self.form.folds.visible = self.form.split.value == KFOLD
        busy = self.worker is not None
        self.export_button.setEnabled(not busy and self.session.workspace is not None)
        self.cancel_button.setEnabled(busy)

    def options(self) -> dict:
        """The keyword arguments of ``iter_export`` the form describes."""
        split = {NO_SPLIT: None, KFOLD: int(self.form.folds.value),
                 TRAIN_VAL: (1.0 - float(self.form.val_fraction.value), float(self.form.val_fraction.value))}
        return {"statuses": tuple(self.form.statuses.value), "split": split[self.form.split.value],
                "seed": int(self.form.seed.value), "overwrite": bool(self.form.overwrite.value)}

    def start(self) -> bool:
        """Run the export in a worker; False when there is no workspace or an export runs already."""
        ws = self.session.workspace
        if ws is None or self.worker is not None:
            return False
        out = Path(str(self.form.out.value)).expanduser()
        fmt = self.form.fmt.value
        self.result = None
        self._cancel.clear()
        self.changes.clear()
        worker = create_worker(export_job, ws, out, fmt, self.options(), self._cancel, _start_thread=False,
                               _ignore_errors=True)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(lambda e: self._failed(out, e))
        worker.finished.connect(self._done)
        self.worker = worker
        self.job = self.session.jobs.add(worker, f"Export to {out}", ws, self._cancel.set, owner=self)
        self.status.setText(f"Exporting {fmt} into {out}...")
        self._sync()
        worker.start()
        return True

    def cancel(self) -> bool:
        """Stop the running export at its next sample; the target stays as it was. False when none runs."""
        if self.job is None or not self.job.cancel():
            return False
        self.status.setText("Cancelling the export...")
        return True

    def _on_event(self, event: Any) -> None:
        if event is CANCELLED:
            self.status.setText("Export cancelled: the target folder is as it was.")
        elif isinstance(event, tuple):
            self.result, text = event
            self.changes.setPlainText(text)
            self.status.setText(f"{self.result.summary_text}<br>Folder: <b>{self.result.out}</b>")
            show_info(f"Export finished: {self.result.out}\n{self.result.summary_text}")
        else:
            if self.pbar is None:
                self.pbar = Bar("Exporting", event.total)
            self.pbar.to(event.done, event.total, "Writing the manifest" if event.stage == "finishing" else None)

    def _failed(self, out: Path, exc: BaseException) -> None:
        from medseg.export import is_medseg_export

        hint = ""
        if "not empty" in str(exc) and out.is_dir() and is_medseg_export(out) and not self.form.overwrite.value:
            hint = " (it holds a previous export: tick 'Replace a previous export' to replace it)"
        self.status.setText(report_error(f"Export to {out} failed{hint}", exc))

    def _done(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None
        self.worker = self.job = None
        self._sync()
