"""The Review widget's queue panel: filters, the list worst label first, previous / next (also on keys).

The order is :func:`medseg.qc.queue.review_queue`'s (ascending priority); this
panel only shows it and moves along it, as annotation tools do (CVAT's job
list, MONAI Label's next sample / submit). The sample on screen keeps its place
in the queue while the user works on it: a verdict or a correction changes its
status and its priority (a corrected label's score is about an earlier
revision: it goes to the unscored end), the list shows it at its new place, but
Next and Previous go on from where it was, as does the move after a verdict
(:meth:`QueuePanel.step_unreviewed`: the next unreviewed sample after that
place). The same holds when it leaves the filtered queue (accepted while the
filter shows unreviewed samples). A re-score, new findings or another filter
re-order the queue: its place is then where the new order puts it. At the end
of the queue the panel says how many unreviewed samples remain before it and
offers the first of them.
"""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg.workspace.records import STATUSES, UNREVIEWED
from napari_medseg._jobs import call, start_job
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import button, combo, refill
from napari_medseg._scroll import ShortList

NEXT_KEY, PREVIOUS_KEY = ".", ","
ALL_STATUSES, ALL_CHECKS, AUTO_METHOD = "all statuses", "all findings", "auto"
QUEUE_ROWS = 8  # the rows the queue list asks for; a taller dock gives it more


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
        # the index in the filtered queue (without the sample on screen) where that sample stands: Next and
        # Previous go on from it (module doc); _held: the sample whose place is held while its own new status
        # or priority moves its row
        self._position = 0
        self._held: str | None = None
        self._hold: str | None = None  # a refresh for that sample's new status is on its way
        self._reorder = False  # a refresh that re-orders the queue is on its way
        self.status_filter = combo([ALL_STATUSES, *STATUSES])
        self.check_filter = combo([ALL_CHECKS])
        self.method = combo([AUTO_METHOD])
        self.method.setToolTip("Label-quality scores to rank by ('auto': out-of-fold scores when stored)")
        for c in (self.status_filter, self.check_filter, self.method):
            c.currentIndexChanged.connect(lambda _=None: self.refresh())
        self.queue = ShortList(QUEUE_ROWS)  # the sample's details below it stay in view on a laptop
        self.queue.itemActivated.connect(self._on_item_activated)
        self.queue.itemClicked.connect(self._on_item_activated)
        self.previous_button = button(f"◀ Previous ({PREVIOUS_KEY})", lambda: self.step(-1))
        self.next_button = button(f"Next ({NEXT_KEY}) ▶", lambda: self.step(+1))
        self.position = QLabel()
        self.first_button = button(
            "First unreviewed", self.first_unreviewed, "The first unreviewed sample in the queue"
        )
        self.first_button.hide()  # offered at the end of the queue while unreviewed samples remain before it

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        filters = QHBoxLayout()
        for w in (self.status_filter, self.check_filter, self.method):
            filters.addWidget(w)
        # Previous / position / Next: a bar of their own, which the Review dock pins below its scrolling body
        self.nav_bar = QWidget(self)
        nav = QHBoxLayout(self.nav_bar)
        nav.setContentsMargins(0, 0, 0, 0)
        for w in (self.previous_button, self.position, self.first_button, self.next_button):
            nav.addWidget(w)
        layout.addLayout(filters)
        layout.addWidget(self.queue, 1)
        layout.addWidget(self.nav_bar)
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

    def refresh(self, hold: str | None = None) -> None:
        """Rebuild the queue in a thread worker (it reads every score and finding: 40 ms for 612 samples,
        more for larger sets, too long for the GUI thread); the newest request wins and ``refreshed`` is
        emitted when its items are on screen. ``hold``: the sample whose status just changed; while it is
        the one on screen, it keeps its place for Next and Previous (module doc); without it the queue is
        re-ordered (a re-score, new findings, another filter)."""
        from medseg.qc.queue import review_queue

        if hold is None:
            self._reorder = True
        elif hold == self.autosave.sample_id:
            self._hold = hold
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
        from napari_medseg._review_text import item_line, item_tip

        if request != self._request:
            return  # a newer refresh is on its way
        self.pending = None
        current = self.autosave.sample_id
        if self._reorder:
            self._held = None
        elif self._hold is not None and self._hold == current:
            self._held = current
        self._hold, self._reorder = None, False
        self.all_items = {item.sample_id: item for item in items}
        self.items = [i for i in items if statuses is None or i.status in statuses]
        self.queue.blockSignals(True)
        self.queue.clear()
        for k, item in enumerate(self.items, 1):
            row = QListWidgetItem(item_line(item, k))
            row.setData(Qt.ItemDataRole.UserRole, item.sample_id)
            row.setToolTip(item_tip(item))
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

    def place(self, sample_id: str | None) -> tuple[int, int] | None:
        """(1-based position, length) of the sample in the filtered queue; None when it is not in it."""
        ids = self.queue_ids()
        return (ids.index(sample_id) + 1, len(ids)) if sample_id in ids else None

    def mark_current(self) -> None:
        ids = self.queue_ids()
        current = self.autosave.sample_id
        if current != self._held:
            self._held = None
        if current in ids:
            k = ids.index(current)
            if self._held is None:
                self._position = k
            self.queue.setCurrentRow(k)
            self.position.setText(f"{k + 1} of {len(ids)}")
        else:
            self.queue.clearSelection()
            self.position.setText(f"{len(ids)} in queue")

    # --------------------------------------------------------------- moving
    def _around(self) -> tuple[list[str], int]:
        """The filtered queue without the sample on screen, and the index in it where that sample stands:
        where the order puts it, or its held place (module doc) when its own status moved it or the filter
        left it out."""
        ids = self.queue_ids()
        current = self.autosave.sample_id
        if current is None:
            return ids, 0
        others = [i for i in ids if i != current]
        if current in ids and self._held != current:
            return others, ids.index(current)
        return others, min(self._position, len(others))

    def _status(self, sample_id: str) -> str | None:
        item = self.all_items.get(sample_id)
        return item.status if item is not None else None

    def step(self, delta: int) -> bool:
        """Show the sample after (``delta`` > 0) or before the one on screen's place; False (and said why)
        at an end of the queue."""
        others, at = self._around()
        if self.autosave.sample_id is None and delta < 0:
            at = len(others)
        k = at if delta > 0 else at - 1
        if 0 <= k < len(others):
            self.show(others[k])
            return True
        if not others:
            self.said.emit("The queue is empty." if not self.queue_ids() else "This is the only sample in the queue.")
        elif delta < 0:
            self.said.emit("Start of the queue.")
        else:
            self.said.emit("End of the queue" + self._remaining(others))
        return False

    def step_unreviewed(self) -> bool:
        """After a verdict: show the next unreviewed sample after the one on screen's place (any next sample
        when the status filter shows no unreviewed ones); False (and said why) when none is after it."""
        others, at = self._around()
        wanted = chosen(self.status_filter)
        after = [s for s in others[at:] if wanted is not None or self._status(s) == UNREVIEWED]
        if after:
            self.show(after[0])
            return True
        lead = "End of the queue" if wanted is not None else "No unreviewed sample after this one in the queue"
        self.said.emit(lead + self._remaining(others))
        return False

    def _remaining(self, others: list[str]) -> str:
        """The end of a message at an end of the queue: the unreviewed samples left, and the offer of the first."""
        left = [s for s in others if self._status(s) == UNREVIEWED]
        if not left:
            self.first_button.hide()
            return ": every other sample in it is reviewed."
        self.first_button.show()
        n = len(left)
        return (
            f": {n} unreviewed sample{'s' if n != 1 else ''} remain{'s' if n == 1 else ''} before it; "
            f"'First unreviewed' goes to {left[0]}."
        )

    def first_unreviewed(self) -> bool:
        """Show the first unreviewed sample of the filtered queue; False (and said so) when none is left."""
        left = [s for s in self.queue_ids() if self._status(s) == UNREVIEWED and s != self.autosave.sample_id]
        if not left:
            self.said.emit("No unreviewed sample is left in the queue.")
            self.first_button.hide()
            return False
        self.show(left[0])
        return True

    def show(self, sample_id: str) -> None:
        """Show the sample; a volume opens on its first flagged slice (:mod:`napari_medseg._review_slices`)."""
        from napari_medseg._review_slices import landing_slice
        from napari_medseg._sample_layers import show_sample

        self.first_button.hide()
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
