"""Overview dock widget: the open workspace's dataset overview (``medseg stats``): a compact summary and the
plots (image sizes and spacings, class balance, mask areas, intensities, review status and the labels before
and after cleaning).

The engine's job (``medseg.stats.iter_stats``) and the plots' drawing (matplotlib's Agg canvas, no Qt) run in
a worker through ``start_job``; only the finished PNG bytes reach the main thread, as pixmaps. The overview
is computed again when a workspace is opened, and on Refresh (after corrections or a QC run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QFont, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

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


def overview_job(workspace: Any, cancel: Any = None):
    """The engine's overview of ``workspace``, whose result comes paired with its plots' PNG bytes (drawn
    here, in the worker)."""
    from medseg.jobs import Result
    from medseg.stats import iter_stats

    for event in iter_stats(workspace, cancel=cancel):
        if isinstance(event, Result):
            yield Result((event.value, event.value.plots()))
            return
        yield event


class OverviewWidget(QWidget):
    """See the module docstring."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session_for(napari_viewer)
        self.report: Any = None
        self.job: Any = None
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
        connect_until_destroyed(self, [(self.session.workspace_changed, self.refresh)])
        self.refresh()

    def refresh(self, *_: Any) -> bool:
        """Compute the open workspace's overview in a worker; False when none is open or one runs already."""
        ws = self.session.workspace
        if ws is None:
            self.summary.setText("Open a dataset's workspace in the Dataset tool to see its overview.")
            self._show_plots({})
            self.refresh_button.setEnabled(False)
            return False
        if self.job is not None:
            return False
        running = start_job(
            self.session.jobs,
            lambda token: overview_job(ws, cancel=token),
            "Dataset overview",
            workspace=ws,
            owner=self,
            on_result=self._show,
            on_cancelled=lambda _: self.status.setText("Overview cancelled."),
            on_error=lambda e: self.status.say(*report("The dataset overview failed", e)),
            on_finished=self._done,
        )
        self.job = running.job
        self.refresh_button.setEnabled(False)
        self.status.setText(f"Reading {ws.dataset_root.name}: sizes, classes, intensities...")
        return True

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
