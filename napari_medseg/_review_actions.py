"""What the Review widget's buttons do to the sample on screen: verdicts, label helpers, auto-fix, revert.

Each action saves pending edits first (nothing typed on the Labels layer is
lost to a verdict or a revert), calls the engine, and announces what changed
on the session. Errors are raised to the caller (the widget reports them).
"""

from __future__ import annotations

from typing import Any

from medseg.errors import WorkspaceError
from medseg.workspace.records import ACCEPTED, CORRECTED, EXCLUDED
from napari_medseg._review_autosave import autosave_for
from napari_medseg._session import session_for


class EditsNotSaved(WorkspaceError):
    """Pending edits could not be saved (already reported), so the action did not run."""


def _target(viewer: Any) -> tuple[Any, Any, str]:
    autosave = autosave_for(viewer)
    if autosave.sample_id is None or autosave.layer is None:
        raise WorkspaceError("no workspace sample is on screen: pick one in the Dataset widget or the queue")
    return autosave, autosave.workspace, autosave.sample_id


def _flushed(viewer: Any) -> tuple[Any, Any, str]:
    autosave, ws, sid = _target(viewer)
    if not autosave.flush():
        raise EditsNotSaved(f"sample {sid}: the edits on screen could not be saved")
    return autosave, ws, sid


def accept(viewer: Any) -> str:
    """The label on screen is right: pending edits are saved; a label that differs from the imported one
    (edited, a prediction copied in, an auto-fix) makes the sample "corrected", else "accepted".
    Returns the status."""
    _, ws, sid = _flushed(viewer)
    revisions = {r.id: r for r in ws.revisions(sid)}  # oldest first: the first is the import
    head = revisions.get(ws.sample(sid).head_revision)
    changed = head is not None and head.mask_sha256 != next(iter(revisions.values())).mask_sha256
    ws.set_status(sid, CORRECTED if changed else ACCEPTED)
    status = ws.sample(sid).status
    session_for(viewer).status_changed.emit(sid, status)
    return status


def exclude(viewer: Any, reason: str) -> str:
    """Leave the sample out of training and export, for ``reason`` (required); returns the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkspaceError("excluding a sample needs a reason (e.g. 'image unusable: motion blur')")
    _, ws, sid = _flushed(viewer)
    ws.set_status(sid, EXCLUDED, reason)
    session_for(viewer).status_changed.emit(sid, EXCLUDED)
    return reason


def save_correction(viewer: Any) -> Any:
    """Save the labels on screen as a "manual" revision now; the revision, or None when nothing changed."""
    autosave, _, _ = _target(viewer)
    return autosave.save(note="correction saved in the Review widget")


def apply_helper(viewer: Any, name: str, *, only_label: int | None = None, **params) -> int:
    """Apply label edit ``name`` (:mod:`medseg.qc.edits`) to the Labels layer as one undoable edit; pixels changed."""
    from medseg.qc.edits import apply_edit
    from napari_medseg._layer_data import mask_to_labels, set_labels

    autosave, ws, _ = _target(viewer)
    classes = None if only_label is None else [int(only_label)]
    new, _summary = apply_edit(name, autosave.labels_mask(), ws.classmap, classes=classes, **params)
    return set_labels(autosave.layer, mask_to_labels(new, ws.classmap))


def autofix_findings(viewer: Any) -> list:
    """The sample's stored findings that offer an auto-fix."""
    _, ws, sid = _target(viewer)
    return [f for f in ws.findings(sample_id=sid) if f.fix]


def apply_autofix(viewer: Any) -> list:
    """Save the fixes the sample's findings offer as "auto-fix" revisions and show the result; the revisions."""
    from medseg.qc.fixes import FIXES, offer_fixes
    from napari_medseg._sample_layers import reload_labels

    findings = autofix_findings(viewer)
    if not findings:
        return []
    _, ws, sid = _flushed(viewer)
    saved = offer_fixes(ws, findings, names=FIXES)  # a person asked, for the sample they look at
    reload_labels(viewer)
    session = session_for(viewer)
    for rev in saved:
        session.revision_saved.emit(sid, rev.id)
    return saved


def revert_to(viewer: Any, revision_id: int) -> Any:
    """A new revision with the content of ``revision_id`` (pending edits are saved first, so they stay in the
    history); the new revision."""
    from napari_medseg._sample_layers import reload_labels

    _, ws, sid = _flushed(viewer)
    rev = ws.revert(sid, int(revision_id))
    reload_labels(viewer)
    session_for(viewer).revision_saved.emit(sid, rev.id)
    return rev
