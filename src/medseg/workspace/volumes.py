"""Volume labels in the workspace: one content-addressed blob per slice, delta rows per revision.

A volume sample (CT, MRI; ``mask_kind == "volume"``) holds class ids (Z, Y, X) on its image's grid. Storing
each revision whole would rewrite ~80 MB to save one corrected slice of a 512x512x300 scan. Instead every
slice is a blob of :mod:`medseg.workspace.blobs` (so equal slices, e.g. the empty ones, are stored once) and
``volume_slices(revision_id, z, sha256)`` names, per revision, only the slices that differ from its parent;
the first revision names them all. Slice z of a revision is the one named by the nearest revision on its
parent chain that has a row for z.

``revisions.mask_sha256`` of a volume revision hashes (voxel type, shape, slice hashes in z order), so equal
hashes mean equal volumes: "identical to the head" and revert work as for 2-D masks, and
``check_integrity`` can prove that the rows resolve to the volume each revision promised.
``revisions.volume`` holds the shape and voxel type (JSON); it is NULL for a 2-D mask.

The voxel type is the smallest unsigned type that holds the class map's largest id, not the volume's own
largest value as for 2-D masks: a slice then keeps its hash whatever the other slices hold.
"""

from __future__ import annotations

import hashlib
import json
import operator
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.datasets.dataset import MASK_VOLUME as VOLUME
from medseg.errors import WorkspaceError
from medseg.workspace.blobs import BlobStore, mask_sha256
from medseg.workspace.masks import canonical_mask, changed_pixels
from medseg.workspace.store import read

_MAGIC = b"medseg-volume-v1\0"
_READERS = 4  # zlib and hashlib release the GIL: slices decode in parallel

# Slice z of a revision: the row of the nearest revision on its parent chain (depth 0 = the revision).
# SQLite takes the bare columns of the row holding MIN(depth).
_RESOLVE = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT ?, 0
    UNION ALL
    SELECT r.parent_id, c.depth + 1 FROM revisions r JOIN chain c ON r.id = c.id WHERE r.parent_id IS NOT NULL
)
SELECT v.z, v.sha256, MIN(c.depth) FROM volume_slices v JOIN chain c ON v.revision_id = c.id {where} GROUP BY v.z
"""


@dataclass(frozen=True)
class VolumeInfo:
    """The grid of a volume revision's label: shape (slices, rows, cols) and voxel type name."""

    shape: tuple[int, int, int]
    dtype: str

    def to_json(self) -> str:
        return json.dumps({"shape": list(self.shape), "dtype": self.dtype})

    @classmethod
    def from_json(cls, text: str) -> VolumeInfo:
        d = json.loads(text)
        return cls(tuple(int(n) for n in d["shape"]), str(d["dtype"]))

    @property
    def slice_shape(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]


def volume_dtype(classmap: ClassMap) -> np.dtype:
    top = max(classmap.ids, default=1)
    return np.dtype(np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32)


def canonical_volume(volume, classmap: ClassMap, sample_id: str, shape=None) -> np.ndarray:
    """Class ids (Z, Y, X) in the class map's voxel type; WorkspaceError for anything else.

    The checks over the whole volume are the cheap ones (3 axes, whole non-negative values, none above the
    largest class id); whether each value is one of the class map's ids (sparse ids leave gaps) is
    :func:`check_slices`' job, run on the slices that are new to the store only (a 512x512x300 volume
    checked whole costs ~0.8 s, a slice ~3 ms).
    """
    _refuse_multilabel(classmap, sample_id)
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise WorkspaceError(f"sample {sample_id}: a volume label is (slices, rows, cols), got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise WorkspaceError(
            f"sample {sample_id}: label volume of shape {dims(arr.shape)} does not fit the stored volume {dims(shape)}"
        )
    if arr.dtype.kind not in "biuf" or not arr.size:
        return canonical_mask(arr, classmap, sample_id).astype(volume_dtype(classmap), copy=False)
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f" or lo < 0 or hi > max(classmap.ids, default=1):
        for z in range(arr.shape[0]):  # the first offending slice gets canonical_mask's own message
            canonical_mask(arr[z], classmap, f"{sample_id} slice {z}")
    return np.ascontiguousarray(arr, dtype=volume_dtype(classmap))


def check_slices(canon: np.ndarray, zs, classmap: ClassMap, sample_id: str) -> None:
    """WorkspaceError naming the first of slices ``zs`` holding a value that is not a class map id."""
    for z in zs:
        canonical_mask(canon[z], classmap, f"{sample_id} slice {z}")


