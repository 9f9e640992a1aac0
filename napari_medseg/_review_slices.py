"""Review's flagged slices of the volume on screen: where QC and the ranking model say to look, and the way there.

A volume's queue item names the slices to open, most telling first
(:attr:`medseg.qc.queue.QueueItem.slices`: the slices of its error and warning
findings, then the model's worst slices, then those of info findings).
Opening a volume from the queue lands on the first of them
(:func:`landing_slice`, which the queue panel hands to ``show_sample``: the
slider is set once, when the volume's layers exist, and never again, so the
user's own moves stand). :class:`SliceNavigator` lists them with why each is
flagged (a finding's severity and phrase, the model's rank and score of that
slice); a click on an entry, the "next / previous flagged slice" buttons and
their keys move the slider along the list, in its order. The model's
per-slice scores are read from the workspace in a job (newest wins); until
they arrive an entry says only that it is one of the model's worst slices. On
a 2-D sample the panel is hidden and the keys do nothing.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from napari_medseg._jobs import read_job
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import button, connect_until_destroyed

# '.' / ',' step samples (the queue panel); napari binds neither j nor k (its letters are the layers' tools)
NEXT_SLICE_KEY, PREVIOUS_SLICE_KEY = "j", "k"
MODEL_SLICE = "one of the model's worst slices"


@dataclass(frozen=True)
class FlaggedSlice:
    """One slice to look at and why, in words."""

    z: int
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"slice {self.z}: " + "; ".join(self.reasons)


def landing_slice(item: Any) -> int | None:
    """The slice a volume opens on from the queue: its first flagged slice (None: 2-D, or none flagged)."""
    return int(item.slices[0]) if item is not None and item.slices else None


def flagged_slices(item: Any, details: dict | None = None) -> list[FlaggedSlice]:
    """The queue item's slices in its order, each with its reasons: the findings naming it (``details["z"]``
    or in ``details["slices"]``), and its rank among the model's worst slices with its score when the
    method's score ``details`` of the sample are given."""
    if item is None or not item.slices:
        return []
    from medseg.qc.queue import finding_phrase

    details = details or {}
    worst = [int(z) for z in details.get("worst_slices") or ()]
    scores, dice = _per_slice(details.get("slice_scores")), _per_slice(details.get("slice_dice"))
    out = []
    for z in (int(z) for z in item.slices):
        reasons = [f"{f.severity}: {finding_phrase(f)}" for f in item.findings if _names_slice(f, z)]
        if z in worst:
            reasons.append(_model_reason(worst.index(z) + 1, item.method, scores.get(z), dice.get(z)))
        # the queue takes a slice from its findings or from the model's worst slices: no finding, the model
        out.append(FlaggedSlice(z, tuple(reasons) or (MODEL_SLICE,)))
    return out


def _names_slice(finding: Any, z: int) -> bool:
    d = finding.details or {}
    return d.get("z") == z or z in (d.get("slices") or ())


def _per_slice(values: Any) -> dict[int, float]:
    # stored as JSON: the slice numbers come back as strings
    return {int(k): float(v) for k, v in (values or {}).items() if v is not None}


def _model_reason(rank: int, method: str | None, score: float | None, dice: float | None) -> str:
    which = "the worst slice" if rank == 1 else f"{_ordinal(rank)} worst slice"
    text = f"{which} by the {method} model" if method else which
    facts = [f"label quality {score:.2f}" if score is not None else "", f"Dice {dice:.2f}" if dice is not None else ""]
    facts = [f for f in facts if f]
    return f"{text} ({', '.join(facts)})" if facts else text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _slice_details(workspace: Any, method: str, sample_id: str) -> dict:
    """Worker body: the sample's score details of ``method`` (the model's worst slices and their scores)."""
    return workspace.score_details(method).get(str(sample_id)) or {}


