"""Edits on the medseg Labels layer are never lost.

One ``Autosave`` per viewer follows the Labels layer while it shows a
workspace sample:

* every edit (brush, fill, eraser, a helper, data set by another widget)
  restarts a short timer; when it fires, a snapshot of the labels goes to a
  background thread that writes it as a crash-safe draft in the workspace
  (:mod:`medseg.workspace.drafts`): if napari is killed, the next time the
  sample is shown the draft is restored and saved;
* the labels are saved as a "manual" revision when the user moves to another
  sample, opens another workspace, removes the layer, or closes the viewer
  (``flush``); a save that the workspace refuses (an id outside the class map)
  keeps the draft, reports the error and keeps the sample on screen.

Saving compares content, not events: a mask equal to the current revision is
not a new revision (so an undo back to it saves nothing).

A volume sample is saved slice by slice: only the slices its strokes touched
(:mod:`napari_medseg._volume_edits`) go to ``Workspace.save_slices``, which stores those
that differ from the current revision; no copy of the volume is kept to compare.
Its draft holds those slices too (``drafts.write_slice_draft``), not the label
volume: a draft after a stroke writes one slice, where the whole volume of a
512x512x300 CT was 78 MB at every pause in the drawing; restoring it writes
them over the revision's slices and saves them.
"""

from __future__ import annotations

import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from medseg.workspace.records import MANUAL
from napari_medseg._notify import report_error
from napari_medseg._session import session_for
from napari_medseg._viewer_access import per_viewer, when_viewer_closes

DRAFT_DELAY_MS = 400  # after the last stroke; a stroke emits one event when the mouse is released
_DRAFT_JOIN_S = 10.0


