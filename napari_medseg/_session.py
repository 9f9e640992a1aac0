"""What the plugin's dock widgets share within one viewer: the open workspace, the sample on
screen and the model in use, with signals so each widget follows the others.

One ``Session`` per viewer (``session_for(viewer)``); widgets never hold references to each
other, only to the session, so any subset of them can be docked in any order. Signals are
emitted on the main thread only (workers report back through their ``returned``/``yielded``
signals first).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from psygnal import Signal

# Layer names the widgets agree on: Review edits LABELS, Predict writes PREDICTION/PROBABILITY/UNCERTAINTY.
IMAGE_LAYER = "medseg image"
LABELS_LAYER = "medseg labels"
PREDICTION_LAYER = "medseg prediction"
PROBABILITY_LAYER = "medseg probability"
UNCERTAINTY_LAYER = "medseg uncertainty"


class Session:
    """Shared state of the napari-medseg widgets of one viewer."""

    workspace_changed = Signal(object)          # Workspace | None
    sample_changed = Signal(object)             # sample id | None, after its layers are on screen
    checkpoints_changed = Signal(object)        # list[str] of checkpoint paths (an ensemble if > 1)
    revision_saved = Signal(str, int)           # sample id, revision id
    status_changed = Signal(str, str)           # sample id, new status
    scores_changed = Signal(str)                # score method name
    findings_changed = Signal(str)              # findings source ("qc", ...) whose findings were replaced

    def __init__(self) -> None:
        self.workspace: Any = None
        self.sample_id: str | None = None
        self.checkpoints: list[str] = []

    def set_workspace(self, workspace: Any) -> None:
        old = self.workspace
        if old is workspace:
            return
        self.workspace = workspace
        self.sample_id = None
        self.workspace_changed.emit(workspace)
        if old is not None:
            old.close()

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
    viewer = getattr(viewer, "__wrapped__", viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session()
    return session
