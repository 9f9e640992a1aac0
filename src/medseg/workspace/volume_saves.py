"""Saving a volume sample's labels: a revision that stores only the slices it changes.

The order is the 2-D save's (:mod:`medseg.workspace.workspace`): the new slices' blobs are written durably
first (only those whose hash the head does not already hold), then one transaction inserts the revision,
its slice rows and moves the head. A kill at any point leaves the previous head or the new one; the worst
left behind is an unreferenced slice blob, which ``gc`` removes. Content equal to the head is no revision.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import WorkspaceError
from medseg.workspace import volumes as vol
from medseg.workspace.blobs import BlobStore
from medseg.workspace.records import MANUAL, Revision, insert_revision
from medseg.workspace.store import write


def commit(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    classmap: ClassMap,
    sample_id: str,
    info: vol.VolumeInfo,
    shas: dict[int, str],
    arrays: dict[int, np.ndarray] | None,
    *,
    origin: str,
    author: str,
    note: str | None,
    details: dict | None,
    mark_corrected: Callable[[str, str], None],
) -> Revision:
    """Make ``{z: slice hash}`` (over ``arrays``, or blobs already stored when None) the sample's head.

    ``shas`` may name a few slices (a correction) or all of them (a whole volume, a revert); a sample
    without a revision needs all. ``mark_corrected(sample_id, author)`` runs inside the transaction of a
    "manual" save.
    """
    head_id = _head(conn, sample_id)
    before = _head_slices(conn, head_id, info, shas, sample_id)
    if arrays is not None:
        vol.put_slices(blobs, arrays, shas, skip=before)  # durable before any row names them
    with write(conn) as c:
        head_id = _head(c, sample_id)
        if head_id is None:
            return _first(c, sample_id, info, shas, origin, author, note, details, mark_corrected)
        head = Revision.from_row(c.execute("SELECT * FROM revisions WHERE id = ?", (head_id,)).fetchone())
        current = _head_slices(c, head_id, info, None, sample_id)
        delta = {z: sha for z, sha in shas.items() if current[z] != sha}
        if not delta:
            return head
        if arrays is not None:
            _ensure_stored(blobs, {z: arrays[z] for z in delta}, delta, before)
        new = {z: arrays[z] if arrays is not None else blobs.get(sha) for z, sha in delta.items()}
        old = dict(zip(delta, vol.read_slices(blobs, [current[z] for z in delta], info)))
        changed, n_changed, per_slice = vol.slice_changes(old, new, classmap)
        current.update(delta)
        sha = vol.volume_sha256(info, [current[z] for z in range(info.shape[0])])
        facts = {
            **(details or {}),
            "slices": sorted(delta),
            "pixels_by_slice": {str(z): n for z, n in sorted(per_slice.items())},
        }
        return _insert(
            c, sample_id, head_id, sha, info, delta, origin, author, note, changed, n_changed, facts, mark_corrected
        )


def _first(c, sample_id, info, shas, origin, author, note, details, mark_corrected) -> Revision:
    missing = [z for z in range(info.shape[0]) if z not in shas]
    if missing:
        raise WorkspaceError(
            f"sample {sample_id} has no revision yet: its first one needs every slice, "
            f"{len(missing)} of {info.shape[0]} are missing; save the whole volume"
        )
    sha = vol.volume_sha256(info, [shas[z] for z in range(info.shape[0])])
    return _insert(
        c, sample_id, None, sha, info, shas, origin, author, note, {}, 0, dict(details or {}), mark_corrected
    )


def _insert(
    c, sample_id, head_id, sha, info, rows, origin, author, note, changed, n_changed, details, mark_corrected
) -> Revision:
    revision = insert_revision(
        c,
        sample_id,
        head_id,
        sha,
        author=author,
        origin=origin,
        note=note,
        changed=changed,
        n_changed=n_changed,
        details=details,
        volume=info.to_json(),
    )
    vol.insert_slices(c, revision.id, rows)
    if origin == MANUAL:
        mark_corrected(sample_id, author)
    return revision


def _head(conn, sample_id: str) -> int | None:
    return conn.execute("SELECT head_revision FROM samples WHERE id = ?", (sample_id,)).fetchone()[0]


def _head_slices(conn, head_id, info: vol.VolumeInfo, zs, sample_id: str) -> dict[int, str]:
    """{z: hash} of the head for ``zs`` (all when None); {} without a head. The head's grid must be ``info``."""
    if head_id is None:
        return {}
    head_info = vol.info_of(conn, head_id)
    if head_info is None:
        raise WorkspaceError(f"sample {sample_id}: its current revision {head_id} is a 2-D mask, not a volume")
    if head_info != info:
        raise WorkspaceError(
            f"sample {sample_id}: a {info.dtype} volume of shape {vol.dims(info.shape)} does not fit the "
            f"current revision's {head_info.dtype} {vol.dims(head_info.shape)}"
        )
    return vol.resolve(conn, head_id, info, None if zs is None else sorted(zs))


def _ensure_stored(blobs: BlobStore, arrays: dict[int, np.ndarray], delta: dict[int, str], before: dict) -> None:
    """The head moved between writing the blobs and this transaction (another writer): a slice skipped then
    as the head's own may now be new; it is stored before its row (it almost always exists already)."""
    for z, sha in delta.items():
        if before.get(z) == sha and not blobs.exists(sha):
            blobs.put(arrays[z], sha)