def canonical_slices(slices: dict, classmap: ClassMap, sample_id: str, info: VolumeInfo) -> dict[int, np.ndarray]:
    """{z: class ids (Y, X)} in the volume's voxel type; WorkspaceError naming the slice that does not fit."""
    _refuse_multilabel(classmap, sample_id)
    if not isinstance(slices, dict):
        raise WorkspaceError(f"sample {sample_id}: slices are given as {{z: 2-D mask}}, got {type(slices).__name__}")
    out = {}
    for key, mask in slices.items():
        z = slice_index(key, info, sample_id)
        arr = np.asarray(mask)
        if arr.shape != info.slice_shape:
            raise WorkspaceError(
                f"sample {sample_id}: slice {z} has shape {arr.shape}, the volume's slices are {dims(info.slice_shape)}"
            )
        out[z] = canonical_mask(arr, classmap, f"{sample_id} slice {z}").astype(info.dtype, copy=False)
    return out


def slice_index(key, info: VolumeInfo, sample_id: str) -> int:
    try:
        z = operator.index(key)
    except TypeError:
        raise WorkspaceError(f"sample {sample_id}: slice index {key!r} is not a whole number") from None
    if not 0 <= z < info.shape[0]:
        raise WorkspaceError(f"sample {sample_id}: slice {z} is outside the volume's slices 0..{info.shape[0] - 1}")
    return int(z)


def _refuse_multilabel(classmap: ClassMap, sample_id: str) -> None:
    if classmap.task == "multilabel":
        raise WorkspaceError(
            f"sample {sample_id}: a volume label holds one class id per voxel; "
            "a multilabel class map cannot describe it"
        )


def slice_hashes(volume: np.ndarray) -> list[str]:
    return [mask_sha256(volume[z]) for z in range(volume.shape[0])]


def volume_sha256(info: VolumeInfo, shas: list[str]) -> str:
    """The content hash of a volume: its voxel type, shape and slice hashes in z order."""
    if len(shas) != info.shape[0]:
        raise ValueError(f"{len(shas)} slice hashes for a volume of {info.shape[0]} slices")
    h = hashlib.sha256(_MAGIC)
    h.update(f"{info.dtype}|{','.join(map(str, info.shape))}\0".encode())
    for sha in shas:
        h.update(sha.encode("ascii"))
    return h.hexdigest()


# --- reading ------------------------------------------------------------------------------------------


def info_of(conn: sqlite3.Connection, revision_id: int) -> VolumeInfo | None:
    """The volume grid of a revision, None for a 2-D mask."""
    row = conn.execute("SELECT volume FROM revisions WHERE id = ?", (int(revision_id),)).fetchone()
    return None if row is None or row[0] is None else VolumeInfo.from_json(row[0])


def resolve(conn: sqlite3.Connection, revision_id: int, info: VolumeInfo, zs=None) -> dict[int, str]:
    """{z: slice hash} of the revision, for ``zs`` (default every slice)."""
    wanted = list(range(info.shape[0])) if zs is None else [int(z) for z in zs]
    where, args = "", [int(revision_id)]
    if zs is not None:
        where = f"WHERE v.z IN ({','.join('?' * len(set(wanted)))})"
        args += sorted(set(wanted))
    # one statement, so one consistent snapshot, also inside the caller's write transaction
    got = {r[0]: r[1] for r in conn.execute(_RESOLVE.format(where=where), args)}
    missing = [z for z in wanted if z not in got]
    if missing:
        raise WorkspaceError(
            f"revision {revision_id}: no stored slice for z = {_short(missing)}; the workspace database "
            "is damaged (medseg workspace verify)"
        )
    return {z: got[z] for z in wanted}


def read_slices(blobs: BlobStore, shas: list[str], info: VolumeInfo) -> np.ndarray:
    """The slices named by ``shas`` stacked (len, Y, X); each distinct blob is read (and verified) once."""
    unique = list(dict.fromkeys(shas))
    if len(unique) > 2:
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            arrays = dict(zip(unique, pool.map(blobs.get, unique)))
    else:
        arrays = {sha: blobs.get(sha) for sha in unique}
    out = np.empty((len(shas), *info.slice_shape), dtype=info.dtype)
    for i, sha in enumerate(shas):
        arr = arrays[sha]
        if arr.shape != info.slice_shape or arr.dtype != out.dtype:
            raise WorkspaceError(
                f"{blobs.path(sha)}: holds a {arr.dtype} slice of shape {arr.shape}, the volume's are "
                f"{info.dtype} {dims(info.slice_shape)}"
            )
        out[i] = arr
    return out


# --- writing ------------------------------------------------------------------------------------------


def put_slices(blobs: BlobStore, arrays: dict[int, np.ndarray], shas: dict[int, str], skip: dict[int, str]) -> None:
    """Write the blobs of the slices whose hash differs from ``skip`` (the head's), durably, before any row."""
    todo = {shas[z]: arrays[z] for z in arrays if skip.get(z) != shas[z]}
    if not todo:
        return
    if len(todo) > 2:
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            list(pool.map(lambda item: blobs.put(item[1], item[0], sync_dir=False), todo.items()))
    else:
        for sha, arr in todo.items():
            blobs.put(arr, sha, sync_dir=False)
    blobs.sync(todo)


