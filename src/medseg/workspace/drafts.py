"""Crash-safe drafts of label edits not yet saved as a revision: ``drafts/<key>.npz`` in the workspace folder.

An editor writes a draft after every edit (debounced) and removes it once the
edits are saved as a revision. If the editor is killed in between, the draft
is what survives: :func:`pending_draft` finds it when the sample is opened
again, and the editor saves it as a revision.

A draft is written under a temporary name in the drafts folder, fsynced and
renamed over the final name with ``os.replace``, so a reader sees the previous
draft or the new one, never a torn file. Drafts hold the mask as the editor
had it, not checked against the class map: an edit that the workspace would
refuse (an id outside the class map) is kept until the user fixes it.

A draft is "pending" (worth restoring) when its content differs from the
sample's current revision and it was made on top of that revision or after
it; an older draft (the head moved on since, e.g. saved by another editor)
is stale and left for :func:`discard_draft`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medseg.errors import ReadError, WorkspaceError
from medseg.workspace.blobs import fsync_dir

DRAFTS_DIR = "drafts"
_TMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Draft:
    """Unsaved edits of one sample: ``saved`` is when the edit was taken (UTC, ISO 8601, sorts as text)."""

    sample_id: str
    mask: np.ndarray
    base_revision: int | None
    saved: str
    path: Path


def draft_path(ws, sample_id: str) -> Path:
    """Where the draft of ``sample_id`` lives: a readable, file-name-safe stem plus a hash of the id
    (ids may hold path separators, and two ids may make the same safe stem)."""
    sid = str(sample_id)
    stem = _UNSAFE.sub("_", sid).strip("._")[:40] or "sample"
    digest = hashlib.sha256(sid.encode("utf-8")).hexdigest()[:16]
    return Path(ws.root) / DRAFTS_DIR / f"{stem}-{digest}.npz"


def write_draft(
    ws, sample_id: str, mask, *, base_revision: int | None = None, saved: str | None = None, sync: bool = True
) -> Path:
    """Atomically write (or replace) the draft of ``sample_id``; returns its path.

    ``base_revision`` is the revision the edits were made on; ``saved`` the
    time they were taken (default now). ``sync`` fsyncs the file and folder,
    so the draft also survives a power cut, not only a killed process.
    """
    sid = str(sample_id)
    ws.sample(sid)  # WorkspaceError naming the workspace for an unknown sample
    arr = np.asarray(mask)
    if arr.ndim < 2 or arr.dtype.kind not in "biu":
        raise WorkspaceError(
            f"sample {sid}: a draft holds an integer or boolean mask of >= 2 dimensions, "
            f"got {arr.dtype} of shape {arr.shape}"
        )
    meta = {
        "sample_id": sid,
        "base_revision": None if base_revision is None else int(base_revision),
        "saved": saved or datetime.now(timezone.utc).isoformat(timespec="microseconds"),
    }
    final = draft_path(ws, sid)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{_TMP_PREFIX}{final.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as f:
            np.savez(f, mask=np.ascontiguousarray(arr), meta=np.array(json.dumps(meta)))
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(final.parent)
    return final


def read_draft(ws, sample_id: str) -> Draft | None:
    """The draft of ``sample_id``, None when there is none; ReadError naming the file when it is damaged."""
    path = draft_path(ws, sample_id)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            mask = npz["mask"]
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ReadError(
            path, f"draft of sample {sample_id!r} cannot be read, the file is damaged ({type(e).__name__}: {e})"
        ) from None
    if meta.get("sample_id") != str(sample_id):
        raise ReadError(path, f"draft belongs to sample {meta.get('sample_id')!r}, not to {sample_id!r}")
    return Draft(str(sample_id), mask, meta.get("base_revision"), str(meta.get("saved", "")), path)


def pending_draft(ws, sample_id: str) -> Draft | None:
    """The sample's draft when it holds edits the current revision lacks (see the module doc), else None."""
    draft = read_draft(ws, sample_id)
    if draft is None:
        return None
    head_id = ws.sample(sample_id).head_revision
    if head_id is None:
        return draft
    head = ws.revision(head_id)
    current = ws.mask_at(head_id)
    if current.shape == draft.mask.shape and np.array_equal(current, draft.mask):
        return None
    if draft.base_revision == head_id or draft.saved > head.created:
        return draft
    return None


def discard_draft(ws, sample_id: str) -> bool:
    """Remove the sample's draft; True when there was one."""
    path = draft_path(ws, sample_id)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def draft_sample_ids(ws) -> list[str]:
    """Samples that have a draft on disk (pending or stale), in file-name order."""
    folder = Path(ws.root) / DRAFTS_DIR
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("*.npz")):
        try:
            with np.load(p, allow_pickle=False) as npz:
                out.append(str(json.loads(str(npz["meta"]))["sample_id"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ReadError(p, f"draft file is damaged ({type(e).__name__}: {e})") from None
    return out
