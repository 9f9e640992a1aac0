"""What the plugin's dock widgets share within one viewer: the open workspace, the sample on
screen and the model in use, with signals so each widget follows the others.

One ``Session`` per viewer (``session_for(viewer)``); widgets never hold references to each
other, only to the session, so any subset of them can be docked in any order. Signals are
emitted on the main thread only (workers report back through their ``returned``/``yielded``
signals first). The workers that use a workspace are registered in ``session.jobs``
(:mod:`napari_medseg._jobs`): switching or closing the workspace cancels them and closes it after they ended.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from psygnal import Signal

from napari_medseg._jobs import Jobs, names
from napari_medseg._viewer_access import per_viewer

# Layer names the widgets agree on: Review edits LABELS, Predict writes PREDICTION/PROBABILITY/UNCERTAINTY.
IMAGE_LAYER = "medseg image"
LABELS_LAYER = "medseg labels"
PREDICTION_LAYER = "medseg prediction"
PROBABILITY_LAYER = "medseg probability"
UNCERTAINTY_LAYER = "medseg uncertainty"
VOLUME_PREDICTION_LAYER = "medseg volume prediction"  # Predict's whole-volume job


class Session:
    """Shared state of the napari-medseg widgets of one viewer."""

    workspace_changed = Signal(object)  # Workspace | None
    sample_changed = Signal(object)  # sample id | None, after its layers are on screen
    checkpoints_changed = Signal(object)  # list[str] of checkpoint paths (an ensemble if > 1)
    revision_saved = Signal(str, int)  # sample id, revision id
    status_changed = Signal(str, str)  # sample id, new status
    scores_changed = Signal(str)  # score method name
    findings_changed = Signal(str)  # findings source ("qc", ...) whose findings were replaced

    def __init__(self) -> None:
        self.workspace: Any = None
        self.sample_id: str | None = None
        self.checkpoints: list[str] = []
        self.jobs = Jobs()

    def set_workspace(self, workspace: Any) -> None:
        """Switch to ``workspace`` (None: close it). The jobs on the previous one are cancelled (a notification
        names them) and it is closed once every job on it has ended, never under a running job."""
        old = self.workspace
        if old is workspace:
            return
        stopped = self.jobs.cancel(old) if old is not None else []
        self.workspace = workspace
        self.sample_id = None
        self.workspace_changed.emit(workspace)  # pending label edits are saved into the old one here
        if old is None:
            return
        if stopped:
            from napari.utils.notifications import show_info

            what = "Closing" if workspace is None else "Switching from"
            show_info(f"{what} the workspace {old.root} cancelled: {names(stopped)}. It closes once they have stopped.")
        self.jobs.after(old, lambda: old.close() if old is not self.workspace else None)

    def set_sample(self, sample_id: str | None) -> None:
        self.sample_id = sample_id
        self.sample_changed.emit(sample_id)

    def set_checkpoints(self, paths: list[str | Path]) -> None:
        self.checkpoints = [str(p) for p in paths]
        self.checkpoints_changed.emit(list(self.checkpoints))


_SESSIONS: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """The viewer's session, created on first use and dropped with the viewer.

    napari hands each docked widget its own ``PublicOnlyProxy`` of the viewer;
    the session is keyed by the viewer behind the proxy so all widgets share it.
    """
    return per_viewer(_SESSIONS, viewer, lambda _: Session())
