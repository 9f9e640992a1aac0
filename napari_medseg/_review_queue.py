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

The queue is built, filtered and indexed in a thread worker
(:class:`napari_medseg._queue_list.QueueOrder`) and shown by a one-column view whose rows
are made only when drawn: a queue of 100,000 samples fills the list at once, and a
move along it is a lookup, not a pass over the queue.
"""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtCore import QModelIndex, Qt, QTimer, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from medseg.workspace.records import STATUSES
from napari_medseg._jobs import call, start_job
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import button, combo, refill
from napari_medseg._queue_list import QueueOrder, QueueView

NEXT_KEY, PREVIOUS_KEY = ".", ","
ALL_STATUSES, ALL_CHECKS, AUTO_METHOD = "all statuses", "all findings", "auto"
QUEUE_ROWS = 8  # the rows the queue list asks for; a taller dock gives it more
WAIT_MS = 20  # how often a build waiting for a sample's read looks again


class QueuePanel(QWidget):
    """Filters, queue list and navigation; ``said`` carries short messages ("End of the queue.")."""

    said = Signal(str)
    refreshed = Signal()

    def __init__(self, viewer: Any, autosave: Any, session: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.autosave, self.session = viewer, autosave, session
        self.order = QueueOrder()
        self.pending: Any = None  # the worker building the queue (or the build waiting to start), while one runs
        self._due: tuple | None = None  # (request, workspace, statuses, method, checks) of the build to start
        self._wait = QTimer(self)  # starts it (_start_due)
        self._wait.timeout.connect(self._start_due)
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
        self.queue = QueueView(QUEUE_ROWS)  # the sample's details below it stay in view on a laptop
        self.queue.activated.connect(self._on_item_activated)
        self.queue.clicked.connect(self._on_item_activated)
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
        # the checks counted by the workspace: a finding object each would take seconds at 100,000 samples
        checks = sorted(ws.summary()["by_check"]) if ws else []
        refill(self.check_filter, [ALL_CHECKS, *checks])
        refill(self.method, [AUTO_METHOD, *ws.score_methods()] if ws else [AUTO_METHOD])

    def method_name(self) -> str | None:
        text = self.method.currentText()
        return None if text in ("", AUTO_METHOD) else text

    def refresh(self, hold: str | None = None) -> None:
        """Rebuild the queue in a thread worker (it reads every score and finding: 40 ms for 612 samples,
        more for larger sets, too long for the GUI thread); the newest request wins and ``refreshed`` is
        emitted when its items are on screen. ``hold``: the sample whose status just changed; while it is
        the one on screen, it keeps its place for Next and Previous (module doc); without it the queue is
        re-ordered (a re-score, new findings, another filter). The build starts once no sample is being read
        and put on screen (:meth:`_start_due`)."""
        if hold is None:
            self._reorder = True
        elif hold == self.autosave.sample_id:
            self._hold = hold
        self._request += 1
        request, ws = self._request, self.session.workspace
        if ws is None:
            self._due = None
            self._fill(request, QueueOrder())
            return
        statuses, method, checks = chosen(self.status_filter), self.method_name(), chosen(self.check_filter)
        self._due = (request, ws, statuses, method, checks)
        self.pending = self._due  # refreshing from now on
        self._wait.start(0)  # after the event that asked: a workspace just opened asks for its first sample next

    def _start_due(self) -> None:
        """Start the build asked for last, unless a sample is being read: the build (seconds at 100,000 samples
        without a stored order) took the workspace and the interpreter lock from the read and from napari's
        layers as the first sample of a workspace went on screen (9 s at 100,000). A read's job ends after its
        sample is on screen, so the build waits for that; it polls, as a failed read shows nothing."""
        from medseg.qc.queue import review_queue
        from napari_medseg._dataset_jobs import showing_sample

        if self._due is None:
            self._wait.stop()
            return
        if showing_sample(self.session.jobs):
            self._wait.start(WAIT_MS)
            return
        self._wait.stop()
        (request, ws, statuses, method, checks), self._due = self._due, None
        if ws is not self.session.workspace:  # switched meanwhile without a refresh: nothing of it to show
            self._fill(request, QueueOrder())
            return
        # all statuses are computed (the order does not depend on them) so that a sample filtered out
        # still has its queue item for the details panel; the panel filters. A job on the workspace: it
        # closes after it
        self.pending = start_job(
            self.session.jobs,
            lambda token: call(_queue_order, review_queue, ws, statuses, method=method, checks=checks),
            "Building the review queue",
            workspace=ws,
            stoppable=False,
            progress=False,
            on_result=lambda order: self._fill(request, order),
            on_error=lambda e: self._failed(request, e),
        ).worker

    @property
    def refreshing(self) -> bool:
        return self.pending is not None

    def _fill(self, request: int, order: QueueOrder) -> None:
        if request != self._request:
            return  # a newer refresh is on its way
        self.pending = None
        current = self.autosave.sample_id
        if self._reorder:
            self._held = None
        elif self._hold is not None and self._hold == current:
            self._held = current
        self._hold, self._reorder = None, False
        self.order = order
        self.queue.queue_model.set_order(order)
        self.mark_current()
        self.refreshed.emit()

    def _failed(self, request: int, exc: BaseException) -> None:
        if request == self._request:
            self.pending = None
            self._fill(request, QueueOrder())
        report_error("Cannot build the review queue", exc)

    def item_of(self, sample_id: str | None):
        """The sample's queue item (also when the status filter hides it), or None before the queue is built."""
        return self.order.all.get(sample_id) if sample_id is not None else None

    @property
    def items(self) -> list[Any]:
        """The filtered queue's items, in order."""
        return self.order.items

    def queue_ids(self) -> list[str]:
        return self.order.ids()

    def place(self, sample_id: str | None) -> tuple[int, int] | None:
        """(1-based position, length) of the sample in the filtered queue; None when it is not in it."""
        k = self.order.index.get(sample_id) if sample_id is not None else None
        return None if k is None else (k + 1, len(self.order))

    def mark_current(self) -> None:
        current = self.autosave.sample_id
        if current != self._held:
            self._held = None
        k = self.order.index.get(current) if current is not None else None
        if k is not None:
            if self._held is None:
                self._position = k
            self.queue.setCurrentRow(k)
            self.position.setText(f"{k + 1} of {len(self.order)}")
        else:
            self.queue.clearSelection()
            self.position.setText(f"{len(self.order)} in queue")

    # --------------------------------------------------------------- moving
    def _around(self) -> tuple[int, int, int | None]:
        """How long the filtered queue is without the sample on screen, the index in that shorter queue where
        the sample stands (where the order puts it, or its held place (module doc) when its own status moved it
        or the filter left it out), and the sample's place in the queue (None when it is not in it)."""
        current = self.autosave.sample_id
        n = len(self.order)
        if current is None:
            return n, 0, None
        c = self.order.index.get(current)
        others = n - (c is not None)
        if c is not None and self._held != current:
            return others, c, c
        return others, min(self._position, others), c

    @staticmethod
    def _place(k: int, skipped: int | None) -> int:
        """The place in the queue of index ``k`` of the queue without place ``skipped``."""
        return k if skipped is None or k < skipped else k + 1

    def step(self, delta: int) -> bool:
        """Show the sample after (``delta`` > 0) or before the one on screen's place; False (and said why)
        at an end of the queue."""
        n, at, c = self._around()
        if self.autosave.sample_id is None and delta < 0:
            at = n
        k = at if delta > 0 else at - 1
        if 0 <= k < n:
            self.show(self.order.items[self._place(k, c)].sample_id)
            return True
        if not n:
            self.said.emit("The queue is empty." if not len(self.order) else "This is the only sample in the queue.")
        elif delta < 0:
            self.said.emit("Start of the queue.")
        else:
            self.said.emit("End of the queue" + self._remaining(c))
        return False

    def step_unreviewed(self) -> bool:
        """After a verdict: show the next unreviewed sample after the one on screen's place (any next sample
        when the status filter shows no unreviewed ones); False (and said why) when none is after it."""
        n, at, c = self._around()
        wanted = chosen(self.status_filter)
        if at >= n:
            target = None
        elif wanted is not None:
            target = self._place(at, c)
        else:
            target = self.order.unreviewed_from(self._place(at, c), skip=c)
        if target is not None:
            self.show(self.order.items[target].sample_id)
            return True
        lead = "End of the queue" if wanted is not None else "No unreviewed sample after this one in the queue"
        self.said.emit(lead + self._remaining(c))
        return False

    def _remaining(self, skip: int | None) -> str:
        """The end of a message at an end of the queue: the unreviewed samples left (but the one on screen, at
        place ``skip``), and the offer of the first."""
        n = self.order.unreviewed_count(skip)
        if not n:
            self.first_button.hide()
            return ": every other sample in it is reviewed."
        self.first_button.show()
        first = self.order.items[self.order.unreviewed_from(0, skip=skip)].sample_id
        return (
            f": {n} unreviewed sample{'s' if n != 1 else ''} remain{'s' if n == 1 else ''} before it; "
            f"'First unreviewed' goes to {first}."
        )

    def first_unreviewed(self) -> bool:
        """Show the first unreviewed sample of the filtered queue; False (and said so) when none is left."""
        current = self.autosave.sample_id
        k = self.order.unreviewed_from(0, skip=self.order.index.get(current) if current is not None else None)
        if k is None:
            self.said.emit("No unreviewed sample is left in the queue.")
            self.first_button.hide()
            return False
        self.show(self.order.items[k].sample_id)
        return True

    def show(self, sample_id: str) -> None:
        """Show the sample; a volume opens on its first flagged slice (:mod:`napari_medseg._review_slices`)."""
        from napari_medseg._review_slices import landing_slice
        from napari_medseg._sample_layers import show_sample

        self.first_button.hide()
        k = self.order.index.get(sample_id)
        if k is not None:
            self._position = k
        try:
            show_sample(self.viewer, sample_id, landing_slice(self.item_of(sample_id)))
        except Exception as e:  # noqa: BLE001 - reported to the user, not swallowed
            report_error(f"Cannot show sample {sample_id}", e)

    def _on_item_activated(self, index: QModelIndex) -> None:
        sample_id = index.data(Qt.ItemDataRole.UserRole)
        if sample_id is not None and sample_id != self.autosave.sample_id:
            self.show(sample_id)


def _queue_order(review_queue: Any, ws: Any, statuses: list[str] | None, **options: Any) -> QueueOrder:
    """Worker body: the queue, filtered to ``statuses`` and indexed for moving along it."""
    return QueueOrder(review_queue(ws, **options), statuses)


def chosen(c: QComboBox) -> list[str] | None:
    return None if c.currentIndex() <= 0 else [c.currentText()]
