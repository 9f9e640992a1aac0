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

A draft of a volume sample holds only the slices edited since the last save
(:func:`write_slice_draft`: ``{z: 2-D slice}``, the volume's shape and the
revision they apply to), not the label volume: a 512x512x300 volume's draft
after a stroke on one slice is that slice's 256 KB, where the whole volume
was 78 MB written at every pause in the drawing. Restoring it writes those
slices over the revision's.

A draft is "pending" (worth restoring) when its content differs from the
sample's current revision (for a slice draft: one of its slices differs
from the revision's slice) and it was made on top of that revision or after
it; an older draft (the head moved on since, e.g. saved by another editor)
is stale and left for :func:`discard_draft`.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medseg.errors import ReadError, WorkspaceError
from medseg.folder_swap import write_atomic
from medseg.io.npz import NpzFile

DRAFTS_DIR = "drafts"
_TMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Draft:
    """Unsaved edits of one sample: ``saved`` is when the edit was taken (UTC, ISO 8601, sorts as text).

    A whole-mask draft has ``mask``; a volume's slice draft has ``slices`` ({z: (Y, X)}, in order) and
    ``shape`` (the volume's (Z, Y, X)) and no ``mask``."""

    sample_id: str
    mask: np.ndarray | None
    base_revision: int | None
    saved: str
    path: Path
    slices: dict[int, np.ndarray] | None = None
    shape: tuple[int, ...] | None = None

    def apply_to(self, volume: np.ndarray) -> np.ndarray:
        """``volume`` with the draft's slices written over it, in place; a whole-mask draft's mask."""
        if self.slices is None:
            return self.mask
        for z, s in self.slices.items():
            volume[z] = s
        return volume


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
    return _write(ws, sid, {"mask": np.ascontiguousarray(arr)}, _meta(sid, base_revision, saved), sync)


def write_slice_draft(
    ws,
    sample_id: str,
    slices: dict,
    shape,
    *,
    base_revision: int | None = None,
    saved: str | None = None,
    sync: bool = True,
) -> Path:
    """Atomically write (or replace) the draft of volume sample ``sample_id`` as its edited slices
    ``{z: (Y, X) ids}`` of a volume of ``shape`` (Z, Y, X); as :func:`write_draft` otherwise."""
    sid = str(sample_id)
    ws.sample(sid)
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        raise WorkspaceError(f"sample {sid}: a slice draft belongs to a (Z, Y, X) volume, got shape {shape}")
    zs = sorted(int(z) for z in slices)
    arrays = [np.asarray(slices[z]) for z in zs]
    for z, a in zip(zs, arrays, strict=True):
        if not 0 <= z < shape[0] or a.shape != shape[1:] or a.dtype.kind not in "biu":
            raise WorkspaceError(
                f"sample {sid}: slice {z} of a draft must be an integer (Y, X) = {shape[1:]} slice of one of "
                f"the volume's {shape[0]} slices, got {a.dtype} of shape {a.shape}"
            )
    dtype = np.result_type(*arrays) if arrays else np.uint8
    stack = np.empty((len(zs), *shape[1:]), dtype)
    for k, a in enumerate(arrays):
        stack[k] = a
    meta = {**_meta(sid, base_revision, saved), "shape": list(shape)}
    return _write(ws, sid, {"zs": np.asarray(zs, np.int64), "slices": stack}, meta, sync)


def _meta(sid: str, base_revision: int | None, saved: str | None) -> dict:
    return {
        "sample_id": sid,
        "base_revision": None if base_revision is None else int(base_revision),
        "saved": saved or datetime.now(timezone.utc).isoformat(timespec="microseconds"),
    }


def _write(ws, sid: str, arrays: dict, meta: dict, sync: bool) -> Path:
    final = draft_path(ws, sid)
    meta_array = np.array(json.dumps(meta))
    write_atomic(
        final, lambda f: np.savez(f, **arrays, meta=meta_array), durable=sync, prefix=f"{_TMP_PREFIX}{final.stem}-"
    )
    return final


def read_draft(ws, sample_id: str) -> Draft | None:
    """The draft of ``sample_id``, None when there is none; ReadError naming the file when it is damaged."""
    path = draft_path(ws, sample_id)
    if not path.is_file():
        return None
    mask = slices = shape = None
    try:
        with NpzFile(path) as npz:
            meta = json.loads(str(npz["meta"]))
            if "slices" in npz.files:
                stack, zs = npz["slices"], npz["zs"]
                shape = tuple(int(n) for n in meta["shape"])
                slices = {int(z): stack[k] for k, z in enumerate(zs)}
            else:
                mask = npz["mask"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ReadError(
            path, f"draft of sample {sample_id!r} cannot be read, the file is damaged ({type(e).__name__}: {e})"
        ) from None
    if meta.get("sample_id") != str(sample_id):
        raise ReadError(path, f"draft belongs to sample {meta.get('sample_id')!r}, not to {sample_id!r}")
    return Draft(
        str(sample_id), mask, meta.get("base_revision"), str(meta.get("saved", "")), path, slices=slices, shape=shape
    )


def pending_draft(ws, sample_id: str) -> Draft | None:
    """The sample's draft when it holds edits the current revision lacks (see the module doc), else None."""
    draft = read_draft(ws, sample_id)
    if draft is None:
        return None
    head_id = ws.sample(sample_id).head_revision
    if head_id is None:
        return draft
    head = ws.revision(head_id)
    if draft.slices is not None:
        if not _slices_differ(ws, draft, head_id):
            return None
    else:
        current = ws.mask_at(head_id)
        if current.shape == draft.mask.shape and np.array_equal(current, draft.mask):
            return None
    if draft.base_revision == head_id or draft.saved > head.created:
        return draft
    return None


def _slices_differ(ws, draft: Draft, head_id: int) -> bool:
    """Whether a slice draft holds a slice unlike the revision's (only those slices are read)."""
    zs = list(draft.slices)
    if not zs:
        return False
    try:
        current = ws.mask_slices(head_id, zs)
    except WorkspaceError as e:
        raise ReadError(draft.path, f"draft of sample {draft.sample_id!r} does not fit its volume: {e}") from None
    return any(
        current[k].shape != s.shape or not np.array_equal(current[k], s) for k, s in enumerate(draft.slices.values())
    )


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
            with NpzFile(p) as npz:
                out.append(str(json.loads(str(npz["meta"]))["sample_id"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ReadError(p, f"draft file is damaged ({type(e).__name__}: {e})") from None
    return out
