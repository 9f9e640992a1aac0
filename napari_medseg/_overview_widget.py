"""Overview dock widget: the open workspace's dataset overview (``medseg stats``): a compact summary and the
plots (image sizes and spacings, class balance, mask areas, intensities, review status and the labels before
and after cleaning).

The engine's job (``medseg.stats.iter_stats``) and the plots' drawing (matplotlib's Agg canvas, no Qt) run in
a worker through ``start_job``; only the finished PNG bytes reach the main thread, as pixmaps. It never holds
up opening a workspace: a newly opened workspace's overview starts once its first sample is on screen (or
``SETTLE_MS`` later when none is shown), and it runs on a thread of its own beside the workers that load
samples and pauses while one runs (:mod:`napari_medseg._dataset_jobs`: with 2 cores, the overview and the
source check of 20,000 samples held a Next press's sample for 12 s). The overview is computed again when a
workspace is opened, on Refresh, and by itself after a saved correction, a review
status (an exclusion) or a QC run: those signals restart one timer, so a burst of reviews costs one
recompute once it has settled (and one more after a recompute that was running meanwhile). What a
recompute read is kept per workspace (:class:`medseg.stats.cache.FactsCache`): the next one decodes only
the labels and images that changed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QFont, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from napari_medseg._dataset_jobs import beside_the_user, leave_threads_for_moves
from napari_medseg._jobs import start_job
from napari_medseg._message_line import MessageLine
from napari_medseg._notify import report
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._scroll import MAX_MIN_WIDTH, body_layout, pin_footer
from napari_medseg._session import session_for

if TYPE_CHECKING:
    import napari

# The plots are drawn this wide in the dock (the body scrolls sideways rather than squeezing them)
PLOT_WIDTH = MAX_MIN_WIDTH - 40
# How long the labels must stay unchanged before the overview follows them: a reviewer saving a correction
# every second or two gets one recompute after the burst, not one per save.
SETTLE_MS = 2000
PROGRESS_S = 0.25
NO_WORKSPACE = (
    "No workspace is open. Open a dataset folder (or its workspace) in the Dataset tool to see here its "
    "samples, image sizes, class balance, mask areas, intensities, findings and review status. Without "
    "the app: medseg stats FOLDER --out DIR."
)


def overview_job(workspace: Any, cancel: Any = None, cache: Any = None):
    """The engine's overview of ``workspace``, whose result comes paired with its plots' PNG bytes (drawn
    here, in the worker). Its progress (one event a sample) reaches the main thread at most every
    ``PROGRESS_S``: 100,000 events crossing threads cost the GUI thread seconds."""
    from medseg.jobs import Progress, Result
    from medseg.stats import iter_stats

    said = 0.0
    for event in iter_stats(workspace, cancel=cancel, cache=cache):
        if isinstance(event, Result):
            yield Result((event.value, event.value.plots()))
            return
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - said < PROGRESS_S and event.done != event.total:
                continue
            said = now
        yield event


class OverviewWidget(QWidget):
    """See the module docstring."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session_for(napari_viewer)
        self.report: Any = None
        self.job: Any = None
        self.cache: Any = None  # FactsCache of self.cache_of's workspace
        self.cache_of: Any = None
        self.stale = False  # the labels changed while a recompute ran
        self.waiting = False  # a newly opened workspace's overview waits for its first sample on screen
        self.settle = QTimer(self)
        self.settle.setSingleShot(True)
        self.settle.setInterval(SETTLE_MS)
        self.settle.timeout.connect(self._follow)
        self.shown = QTimer(self)  # the first sample's paint comes before the overview's start
        self.shown.setSingleShot(True)
        self.shown.setInterval(0)
        self.shown.timeout.connect(lambda: self.waiting and self._follow())
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setFont(QFont("monospace"))
        self.plots: dict[str, QLabel] = {}
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Compute the overview again (after corrections, exclusions or a QC run)")
        self.status = MessageLine()
        layout = body_layout(self)
        layout.addWidget(self.summary)
        self.plot_layout = layout
        layout.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        pin_footer(self, buttons, self.status)
        self.refresh_button.clicked.connect(self.refresh)
        s = self.session
        changed = (s.revision_saved, s.status_changed, s.findings_changed)
        connect_until_destroyed(
            self,
            [
                (s.workspace_changed, self._workspace_changed),
                (s.sample_changed, self._sample_shown),
                *((signal, self.schedule) for signal in changed),
            ],
        )
        self.refresh()

    def schedule(self, *_: Any) -> None:
        """Recompute once the labels, statuses or findings have stopped changing for ``SETTLE_MS``."""
        if self.session.workspace is not None:
            self.settle.start()  # a running timer restarts: the burst goes on

    def _follow(self) -> None:
        self.waiting = False
        if self.job is not None:
            self.stale = True  # its numbers may predate the change: once more when it ends
            return
        self.refresh()

    def _workspace_changed(self, *_: Any) -> None:
        self.settle.stop()
        self.stale = self.job is not None  # the previous workspace's job is being cancelled: then this one
        self.waiting = self.session.workspace is not None and self.session.sample_id is None
        if not self.waiting:
            self.refresh()
            return
        self.settle.start()  # at the latest, when no sample is shown (module doc)
        self.report = None
        self.summary.setText("")
        self._show_plots({})
        self.status.setText("The overview follows once the first sample is on screen.")

    def _sample_shown(self, sample_id: Any) -> None:
        if self.waiting and sample_id is not None:
            self.settle.stop()
            self.shown.start()

    def refresh(self, *_: Any) -> bool:
        """Compute the open workspace's overview in a worker; False when none is open or one runs already."""
        ws = self.session.workspace
        if ws is None:
            self.report = self.cache = self.cache_of = None
            self.summary.setText(NO_WORKSPACE)
            self._show_plots({})
            self.status.setText("")
            self.refresh_button.setEnabled(False)
            return False
        if self.job is not None:
            return False
        if self.cache_of is not ws:
            from medseg.stats.cache import FactsCache

            self.cache, self.cache_of = FactsCache(), ws
        leave_threads_for_moves()
        cache, jobs = self.cache, self.session.jobs
        running = start_job(
            self.session.jobs,
            lambda token: beside_the_user(overview_job(ws, cancel=token, cache=cache), jobs, token),
            "Dataset overview",
            workspace=ws,
            owner=self,
            progress=False,  # its own line says how far it is: napari's activity bar took a second to make
            on_event=self._progress,
            on_result=self._show,
            on_cancelled=lambda _: self.status.setText("Overview cancelled."),
            on_error=lambda e: self.status.say(*report("The dataset overview failed", e)),
            on_finished=self._done,
        )
        self.job = running.job
        self.waiting = False
        self.refresh_button.setEnabled(False)
        self.status.setText(f"Reading {ws.dataset_root.name}: sizes, classes, intensities...")
        return True

    def _progress(self, event: Any) -> None:
        from medseg.jobs import Progress

        if isinstance(event, Progress) and event.total:
            self.status.setText(f"Reading the samples for the overview: {event.done:,} of {event.total:,}")

    def _show(self, outcome: tuple) -> None:
        self.report, plots = outcome
        self.summary.setText("\n".join(self.report.lines()))
        self._show_plots(plots)
        self.status.setText(
            f"Overview of {self.report.numbers['samples']} samples in {self.report.numbers['seconds']} s."
        )

    def _show_plots(self, plots: dict[str, bytes]) -> None:
        for label in self.plots.values():
            self.plot_layout.removeWidget(label)
            label.deleteLater()
        self.plots = {}
        for k, (name, data) in enumerate(plots.items()):
            pixmap = QPixmap()
            pixmap.loadFromData(data, "PNG")
            if pixmap.width() > PLOT_WIDTH:
                pixmap = pixmap.scaledToWidth(PLOT_WIDTH, Qt.TransformationMode.SmoothTransformation)
            label = QLabel()
            label.setPixmap(pixmap)
            label.setToolTip(name)
            self.plot_layout.insertWidget(1 + k, label)
            self.plots[name] = label

    def _done(self) -> None:
        self.job = None
        self.refresh_button.setEnabled(self.session.workspace is not None)
        if self.stale and not self.waiting:
            self.stale = False
            self.refresh()
