"""``iter_stats``: the dataset overview of a dataset folder or a workspace, as a job of :mod:`medseg.jobs`.

Events: ``Started("stats", total=samples)``, ``Progress(done, total, "samples", sample id)`` per sample,
last ``Result(StatsReport)``; a set cancel token raises ``Cancelled`` at the next sample. Nothing is
written anywhere: the report is written by its caller (:meth:`StatsReport.write`).

A workspace is described by its labels as they are now (the head revisions of the samples not excluded)
and as they were imported ("before cleaning": every sample's first revision), with its samples by review
status and its stored findings by check. Only samples whose head differs from their import decode a
second mask, and only when its content differs; the revisions' ends come in one query
(``Workspace.revision_ends``). A :class:`~medseg.stats.cache.FactsCache` handed in keeps what was read
for the next overview, which then decodes only the labels and images that changed.

Each sample's mask is decoded (in a few threads: PNG decoding and OpenCV release the GIL); its image's
pixels only for a spread subset of ``intensity_images`` samples, the others from their headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import MedsegError
from medseg.jobs import CancelToken, Progress, Result, Started, check, ordered_map
from medseg.stats.cache import FactsCache
from medseg.stats.collect import MaskFacts, binary_facts, image_facts, mask_facts
from medseg.stats.report import StatsReport
from medseg.stats.tally import ClassTally, ImageTally

STAGE = "samples"
# Images whose pixels feed the intensity histograms: spread over the dataset, every one of a smaller set.
INTENSITY_IMAGES = 500


def open_source(path: str | Path):
    """A workspace folder (it holds ``workspace.sqlite``) opened read-only in spirit, else a dataset folder
    indexed by :func:`medseg.datasets.open_dataset` (its errors name the folder)."""
    from medseg.workspace.store import DB_NAME

    path = Path(path)
    if (path / DB_NAME).is_file():
        from medseg.workspace import Workspace

        return Workspace.open(path, verify="none")
    from medseg.datasets import open_dataset

    return open_dataset(path)


def stats(source, **kwargs) -> StatsReport:
    """``iter_stats`` run to its end: the report."""
    from medseg.jobs import run

    return run(iter_stats(source, **kwargs))


def iter_stats(
    source,
    *,
    intensity_images: int = INTENSITY_IMAGES,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    cache: FactsCache | None = None,
) -> Iterator[Any]:
    """The overview of ``source`` (a ``Dataset``, a ``Workspace`` or a folder of either); see the module.
    ``cache`` keeps what was read for the next overview (see :mod:`medseg.stats.cache`)."""
    if isinstance(source, str | Path):
        source = open_source(source)
    started = time.perf_counter()
    is_ws = hasattr(source, "current_mask")
    classmap = source.classmap
    if is_ws:
        # ids and the excluded ones, not a record per sample: 100,000 records held the workspace's lock for
        # seconds, and the app's sample reads waited for it
        ids = source.sample_ids()
        excluded = set(source.sample_ids("excluded"))
        ends = source.revision_ends()
    else:
        excluded, ends = set(), {}
        ids = [s.id for s in source.samples]
    n = len(ids)
    decode = _spread(n, intensity_images)
    yield Started("stats", n, {"source": str(source.root), "workspace": is_ws, "intensity_images": len(decode)})

    images, now, before = ImageTally(), ClassTally(classmap), ClassTally(classmap)
    groups: dict[str, int] = {}
    unreadable: list[dict[str, str]] = []
    changed = 0
    measure = _measurer(source, classmap, is_ws, ends, decode, cache)
    yield Progress(0, n, STAGE)
    results = ordered_map(measure, list(enumerate(ids)), workers if workers is not None else _workers(), "medseg-stats")
    try:
        for done, ((_, sid), outcome) in enumerate(results, 1):
            group, image, mask, imported, error = outcome
            groups[group] = groups.get(group, 0) + 1
            if error is not None:
                unreadable.append({"sample": sid, "error": error})
            if image is not None:
                images.add(image)
            if mask is not None:
                if sid not in excluded:
                    now.add(mask)
                if is_ws:
                    before.add(imported if imported is not None else mask)
                    changed += imported is not None
            check(cancel, done, n, "dataset overview")
            yield Progress(done, n, STAGE, sid)
    finally:
        results.close()

    numbers = _source_numbers(source, is_ws, ids, groups)
    numbers["images"] = images.to_dict()
    numbers["labels"] = now.to_dict()
    if is_ws:
        numbers["labels_imported"] = before.to_dict()
        excluded = numbers["review"]["by_status"].get("excluded", 0)
        numbers["cleaning"] = {"samples_changed": changed, "samples_excluded": int(excluded)}
    numbers["unreadable"] = unreadable
    numbers["seconds"] = round(time.perf_counter() - started, 3)
    yield Result(StatsReport(numbers, images, now, before if is_ws else None))


def _spread(n: int, k: int) -> set[int]:
    """``k`` sample positions spread evenly over ``n`` (all of them when ``k >= n``)."""
    if k <= 0 or n == 0:
        return set()
    if k >= n:
        return set(range(n))
    return {int(round(x)) for x in np.linspace(0, n - 1, k)}


def _measurer(source, classmap, is_ws: bool, ends: dict, decode: set[int], cache: FactsCache | None) -> Callable:
    kind = (classmap.task, tuple(classmap.ids))

    def facts_of(key: tuple, read: Callable[[], MaskFacts]) -> MaskFacts:
        return read() if cache is None else cache.mask((*key, *kind), read)

    def revision_facts(sid: str, volume: bool) -> tuple[MaskFacts, MaskFacts | None]:
        """The head's facts, and the imported revision's when the head is another revision."""
        if sid not in ends:  # no head: the workspace's own reader says what is wrong
            return mask_facts(source.current_mask(sid), classmap, volume=volume), None
        (first, first_sha), (head, head_sha) = ends[sid]
        head_facts = facts_of((head_sha, volume), lambda: mask_facts(source.mask_at(head), classmap, volume=volume))
        if first == head:
            return head_facts, None
        if first_sha == head_sha:  # a revert to the imported content: one decode
            return head_facts, head_facts
        return head_facts, facts_of(
            (first_sha, volume), lambda: mask_facts(source.mask_at(first), classmap, volume=volume)
        )

    def measure(item: tuple[int, str]) -> tuple:
        pos, sid = item
        sample = source.source_sample(sid) if is_ws else source.by_id(sid)
        image = mask = imported = None
        error = None
        volume = sample.is_volume
        try:
            if cache is None:
                image = image_facts(sample, decode=pos in decode)
            else:
                image = cache.image(sample.image_path, pos in decode, lambda: image_facts(sample, decode=pos in decode))
            if is_ws:
                mask, imported = revision_facts(sid, volume)
            else:
                mask = _dataset_mask_facts(sample, classmap)
        except (MedsegError, OSError, ValueError) as e:
            error = str(e)
        if image is not None and volume and image.spacing_known:
            voxel = float(np.prod(image.spacing))
            # a copy: the cached facts are shared by every sample (and overview) with this content
            mask, imported = (None if m is None else replace(m, voxel_mm3=voxel) for m in (mask, imported))
        return sample.group, image, mask, imported, error

    return measure


def _dataset_mask_facts(sample, classmap) -> MaskFacts:
    """The facts of the sample's mask; a clean 0/255 (or 0/1) binary file is counted as read, without the
    binarise step's search nor a binarised copy."""
    if sample.mask_kind == "binary" and classmap.task != "multilabel":
        from medseg.io.mask_read import read_mask_values

        (path,) = sample.mask_paths.values()
        raw = read_mask_values(path)
        if raw.dtype == np.uint8 and raw.ndim == 2:
            counts = np.bincount(raw.ravel(), minlength=256)
            present = set(np.flatnonzero(counts).tolist())
            if present <= {0, 255} or present <= {0, 1}:
                return binary_facts(raw, int(raw.size - counts[0]))
    return mask_facts(sample.load_mask(), classmap, volume=sample.is_volume)


def _source_numbers(source, is_ws: bool, ids: list[str], groups: dict[str, int]) -> dict[str, Any]:
    sizes = sorted(groups.values())
    out: dict[str, Any] = {
        "source": {
            "kind": "workspace" if is_ws else "dataset",
            "path": str(source.root),
            "layout": source.layout,
            "task": source.classmap.task,
            "classes": source.classmap.names,
        },
        "samples": len(ids),
        "groups": {
            "n": len(sizes),
            "size": {"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]} if sizes else None,
        },
    }
    if is_ws:
        summary = source.summary()
        out["source"]["dataset"] = str(source.dataset_root)
        out["review"] = {"by_status": summary["by_status"], "revisions_by_origin": summary["revisions_by_origin"]}
        out["findings"] = {"by_check": summary["by_check"], "by_severity": summary["by_severity"]}
    else:
        out["findings"] = {"by_check": source.problems_by_kind(), "by_severity": {}}
    return out


def _workers() -> int:
    import os

    # the caller (a GUI, a CLI printing progress) keeps one CPU; beyond 4 threads reading files is the limit
    return min(4, max(1, (os.cpu_count() or 2) - 1))