def slice_changes(old: dict[int, np.ndarray], new: dict[int, np.ndarray], classmap: ClassMap):
    """(changed pixels per class, pixels changed, {z: pixels changed}) over the slices in ``new``."""
    changed: dict[int, int] = {}
    per_slice: dict[int, int] = {}
    for z in sorted(new):
        per_class, n = changed_pixels(old[z], new[z], classmap)
        for cid, k in per_class.items():
            changed[cid] = changed.get(cid, 0) + k
        per_slice[z] = n
    return changed, sum(per_slice.values()), per_slice


def insert_slices(conn: sqlite3.Connection, revision_id: int, shas: dict[int, str]) -> None:
    conn.executemany(
        "INSERT INTO volume_slices (revision_id, z, sha256) VALUES (?, ?, ?)",
        [(int(revision_id), int(z), sha) for z, sha in sorted(shas.items())],
    )


def changed_slices(conn: sqlite3.Connection, revision_id: int) -> list[int]:
    """The slices a revision changed against its parent; none for a first revision (it has no parent)."""
    row = conn.execute("SELECT parent_id, volume FROM revisions WHERE id = ?", (int(revision_id),)).fetchone()
    if row is None:
        raise WorkspaceError(f"no revision {revision_id}")
    if row["volume"] is None:
        raise WorkspaceError(f"revision {revision_id} is a 2-D mask, not a volume: it has no slices")
    if row["parent_id"] is None:
        return []
    return [r[0] for r in conn.execute("SELECT z FROM volume_slices WHERE revision_id = ? ORDER BY z", (revision_id,))]


# --- upkeep -------------------------------------------------------------------------------------------


def referenced(conn: sqlite3.Connection) -> set[str]:
    """Every blob a revision needs: 2-D masks and volume slices."""
    with read(conn) as c:
        names = {r[0] for r in c.execute("SELECT DISTINCT mask_sha256 FROM revisions WHERE volume IS NULL")}
        names |= {r[0] for r in c.execute("SELECT DISTINCT sha256 FROM volume_slices")}
    return names


def integrity(conn: sqlite3.Connection) -> tuple[list[str], set[str]]:
    """(problems, slice blobs to verify): every volume revision's rows resolve to all its slices and hash to
    the ``mask_sha256`` its row names; no slice row outside a volume revision; no 2-D revision of a volume."""
    problems: list[str] = []
    with read(conn) as c:
        revisions = c.execute(
            "SELECT r.id, r.sample_id, r.parent_id, r.mask_sha256, r.volume, s.mask_kind FROM revisions r "
            "JOIN samples s ON s.id = r.sample_id ORDER BY r.sample_id, r.id"
        ).fetchall()
        delta: dict[int, dict[int, str]] = {}
        for rev, z, sha in c.execute("SELECT revision_id, z, sha256 FROM volume_slices"):
            delta.setdefault(rev, {})[z] = sha
    maps: dict[int, list[str | None]] = {}
    sample = None
    for r in revisions:
        if r["sample_id"] != sample:
            sample, maps = r["sample_id"], {}  # a chain never leaves its sample
        rows = delta.pop(r["id"], {})
        who = f"sample {r['sample_id']} revision {r['id']}"
        if r["volume"] is None:
            if r["mask_kind"] == VOLUME:
                problems.append(f"{who}: a volume sample's revision holds no volume")
            if rows:
                problems.append(f"{who}: a 2-D revision has {len(rows)} volume slice rows")
            continue
        info = VolumeInfo.from_json(r["volume"])
        parent = maps.get(r["parent_id"]) if r["parent_id"] is not None else None
        if r["parent_id"] is not None and (parent is None or len(parent) != info.shape[0]):
            problems.append(f"{who}: its parent {r['parent_id']} is not a volume of {info.shape[0]} slices")
            parent = None
        shas = list(parent) if parent is not None else [None] * info.shape[0]
        for z, sha in rows.items():
            if z < info.shape[0]:
                shas[z] = sha
            else:
                problems.append(f"{who}: slice row z = {z} lies outside its {info.shape[0]} slices")
        gaps = [z for z, sha in enumerate(shas) if sha is None]
        if gaps:
            problems.append(f"{who}: no stored slice for z = {_short(gaps)}")
        elif volume_sha256(info, shas) != r["mask_sha256"]:
            problems.append(f"{who}: its slices do not hash to the volume {r['mask_sha256'][:12]}... its row names")
        maps[r["id"]] = shas
    problems += [f"revision {rev}: {len(rows)} volume slice rows but no such revision" for rev, rows in delta.items()]
    with read(conn) as c:
        blobs = {r[0] for r in c.execute("SELECT DISTINCT sha256 FROM volume_slices")}
    return problems, blobs


def dims(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def _short(values: list, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")
