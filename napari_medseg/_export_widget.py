"""Export dock widget: the workspace's cleaned dataset into a new folder, with its manifest and change summary.

The engine's job (``medseg.export.iter_export``) runs through ``start_job``
with a napari progress bar; nothing appears in the target until the whole export is
written. A non-empty target is refused unless the user ticks "replace a
previous export" (and even then only a previous medseg export is replaced);
a target inside the dataset or the workspace is always refused.
"""

from __future__ import annotations

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
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextEdit,
    QWidget,
)

from medseg.export import DEFAULT_STATUSES, FORMATS, STATUSES
from napari_medseg._forms import form
from napari_medseg._jobs import start_job
from napari_medseg._message_line import MessageLine
from napari_medseg._notify import report
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._scroll import body_layout, pin_footer
from napari_medseg._session import session_for
from napari_medseg._viewer_access import real_viewer

if TYPE_CHECKING:
    import napari

NO_SPLIT, TRAIN_VAL, KFOLD = "none", "train / validation by group", "k folds by group"


def export_job(workspace: Any, out: Path, fmt: str, options: dict, cancel: Any = None):
    """The dock's job: the engine's export, whose result comes paired with its CHANGES.md text (read here, in
    the worker). A cancel stops the engine at its next sample, which removes its staging folder; a result
    already in place when the cancel came is kept and reported."""
    import medseg.export
    from medseg.export.export import CHANGES_NAME
    from medseg.jobs import Result

    for event in medseg.export.iter_export(workspace, out, fmt, **options, cancel=cancel):
        if isinstance(event, Result):
            changes = event.value.out / CHANGES_NAME
            yield Result((event.value, changes.read_text(encoding="utf-8") if changes.is_file() else ""))
            return
        yield event


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
        self.status = MessageLine()  # its Details box holds the whole text, the folder's path to copy
        self.changes = QTextEdit()
        self.changes.setReadOnly(True)
        self.changes.setPlaceholderText("The export's change summary (CHANGES.md) appears here.")
        self.worker = self.result = self.job = None

        layout = body_layout(self)
        layout.addWidget(self.workspace_label)
        layout.addWidget(self.form.native)
        layout.addWidget(self.changes, 1)  # a taller dock gives the summary the height, not the form's rows
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        pin_footer(self, buttons, self.status)  # Export, Cancel and what they say stay on screen
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.form.split.changed.connect(self._sync)
        s = self.session
        connect_until_destroyed(
            self,
            [
                (s.workspace_changed, self._on_workspace),
                (s.status_changed, self._describe),
                (s.revision_saved, self._describe),
            ],
        )
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
        split = {
            NO_SPLIT: None,
            KFOLD: int(self.form.folds.value),
            TRAIN_VAL: (1.0 - float(self.form.val_fraction.value), float(self.form.val_fraction.value)),
        }
        return {
            "statuses": tuple(self.form.statuses.value),
            "split": split[self.form.split.value],
            "seed": int(self.form.seed.value),
            "overwrite": bool(self.form.overwrite.value),
        }

    def start(self) -> bool:
        """Run the export in a worker; False when there is no workspace or an export runs already."""
        ws = self.session.workspace
        if ws is None or self.worker is not None:
            return False
        out = Path(str(self.form.out.value)).expanduser()
        fmt = self.form.fmt.value
        self.result = None
        self.changes.clear()
        options = self.options()  # read here: the job is built in the worker thread
        running = start_job(
            self.session.jobs,
            lambda token: export_job(ws, out, fmt, options, cancel=token),
            f"Export to {out}",
            workspace=ws,
            owner=self,
            on_result=self._finished_export,
            on_cancelled=self._cancelled,
            on_error=lambda e: self._failed(out, e),
            on_finished=self._done,
        )
        self.worker, self.job = running.worker, running.job
        self.status.setText(f"Exporting {fmt} into {out}...")
        self._sync()
        return True

    def cancel(self) -> bool:
        """Stop the running export at its next sample; the target stays as it was. False when none runs."""
        if self.job is None or not self.job.cancel():
            return False
        self.status.setText("Cancelling the export...")
        return True

    def _cancelled(self, cancelled: Any) -> None:
        self.status.setText("Export cancelled: the target folder is as it was.")

    def _finished_export(self, outcome: tuple) -> None:
        self.result, text = outcome
        self.changes.setPlainText(text)
        self.status.say(f"Exported into {self.result.out}: {self.result.summary_text}")
        show_info(f"Export finished: {self.result.out}\n{self.result.summary_text}")

    def _failed(self, out: Path, exc: BaseException) -> None:
        # the engine says whether the folder holds a previous export, and how to replace it in the dock's words
        self.status.say(*report(f"Export to {out} failed", exc))

    def _done(self) -> None:
        self.worker = self.job = None
        self._sync()
