"""Dataset dock widget: open a dataset folder and create or reopen its workspace, see what it holds, pick a sample.

The workspace of a dataset lives beside it (``<dataset>.medseg/`` by default,
never inside it); choosing a workspace folder reopens it directly. Creating
(indexing, hashing, importing every mask), reopening (checking the source
files) and QC are engine jobs run by ``start_job`` with a napari progress bar;
Cancel stops them at the next sample (:mod:`medseg.workspace.open_job` and
:func:`medseg.qc.run_qc` say what is left). Indexing problems and source files
changed or gone since the import are listed, not fatal. Selecting a sample shows
it through :func:`napari_medseg._sample_layers.show_sample`. The Samples table reads
its rows a page at a time (:mod:`napari_medseg._sample_table`): a workspace of
100,000 samples opens about as fast as one of ten.
The workspace is closed when the viewer closes, after pending edits are saved.
The two folders are the dock's form (:mod:`napari_medseg._forms`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QListWidget, QPushButton, QWidget

from napari_medseg._dataset_jobs import default_workspace  # noqa: F401 - callers import it from here
from napari_medseg._forms import FolderEdit, form, placeholder
from napari_medseg._message_line import MessageLine
from napari_medseg._notify import report
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._qt_helpers import row as buttons_row  # "row" names table rows here
from napari_medseg._sample_layers import warm_up_layers
from napari_medseg._sample_table import SampleTable
from napari_medseg._scroll import body_layout, pin_footer, show_rows
from napari_medseg._session import session_for
from napari_medseg._viewer_access import when_viewer_closes

if TYPE_CHECKING:
    import napari

SAMPLE_ROWS = 6  # sample rows always in view (more as the dock grows)


def folders_form() -> Container:
    """The folder to open and where its workspace is kept (either may be empty: no folder)."""
    folder = FolderEdit(name="folder", label="Dataset or workspace")
    placeholder(folder, "dataset folder (any layout) or workspace folder")
    workspace = FolderEdit(
        name="workspace",
        label="Workspace folder",
        tooltip="Where the workspace (review state, label revisions) is kept: beside the "
        "dataset, never inside it. Source files are only read.",
    )
    return form(folder, workspace)


class DatasetWidget(QWidget):
    """Open a dataset or workspace; counts, problems and the sample list."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = self.job = None
        self.source_check = None  # the reopened workspace's source check, run after the open (its worker)
        self._reopening = False
        self._chosen: Path | None = None

        self.form = folders_form()
        self.form.folder.committed.connect(lambda folder: self.set_folder(folder or ""))
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Reopen the workspace, or create it by indexing the dataset")
        self.open_button.clicked.connect(self.open_workspace)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop opening or QC at the next sample: a workspace being created is "
            "removed, QC keeps the previous findings"
        )
        self.cancel_button.clicked.connect(self.cancel)
        self.status = MessageLine()
        self.summary = QLabel("<i>No workspace open.</i>")
        self.summary.setWordWrap(True)
        self.groups = QLabel()
        self.groups.setWordWrap(True)
        self.groups.setToolTip(
            "The groups that keep look-alike samples (one video, one patient) on one side of every split and "
            "that neighbour checks compare: from the file names, or inferred from image similarity when the "
            "names carry no video or patient id"
        )
        self.qc_button = QPushButton("Run QC")
        self.qc_button.setToolTip(
            "Check every sample (mask values, specks, holes, duplicates, image quality); "
            "the findings rank the Review queue"
        )
        self.qc_button.clicked.connect(self.run_qc)
        self.problems = QListWidget()
        self.problems.setMaximumHeight(90)
        self.problems.setToolTip(
            "Files the dataset index could not use, and source files changed or gone since the workspace imported them"
        )
        self.samples = SampleTable()
        self.samples.selectionModel().selectionChanged.connect(self._on_row_selected)
        show_rows(self.samples, SAMPLE_ROWS)  # a useful list, not 1.5 rows; the body scrolls on a short screen

        layout = body_layout(self)
        layout.addWidget(self.form.native)
        layout.addLayout(buttons_row(self.open_button, self.cancel_button))
        layout.addWidget(self.summary)
        layout.addWidget(self.groups)
        layout.addWidget(self.qc_button)
        self.problems_title = QLabel("Problems")
        layout.addWidget(self.problems_title)
        layout.addWidget(self.problems, 1)
        layout.addWidget(QLabel("Samples"))
        layout.addWidget(self.samples, 3)
        pin_footer(self, self.status)  # what Open and QC say stays on screen
        self._show_problems(False)  # the box takes room only when the index has problems to list
        self._set_busy(False)

        s = self.session
        connect_until_destroyed(
            self,
            [
                (s.workspace_changed, self.refresh),
                (s.sample_changed, self._on_sample_changed),
                (s.status_changed, self._on_status_changed),
                (s.findings_changed, self.refresh),
            ],
        )
        when_viewer_closes(napari_viewer, self._on_viewer_closed)
        # napari's one-off cost of its first layers (the units registry: 0.5-3 s on 2 cores) is paid while the
        # user picks a folder, not between Open and the first sample on screen
        # (a timer of the dock's: a dock closed with its viewer before it fires warms nothing up)
        self._warm_up = QTimer(self)
        self._warm_up.setSingleShot(True)
        self._warm_up.timeout.connect(lambda: warm_up_layers(self.viewer))
        self._warm_up.start(0)
        if self.session.workspace is not None:
            self.refresh()

    # --------------------------------------------------------------- opening
    def set_folder(self, folder: str | Path) -> None:
        """Choose the dataset (or workspace) folder; the workspace folder follows unless the folder is unchanged."""
        self.form.folder.value = folder
        chosen = self.form.folder.value
        if chosen is not None and chosen != self._chosen:
            self.form.workspace.value = default_workspace(chosen)
        self._chosen = chosen

    def open_workspace(self) -> None:
        """Open (or create) the workspace of the chosen folder in a worker."""
        from medseg.workspace.open_job import iter_open_or_create
        from napari_medseg._jobs import start_job

        folder = self.form.folder.value
        if folder is None:
            self.status.say(*report("Cannot open", "choose a dataset or workspace folder first"))
            return
        folder = folder.expanduser().absolute()
        workspace = (self.form.workspace.value or default_workspace(folder)).expanduser().absolute()
        name = f"Opening {folder.name}"
        running = start_job(
            self.session.jobs,
            lambda token: iter_open_or_create(folder, workspace, verify="none", cancel=token),
            name,
            owner=self,
            on_event=self._on_open_event,
            on_result=self._opened,
            on_cancelled=self._open_cancelled,
            on_error=lambda e: self._failed(f"Cannot open the workspace of {folder}", e),
            on_finished=self._finished,
        )
        self.worker, self.job = running.worker, running.job
        self._set_busy(True)
        self.status.setText(f"{name}...")

    def _on_open_event(self, event: Any) -> None:
        from medseg.jobs import Message, Progress, Started

        if self.job is None:
            return
        if isinstance(event, Started):
            self._reopening = event.job == "workspace open"  # its source check comes after, in the background
        if isinstance(event, Message):
            self.status.setText(event.text)
        elif isinstance(event, Progress) and event.total:
            self.status.setText(f"{event.stage}: {event.done} of {event.total}")

    def _open_cancelled(self, cancelled: Any) -> None:
        self.status.setText("Opening cancelled: no workspace was created or opened.")

    def _opened(self, workspace: Any) -> None:
        if self.job is not None and self.job.cancelled:  # it was complete when the cancel came: never installed
            workspace.close()
            self.status.setText(
                f"Opening cancelled; the workspace {workspace.root} was complete by then (Open reopens it)."
            )
            return
        self.session.set_workspace(workspace)
        self.status.setText(f"Workspace {workspace.root} ({workspace.layout}, {workspace.classmap.task}).")
        if self.session.sample_id is None and self.samples.rowCount():
            self.samples.selectRow(0)
        if self._reopening:
            self._reopening = False
            self.check_sources(workspace)

    def check_sources(self, workspace: Any) -> None:
        """Compare the reopened workspace's source files with their import in a worker (the open did not
        wait for it: seconds at 100,000 samples); changed or missing files join the Problems list."""
        from medseg.workspace.open_job import iter_check_sources
        from napari_medseg._dataset_jobs import beside_the_user, leave_threads_for_moves
        from napari_medseg._jobs import start_job

        leave_threads_for_moves()
        self.source_check = start_job(
            self.session.jobs,
            lambda token: beside_the_user(iter_check_sources(workspace, cancel=token), self.session.jobs, token),
            "Checking source files",
            workspace=workspace,
            owner=self,
            progress=False,
            on_result=lambda changes: self._sources_checked(workspace, changes),
            on_error=lambda e: self._failed(f"Cannot check the source files of {workspace.root}", e),
            on_finished=lambda: setattr(self, "source_check", None),
        ).worker

    def _sources_checked(self, workspace: Any, changes: list) -> None:
        from napari_medseg._review_text import problem_lines, summary_html

        if workspace is not self.session.workspace:
            return
        self.summary.setText(summary_html(workspace))
        self.problems.clear()
        self.problems.addItems(problem_lines(workspace))
        self._show_problems(self.problems.count() > 0)
        if changes:
            self.status.setText(f"{len(changes)} source files changed or missing since import (listed in Problems).")

    # -------------------------------------------------------------------- QC
    def run_qc(self) -> None:
        import medseg.qc
        from napari_medseg._jobs import start_job

        ws = self.session.workspace
        if ws is None:
            self.status.say(*report("Cannot run QC", "no workspace is open"))
            return
        engine = medseg.qc.run_qc
        running = start_job(
            self.session.jobs,
            lambda token: engine(ws, cancel=token),
            "QC",
            workspace=ws,
            owner=self,
            on_event=self._on_qc_event,
            on_result=self._qc_done,
            on_cancelled=self._qc_cancelled,
            on_error=lambda e: self._failed(f"QC of {ws.dataset_root} failed", e),
            on_finished=self._finished,
        )
        self.worker, self.job = running.worker, running.job
        self._set_busy(True)
        self.status.setText("QC...")

    def _on_qc_event(self, event: Any) -> None:
        from medseg.jobs import Progress

        if isinstance(event, Progress) and self.job is not None:
            self.status.setText(f"QC {event.stage}: {event.done} of {event.total}")

    def _qc_done(self, report: Any) -> None:
        self.status.setText(
            f"QC: {len(report.findings)} findings over {report.n_samples} samples in {report.seconds:.1f} s."
        )
        self.session.findings_changed.emit("qc")

    def _qc_cancelled(self, cancelled: Any) -> None:
        self.status.setText("QC cancelled: the previous findings are kept.")

    # ----------------------------------------------------------- worker glue
    def _failed(self, what: str, error: BaseException) -> None:
        self.status.say(*report(what, error))

    def _finished(self) -> None:
        self.worker = self.job = None
        self._set_busy(False)

    def cancel(self) -> bool:
        """Stop the running open or QC at its next step; False when none runs."""
        if self.job is None or not self.job.cancel():
            return False
        self.status.setText(f"Cancelling {self.job.name}...")
        return True

    def _set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.open_button.setEnabled(not busy)
        self.qc_button.setEnabled(not busy and self.session.workspace is not None)

    # ------------------------------------------------------------- listings
    def refresh(self, *_: Any) -> None:
        """Counts, problems and the sample list of the session's workspace."""
        from napari_medseg._review_text import groups_line, problem_lines, summary_html

        ws = self.session.workspace
        self._set_busy(self.worker is not None)
        self.problems.clear()
        self._show_problems(False)
        self.samples.sample_model.set_workspace(ws)
        if ws is None:
            self.summary.setText("<i>No workspace open.</i>")
            self.groups.setText("")
            return
        self.summary.setText(summary_html(ws))
        line = groups_line(ws)
        self.groups.setText(line[:1].upper() + line[1:])
        self.problems.addItems(problem_lines(ws))
        self._show_problems(self.problems.count() > 0)
        self.samples.fit_columns()
        self._select(self.session.sample_id)

    def _show_problems(self, on: bool) -> None:
        self.problems_title.setVisible(on)
        self.problems.setVisible(on)

    def sample_ids(self) -> list[str]:
        """Every listed sample, in the table's order (reads every row: for scripts and tests)."""
        return [self.samples.text(r, 0) for r in range(self.samples.rowCount())]

    def _select(self, sample_id: str | None) -> None:
        row = self.samples.sample_model.row_of(sample_id)
        if row >= 0 and self.samples.currentRow() != row:
            selection = self.samples.selectionModel()
            selection.blockSignals(True)
            self.samples.selectRow(row)
            selection.blockSignals(False)
            self.samples.viewport().update()  # the selection moved while its signals were blocked

    def _on_row_selected(self, *_: Any) -> None:
        from napari_medseg._sample_layers import show_sample

        rows = self.samples.selectionModel().selectedRows()
        if not rows or self.session.workspace is None:
            return
        sample_id = self.samples.text(rows[0].row(), 0)
        if sample_id is not None and sample_id != self.session.sample_id:
            show_sample(self.viewer, sample_id)

    # ---------------------------------------------------------- session events
    def _on_sample_changed(self, sample_id: str | None) -> None:
        self._select(sample_id)

    def _on_status_changed(self, sample_id: str, status: str) -> None:
        from napari_medseg._review_text import summary_html

        self.samples.sample_model.set_status(sample_id, status)
        if self.session.workspace is not None:
            self.summary.setText(summary_html(self.session.workspace))

    def _on_viewer_closed(self) -> None:
        self.cancel()
        self.session.set_workspace(None)  # cancels the jobs on it, and closes it after them