class Autosave(QObject):
    """Tracks the Labels layer of one viewer (see the module doc)."""

    def __init__(self, viewer: Any):
        super().__init__()
        self._viewer = weakref.ref(viewer)
        self.session = session_for(viewer)
        self.layer: Any = None
        self.workspace: Any = None
        self.sample_id: str | None = None
        self.base_revision: int | None = None
        self.edited = False  # edits since the last save or draft
        self._saved: np.ndarray | None = None  # the labels as loaded or last saved (flush compares)
        self._drafted = False  # a draft was written since then (save discards it)
        self.last_message = ""
        # what the last save did, in words, until a widget takes it (take_save_note): a save on moving on
        # happens before the next sample's layers are put up, and that clears last_message
        self.save_note = ""
        self.volume = False  # the sample is a volume: saved slice by slice (self.slices)
        self.slices: Any = None  # _volume_edits.SliceEdits of a volume
        self._loading = False
        self._generation = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DRAFT_DELAY_MS)
        self._timer.timeout.connect(self.write_draft)
        self._poll = QTimer(self)
        self._poll.setInterval(25)
        self._poll.timeout.connect(self._check_draft)
        self._pool: ThreadPoolExecutor | None = None
        self._draft: tuple[Future, int, Any, str] | None = None
        self._draft_again = False
        self.session.workspace_changed.connect(self._on_workspace_changed)
        self.session.revision_saved.connect(self._on_revision_saved)
        viewer.layers.events.removed.connect(self._on_layer_removed)

    # ------------------------------------------------------------ following a sample
    @contextmanager
    def loading(self):
        """Data set inside this block is a load, not an edit."""
        self._loading = True
        try:
            yield
        finally:
            self._loading = False

    def attach(
        self, layer: Any, workspace: Any, sample_id: str, head_revision: int | None, volume: bool = False
    ) -> None:
        if layer is not self.layer:
            self._disconnect()
            layer.events.paint.connect(self._on_edit)
            layer.events.data.connect(self._on_edit)
            self._watch_history(layer)
            self.layer = layer
        self.workspace, self.sample_id, self.base_revision = workspace, str(sample_id), head_revision
        self.edited = False
        self.volume = bool(volume)
        if self.volume:
            from napari_medseg._volume_edits import SliceEdits

            self._saved, self.slices = None, SliceEdits(layer.data.shape[0])
        else:
            self._saved, self.slices = np.array(layer.data, copy=True), None
        self._drafted = False
        self._generation += 1
        self._timer.stop()

    def detach(self) -> None:
        self.sample_id = self.workspace = self.base_revision = None
        self._saved = self.slices = None
        self.volume = False
        self.edited = False
        self._generation += 1
        self._timer.stop()

    def _disconnect(self) -> None:
        if self.layer is not None:
            self.layer.events.paint.disconnect(self._on_edit)
            self.layer.events.data.disconnect(self._on_edit)
            for name in ("undo", "redo"):
                self.layer.__dict__.pop(name, None)
            self.layer = None

    def _watch_history(self, layer: Any) -> None:
        """Undo and redo write straight into the layer's data with no paint or data event: without this,
        a stroke undone after its draft was written would come back from the draft after a crash."""
        for name, history in (("undo", "_undo_history"), ("redo", "_redo_history")):
            replay = getattr(type(layer), name, None)
            if replay is None:
                continue

            def edited(_replay=replay, _layer=layer, _history=history) -> None:
                items = getattr(_layer, _history, None)
                item = items[-1] if items else None  # the item replayed: its slices for a volume
                _replay(_layer)
                self._on_edit(item=item)

            layer.__dict__[name] = edited

    def _on_edit(self, event: Any = None, item: Any = None) -> None:
        if self._loading or self.sample_id is None:
            return
        if self.slices is not None:
            paint = event is not None and getattr(event, "type", None) == "paint"
            self.slices.note(event.value if paint else item)
        self.edited = True
        self._timer.start()

    def labels_mask(self) -> np.ndarray:
        """The labels on screen in the workspace's mask form."""
        from napari_medseg._layer_data import labels_to_mask

        return labels_to_mask(self.layer.data, self.workspace.classmap)

    # ------------------------------------------------------------------- drafts
    def write_draft(self) -> None:
        """Snapshot the labels now and write them as the sample's draft in a background thread."""
        if self.sample_id is None or not self.edited:
            return
        if self._draft is not None:
            self._draft_again = True
            return
        ws, sid = self.workspace, self.sample_id
        write, snapshot = self._draft_writer()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medseg-draft")
        future = self._pool.submit(write, ws, sid, snapshot, base_revision=self.base_revision)
        self._draft = (future, self._generation, ws, sid)
        self._drafted = True
        self.edited = False
        self._poll.start()

    def _draft_writer(self) -> tuple[Any, Any]:
        """(how to write it, a copy of what to write) for the draft of the labels on screen: a volume's
        edited slices, else the whole mask."""
        from functools import partial

        from medseg.workspace.drafts import write_draft, write_slice_draft

        if self.volume:
            return partial(write_slice_draft, shape=self.layer.data.shape), self.slices.slices(self.layer.data)
        return write_draft, np.array(self.labels_mask(), copy=True)

    def _check_draft(self, block: bool = False) -> None:
        if self._draft is None:
            self._poll.stop()
            return
        future, generation, ws, sid = self._draft
        if block:
            wait_futures([future], timeout=_DRAFT_JOIN_S)
        if not future.done():
            return
        self._poll.stop()
        self._draft = None
        error = future.exception()
        if generation != self._generation:
            # saved as a revision (or left) while it was written: the draft is out of date
            from medseg.workspace.drafts import discard_draft

            discard_draft(ws, sid)
        elif error is not None:
            report_error(f"Could not write the draft of sample {sid} (the edits are still on screen)", error)
        if self._draft_again and not block:
            self._draft_again = False
            self.edited = True
            self.write_draft()

    # ------------------------------------------------------------------- saving
    def save(self, note: str = "edited in napari") -> Any:
        """Save the labels on screen as a "manual" revision; the new revision, or None when nothing changed.
        Raises what the workspace raises (e.g. an id outside the class map)."""
        from medseg.workspace.drafts import discard_draft

        if self.sample_id is None:
            return None
        self._timer.stop()
        self._check_draft(block=True)
        ws, sid = self.workspace, self.sample_id
        head = ws.sample(sid).head_revision
        if self.volume:
            rev = ws.save_slices(sid, self.slices.slices(self.layer.data), origin=MANUAL, note=note)
            self.slices.clear()
            self._drafted = False
        else:
            on_screen = np.array(self.layer.data, copy=True)
            rev = ws.save_revision(sid, self.labels_mask(), origin=MANUAL, note=note)
            self._saved, self._drafted = on_screen, False
        self.edited = False
        self._generation += 1  # a draft written from now on is older than this revision
        discard_draft(ws, sid)
        self.base_revision = rev.id
        if rev.id == head:
            return None
        self.session.revision_saved.emit(sid, rev.id)
        self.session.status_changed.emit(sid, ws.sample(sid).status)
        self.last_message = self.save_note = f"Saved the edits of {sid} as revision {rev.id} ({changed_text(rev)})."
        return rev

    def take_save_note(self) -> str:
        """The words of the last save not yet shown ("" when none); taking them clears them."""
        note, self.save_note = self.save_note, ""
        return note

    def flush(self, note: str = "autosaved edits") -> bool:
        """Save pending edits before the labels are replaced or dropped; False (error reported, draft kept)
        when the workspace refuses them, so the caller must not replace the labels."""
        from medseg.errors import MedsegError

        if self.sample_id is None or self.layer is None:
            return True
        if self.volume and not self._drafted and not self.slices.dirty:
            return True  # no slice touched since the load or the last save
        if not self._drafted and self._saved is not None and np.array_equal(np.asarray(self.layer.data), self._saved):
            # the labels are what was loaded or last saved and no draft waits to be discarded: nothing to
            # ask the workspace (a query on the GUI thread at every move waits for the interpreter lock
            # while a prediction runs)
            return True
        try:
            self.save(note)
        except (MedsegError, ValueError, OSError) as e:
            try:
                self._drafted = True
                write, snapshot = self._draft_writer()
                write(self.workspace, self.sample_id, snapshot, base_revision=self.base_revision)
            except (MedsegError, ValueError, OSError) as e2:
                report_error(f"Could not keep a draft of sample {self.sample_id} either", e2)
            report_error(
                f"The edits of sample {self.sample_id} are not saved (kept on screen and in a draft); "
                "fix them, then move on again",
                e,
            )
            return False
        return True

    def recover(self, draft: Any) -> Any:
        """Put a pending draft on screen and save it; the new revision."""
        from napari_medseg._layer_data import mask_to_labels

        if draft.slices is not None and self.volume:
            draft.apply_to(self.layer.data)  # the revision's volume is on screen: only the draft's slices change
            self.layer.refresh()
            self.slices.dirty |= set(draft.slices)
        else:
            self.layer.data = mask_to_labels(draft.mask, self.workspace.classmap)
        self.edited = self._drafted = True  # the draft on disk goes with the save, even if it changes nothing
        if not self.flush(note=f"recovered unsaved edits (draft of {draft.saved})"):
            return None
        from napari.utils.notifications import show_info

        self.last_message = (
            f"Recovered unsaved edits of {self.sample_id} from a draft written "
            f"{draft.saved[:19].replace('T', ' ')} UTC; saved as a revision (Revert undoes it)."
        )
        show_info(self.last_message)
        return self.workspace.sample(self.sample_id).head_revision

    # ------------------------------------------------------------------- events
    def _on_workspace_changed(self, workspace: Any) -> None:
        # emitted before the old workspace is closed: the edits still reach it
        if self.workspace is not None and workspace is not self.workspace:
            self.flush()
            self.detach()

    def _on_revision_saved(self, sample_id: str, revision_id: int) -> None:
        # another widget saved a revision of this sample (e.g. a copied prediction): later drafts build on it
        if sample_id == self.sample_id and self.workspace is not None:
            self.base_revision = self.workspace.sample(sample_id).head_revision

    def _on_layer_removed(self, event: Any) -> None:
        if event.value is self.layer:
            self.flush()
            self.detach()
            self._disconnect()

    def viewer_closing(self) -> None:
        self.flush()
        self.detach()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def changed_text(rev: Any) -> str:
    """What a revision changed, in words: slices of a volume, else pixels."""
    slices = (rev.details or {}).get("slices")
    if slices is not None:
        return f"{len(slices)} slice{'s' if len(slices) != 1 else ''} changed: {', '.join(map(str, slices[:8]))}" + (
            ", ..." if len(slices) > 8 else ""
        )
    return f"{rev.n_changed:,} pixels changed"


_AUTOSAVES: weakref.WeakKeyDictionary[Any, Autosave] = weakref.WeakKeyDictionary()


def autosave_for(viewer: Any) -> Autosave:
    """The viewer's autosave, made on first use; it saves pending edits first when the viewer's window closes."""

    def make(real: Any) -> Autosave:
        autosave = Autosave(real)
        when_viewer_closes(real, autosave.viewer_closing, first=True)
        return autosave

    return per_viewer(_AUTOSAVES, viewer, make)
