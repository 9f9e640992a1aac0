"""A create's per-sample import: read the mask, store its canonical blob, hash and stat the sample's files.

The same function runs here or in worker processes (:mod:`medseg.process_pool`), over chunks of 2-D samples
in dataset order; a volume sample is imported here, in its place (its slices are big, and few). Blobs are
written without an fsync each; the create makes them durable at once before its database commit
(``BlobStore.sync_all``), so a row never names a blob a crash could lose.

What a sample gives: ``("row", columns)``, or ``("finding", Finding, why)`` for a mask that cannot be
imported (named with its file, as :mod:`medseg.workspace.create` says). Any other error fails the create, with the
message it would have had here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from medseg.datasets.dataset import MASK_VOLUME, UNREADABLE
from medseg.errors import MedsegError
from medseg.findings import ERROR, Finding
from medseg.process_pool import chunked, ordered_map, portable
from medseg.workspace.blobs import BlobStore, mask_sha256
from medseg.workspace.masks import canonical_mask
from medseg.workspace.sources import HashCache, encode_mask_paths, relative, sample_files


def iter_imported(samples: list, classmap, root: Path, blobs: BlobStore, pool, import_volume) -> Iterator[tuple]:
    """(sample, result) for every sample in order; ``import_volume(sample)`` imports a volume sample here."""
    cache = HashCache()
    units: list = []  # runs of 2-D samples, and each volume sample on its own
    for s in samples:
        if s.mask_kind == MASK_VOLUME:
            units.append(s)
        elif units and isinstance(units[-1], list):
            units[-1].append(s)
        else:
            units.append([s])
    for unit in units:
        if not isinstance(unit, list):
            yield unit, import_volume(unit)
            continue
        tasks = [(chunk, classmap, root, blobs.root) for chunk in chunked(unit)]
        # here, one cache for the whole create: a file many samples share (an RLE CSV) is hashed once
        fn = import_chunk if pool is not None else partial(_import_here, cache=cache)
        for chunk, results in zip((t[0] for t in tasks), ordered_map(pool, fn, tasks)):
            if isinstance(results, BaseException):
                raise results
            yield from zip(chunk, results)


def import_chunk(task) -> list[tuple] | BaseException:
    """``import_2d`` over a chunk of samples in a worker; the first error that is not a finding is returned,
    in a form that survives the way back, to be raised in the create."""
    try:
        return _import_here(task, HashCache())
    except Exception as e:  # noqa: BLE001 - raised in the create, as it would have been there
        return portable(e)


def _import_here(task, cache: HashCache) -> list[tuple]:
    samples, classmap, root, blobs_root = task
    blobs = BlobStore(blobs_root)
    return [import_2d(s, classmap, root, blobs, cache) for s in samples]


def import_2d(s, classmap, root: Path, blobs: BlobStore, cache: HashCache) -> tuple:
    try:
        mask, report = s.load_mask(return_report=True)
        canon = canonical_mask(mask, classmap, s.id)
    except (MedsegError, OSError, ValueError) as e:
        path = str(next(iter(s.mask_paths.values()), s.image_path))
        return "finding", Finding(s.id, UNREADABLE, ERROR, f"mask cannot be imported: {e}", path=path), str(e)
    sha = blobs.put(canon, mask_sha256(canon), sync_dir=False, durable=False)
    return "row", {**sample_row(s, root, cache), "sha": sha, **import_note(s, report)}


def sample_row(s, root: Path, cache: HashCache) -> dict:
    """The sample's columns: where its files are (relative to the dataset) and their hashes and stats."""
    files = sample_files(s.image_path, s.mask_paths)
    hashes = {role: cache.sha256(p) for role, p in files.items()}
    return {
        "id": s.id,
        "image_path": relative(s.image_path, root),
        "mask_paths": encode_mask_paths(s.mask_paths, root),
        "mask_kind": s.mask_kind,
        "extra": json.dumps(s.extra, default=str),
        "group": s.group,
        "image_sha256": hashes.pop("image"),
        "mask_source_sha256": json.dumps({k.split(":", 1)[1]: v for k, v in hashes.items()}),
        "source_stat": json.dumps({relative(p, root): cache.stat(p) for p in files.values()}),
    }


def import_note(sample, report) -> dict:
    files = ", ".join(Path(p).name for p in sample.mask_paths.values())
    reports = {} if report is None else report if isinstance(report, dict) else {None: report}
    # Only binarising that re-assigned pixels is worth a note; a clean 0/255 mask imports as it is.
    reports = {cid: r for cid, r in reports.items() if r.grey_levels}
    if not reports:
        return {"note": f"imported from {files}", "details": {}}
    parts = [(f"class {cid}: " if cid is not None else "") + r.summary() for cid, r in reports.items()]
    details = {("mask" if cid is None else str(cid)): r.to_dict() for cid, r in reports.items()}
    return {"note": f"imported from {files}; binarised: " + "; ".join(parts), "details": {"binarise": details}}
