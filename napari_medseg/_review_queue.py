"""The Review widget's queue panel: filters, the list worst label first, previous / next (also on keys).

The order is :func:`medseg.qc.queue.review_queue`'s; this panel only shows it
and moves along it. When the sample on screen leaves the filtered queue (e.g.
it was just accepted and the filter shows unreviewed samples), its place holds
the sample that came after it, so "next" continues from there.
"""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg.workspace.records import STATUSES
from napari_medseg._jobs import call, start_job
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import button, combo, refill

NEXT_KEY, PREVIOUS_KEY = ".", ","
ALL_STATUSES, ALL_CHECKS, AUTO_METHOD = "all statuses", "all findings", "auto"


class QueuePanel(QWidget):
    """Filters, queue list and navigation; ``said`` carries short messages ("End of the queue.")."""

    said = Signal(str)
    refreshed = Signal()

    def __init__(self, viewer: Any, autosave: Any, session: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.autosave, self.session = viewer, autosave, session
        self.items: list[Any] = []
        self.all_items: dict[str, Any] = {}
        self.pending: Any = None  # the worker building the queue, while one runs
        self._request = 0
        self._position = 0
        self.status_filter = combo([ALL_STATUSES, *STATUSES])
        self.check_filter = combo([ALL_CHECKS])
        self.method = combo([AUTO_METHOD])
        self.method.setToolTip("Label-quality scores to rank by ('auto': out-of-fold scores when stored)")
        for c in (self.status_filter, self.check_filter, self.method):
            c.currentIndexChanged.connect(lambda _=None: self.refresh())
        self.queue = QListWidget()
        self.queue.itemActivated.connect(self._on_item_activated)
        self.queue.itemClicked.connect(self._on_item_activated)
        self.previous_button = button(f"◀ Previous ({PREVIOUS_KEY})", lambda: self.step(-1))
        self.next_button = button(f"Next ({NEXT_KEY}) ▶", lambda: self.step(+1))
        self.position = QLabel()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        filters, nav = QHBoxLayout(), QHBoxLayout()
        for w in (self.status_filter, self.check_filter, self.method):
            filters.addWidget(w)
        for w in (self.previous_button, self.position, self.next_button):
            nav.addWidget(w)
        layout.addLayout(filters)
        layout.addWidget(self.queue, 1)
        layout.addLayout(nav)
        self._bind_keys()

    def _bind_keys(self) -> None:
        ref = weakref.ref(self)

        def step(delta: int):
            def bound(viewer: Any) -> None:
                panel = ref()
                if panel is not None:
                    panel.step(delta)

            return bound

        viewer = self.viewer
        viewer.bind_key(NEXT_KEY, step(+1), overwrite=True)
        viewer.bind_key(PREVIOUS_KEY, step(-1), overwrite=True)
        self.destroyed.connect(lambda *_: (viewer.bind_key(NEXT_KEY, None), viewer.bind_key(PREVIOUS_KEY, None)))

    # ------------------------------------------------------------------ content
    def refill_choices(self) -> None:
        """The finding and score-method filters offer what the workspace stores."""
        ws = self.session.workspace
        refill(self.check_filter, [ALL_CHECKS, *sorted({f.check for f in ws.findings()})] if ws else [ALL_CHECKS])
        refill(self.method, [AUTO_METHOD, *ws.score_methods()] if ws else [AUTO_METHOD])

    def method_name(self) -> str | None:
        text = self.method.currentText()
        return None if text in ("", AUTO_METHOD) else text

    def refresh(self) -> None:
        """Rebuild the queue in a thread worker (it reads every score and finding: 40 ms for 612 samples,
        more for larger sets, too long for the GUI thread); the newest request wins and ``refreshed`` is
        emitted when its items are on screen."""
        from medseg.qc.queue import review_queue

        self._request += 1
        request, ws = self._request, self.session.workspace
        if ws is None:
            self._fill(request, [])
            return
        statuses, method, checks = chosen(self.status_filter), self.method_name(), chosen(self.check_filter)
        # all statuses are computed (the order does not depend on them) so that a sample filtered out
        # still has its queue item for the details panel; the panel filters. A job on the workspace: it
        # closes after it
        self.pending = start_job(
            self.session.jobs,
            lambda token: call(review_queue, ws, method=method, checks=checks),
            "Building the review queue",
            workspace=ws,
            stoppable=False,
            progress=False,
            on_result=lambda items: self._fill(request, items, statuses),
            on_error=lambda e: self._failed(request, e),
        ).worker

    @property
    def refreshing(self) -> bool:
        return self.pending is not None

    def _fill(self, request: int, items: list, statuses: list[str] | None = None) -> None:
        from napari_medseg._review_text import item_line

        if request != self._request:
            return  # a newer refresh is on its way
        self.pending = None
        self.all_items = {item.sample_id: item for item in items}
        self.items = [i for i in items if statuses is None or i.status in statuses]
        self.queue.blockSignals(True)
        self.queue.clear()
        for item in self.items:
            row = QListWidgetItem(item_line(item))
            row.setData(Qt.ItemDataRole.UserRole, item.sample_id)
            row.setToolTip(item.reason)
            self.queue.addItem(row)
        self.queue.blockSignals(False)
        self.mark_current()
        self.refreshed.emit()

    def _failed(self, request: int, exc: BaseException) -> None:
        if request == self._request:
            self.pending = None
            self._fill(request, [])
        report_error("Cannot build the review queue", exc)

    def item_of(self, sample_id: str | None):
        """The sample's queue item (also when the status filter hides it), or None before the queue is built."""
        return self.all_items.get(sample_id) if sample_id is not None else None

    def queue_ids(self) -> list[str]:
        return [item.sample_id for item in self.items]

    def mark_current(self) -> None:
        ids = self.queue_ids()
        current = self.autosave.sample_id
        if current in ids:
            self._position = ids.index(current)
            self.queue.setCurrentRow(self._position)
            self.position.setText(f"{self._position + 1} of {len(ids)}")
        else:
            self.queue.clearSelection()
            self.position.setText(f"{len(ids)} in queue")

    # --------------------------------------------------------------- moving
    def step(self, delta: int) -> None:
        ids = self.queue_ids()
        current = self.autosave.sample_id
        if current is None:
            k = 0 if delta > 0 else len(ids) - 1
        elif current in ids:
            k = ids.index(current) + delta
        else:  # the sample left the filtered queue: its place holds the one after it
            k = self._position if delta > 0 else self._position - 1
        if not 0 <= k < len(ids):
            self.said.emit("End of the queue." if ids else "The queue is empty.")
            return
        self.show(ids[k])

    def show(self, sample_id: str) -> None:
        """Show the sample; a volume opens on its first flagged slice (:mod:`napari_medseg._review_slices`)."""
        from napari_medseg._review_slices import landing_slice
        from napari_medseg._sample_layers import show_sample

        ids = self.queue_ids()
        if sample_id in ids:
            self._position = ids.index(sample_id)
        try:
            show_sample(self.viewer, sample_id, landing_slice(self.item_of(sample_id)))
        except Exception as e:  # noqa: BLE001 - reported to the user, not swallowed
            report_error(f"Cannot show sample {sample_id}", e)

    def _on_item_activated(self, row: QListWidgetItem) -> None:
        sample_id = row.data(Qt.ItemDataRole.UserRole)
        if sample_id != self.autosave.sample_id:
            self.show(sample_id)


def chosen(c: QComboBox) -> list[str] | None:
    return None if c.currentIndex() <= 0 else [c.currentText()]