class SliceNavigator(QWidget):
    """The flagged slices of the volume on screen, with previous / next (also on keys); hidden for 2-D samples.

    ``panel`` is the Review dock's queue panel: its items say which slices are flagged, its ``refreshed``
    signal when they may have changed.
    """

    def __init__(self, viewer: Any, session: Any, autosave: Any, panel: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.session, self.autosave, self.panel = viewer, session, autosave, panel
        self.entries: list[FlaggedSlice] = []
        self.pending: Any = None  # the worker reading the model's slice scores, while one runs
        self._request = 0
        self._cursor = -1  # the entry last moved to
        self.title = QLabel("<b>Flagged slices</b> (most telling first)")
        self.list = QListWidget()
        self.list.setToolTip("Click a slice to move the slider there")
        self.list.itemClicked.connect(self._on_item)
        self.list.itemActivated.connect(self._on_item)
        self.previous_button = button(
            f"◀ Previous flagged slice ({PREVIOUS_SLICE_KEY})", lambda: self.step(-1), "The entry above in the list"
        )
        self.next_button = button(
            f"Next flagged slice ({NEXT_SLICE_KEY}) ▶", lambda: self.step(+1), "The entry below in the list"
        )
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        nav = QHBoxLayout()
        nav.addWidget(self.previous_button)
        nav.addWidget(self.next_button)
        layout.addLayout(nav)
        layout.addWidget(self.note)
        self.setVisible(False)
        panel.refreshed.connect(self.refresh)
        connect_until_destroyed(
            self,
            [(session.sample_changed, self._on_sample_changed), (viewer.dims.events.current_step, self._on_step)],
        )
        self._bind_keys()

    def _bind_keys(self) -> None:
        ref = weakref.ref(self)

        def step(delta: int):
            def bound(viewer: Any) -> None:
                navigator = ref()
                if navigator is not None:
                    navigator.step(delta)

            return bound

        viewer = self.viewer
        viewer.bind_key(NEXT_SLICE_KEY, step(+1), overwrite=True)
        viewer.bind_key(PREVIOUS_SLICE_KEY, step(-1), overwrite=True)
        self.destroyed.connect(
            lambda *_: (viewer.bind_key(NEXT_SLICE_KEY, None), viewer.bind_key(PREVIOUS_SLICE_KEY, None))
        )

    # ------------------------------------------------------------------ content
    def volume_on_screen(self) -> bool:
        layer = self.autosave.layer
        return self.autosave.sample_id is not None and bool(self.autosave.volume) and layer is not None

    def _on_sample_changed(self, *_: Any) -> None:
        self._cursor = -1
        self.note.setText("")
        self.refresh()

    def refresh(self) -> None:
        """List the flagged slices of the sample on screen (after a sample or queue change); the model's
        scores of its slices follow from a job."""
        self._request += 1
        self.pending = None
        sid = self.autosave.sample_id
        if not self.volume_on_screen():
            self._fill([])
            self.setVisible(False)
            return
        self.setVisible(True)
        item = self.panel.item_of(sid)
        self._fill(flagged_slices(item))
        if item is None:
            self.note.setText("The review queue is being built.")
            return
        if not item.slices:
            self.note.setText("No slice of this volume is flagged: no QC finding names one and no model scored it.")
            return
        if item.method is None:  # no model score stands for this label: the findings say it all
            return
        ws, request = self.session.workspace, self._request
        self.pending = read_job(  # a job on the workspace: it closes after it
            self.session.jobs,
            f"Reading the slice scores of {sid}",
            ws,
            lambda: _slice_details(ws, item.method, sid),
            lambda details: self._details_arrived(request, item, details),
            lambda e: self._details_failed(request, sid, e),
        )

    def _details_arrived(self, request: int, item: Any, details: dict) -> None:
        if request != self._request:
            return  # another sample, or a newer queue, is listed now
        self.pending = None
        self._fill(flagged_slices(item, details))

    def _details_failed(self, request: int, sample_id: str, exc: BaseException) -> None:
        if request == self._request:
            self.pending = None
        report_error(f"Reading the slice scores of {sample_id} failed", exc)

    def _fill(self, entries: list[FlaggedSlice]) -> None:
        self.entries = entries
        self.list.blockSignals(True)
        self.list.clear()
        for entry in entries:
            row = QListWidgetItem(entry.text)
            row.setToolTip(entry.text)
            row.setData(Qt.ItemDataRole.UserRole, entry.z)
            self.list.addItem(row)
        self.list.blockSignals(False)
        for b in (self.previous_button, self.next_button):
            b.setEnabled(bool(entries))
        self._mark(self._slice_now())

    # --------------------------------------------------------------- moving
    def _slice_now(self) -> int | None:
        if not self.volume_on_screen():
            return None
        from napari_medseg._volume_layers import current_slice

        return current_slice(self.viewer, self.autosave.layer)

    def _index_of(self, z: int | None) -> int:
        return next((k for k, e in enumerate(self.entries) if e.z == z), -1)

    def _mark(self, z: int | None) -> None:
        """Select the entry of the slice on screen (none when it is not flagged)."""
        k = self._index_of(z)
        if k >= 0:
            self._cursor = k
        self.list.blockSignals(True)
        if k >= 0:
            self.list.setCurrentRow(k)
        else:
            self.list.clearSelection()
        self.list.blockSignals(False)

    def _on_step(self, *_: Any) -> None:
        if self.entries:
            self._mark(self._slice_now())

    def step(self, delta: int) -> int | None:
        """Move the slider to the next (+1) or previous (-1) flagged slice in the list's order; the slice moved
        to, None at either end or when nothing is flagged (a 2-D sample: nothing happens)."""
        if not self.entries or not self.volume_on_screen():
            return None
        here = self._index_of(self._slice_now())
        base = here if here >= 0 else self._cursor
        k = (0 if delta > 0 else len(self.entries) - 1) if base < 0 else base + delta
        if not 0 <= k < len(self.entries):
            self.note.setText("Last flagged slice." if delta > 0 else "First flagged slice.")
            return None
        return self.go_to(k)

    def go_to(self, k: int) -> int:
        """Move the slider to the ``k``-th entry's slice."""
        from napari_medseg._volume_layers import go_to_slice

        entry = self.entries[k]
        self._cursor = k
        go_to_slice(self.viewer, entry.z)
        self._mark(entry.z)
        self.note.setText(f"{k + 1} of {len(self.entries)} flagged: {entry.text}")
        return entry.z

    def _on_item(self, row: QListWidgetItem) -> None:
        k = self.list.row(row)
        if 0 <= k < len(self.entries) and self.volume_on_screen():
            self.go_to(k)
