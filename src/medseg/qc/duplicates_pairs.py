"""Which samples show the same picture: perceptual-hash candidates, confirmed by their thumbnails.

Two samples are candidates when their 64-bit perceptual hashes (:mod:`medseg.qc.duplicates_fingerprint`)
differ in at most a check's ``max_distance`` bits and one of them is among the other's ``MOST_CANDIDATES``
closest hashes (closest first, then nearest in dataset order). Without that bound the candidates grow with
the square of the samples wherever many frames look alike: 100,000 synthetic frames of smooth scenes (25-frame
videos) gave 118 candidates a sample, most of them other videos' frames, and their alignment did not end in
27 minutes; a frame meets its own video's near-identical frames first, so the bound keeps those. The hash
comparison itself grows with the square of the samples (34 s at 100,000 on one core), so it is made once,
at the largest distance any check asks for, in blocks of rows that bound its memory, in the run's worker
processes when it has them; a smaller distance keeps the pairs within it (the closest come first, so these
are the ones the bound would keep at that distance), in the same (i, j) order. A candidate is a
:class:`Pair` when its 32x32 thumbnails correlate in place at ``min_correlation`` or more. Samples with
identical pixels are exact duplicates whatever their hashes, kept as groups, not pairs: k copies of one
picture are k(k-1)/2 pairs (3,000 blank frames: 4.5 million), and only those whose masks differ can
disagree, judged through one copy of each mask (:func:`exact_mask_pairs`).

Fingerprints are read one at a time (they may live on disk, :mod:`medseg.qc.spill`): only the hashes of all
samples are held at once, and the fingerprints of a candidate's two samples are read when it is compared.
Work on many candidates goes through :func:`pair_map`: in chunks to the worker processes, each chunk
carrying the fingerprints it needs, or here when the run has none.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from medseg.qc.duplicates_align import Picture, aligned, picture
from medseg.qc.duplicates_fingerprint import Fingerprint, mask_iou
from medseg.qc.spill import Reader, given

_BLOCK = 2048  # rows of the pairwise distance matrix computed at once: bounds memory for big datasets
_BLOCK_CELLS = 1 << 18  # distances held at once (2 MB of XORed hashes)
_PICTURES_KEPT = 128  # grey thumbnails prepared for alignment of the last samples compared (8 MB)
_PAIR_CHUNK = 64  # hash candidates a worker task takes: ~0.4 MB of fingerprints, 4 tasks in flight
_HASH_DISTANCE = 8  # the default near-duplicate distances: the one hash comparison serves every check
_HASH_ROWS = 4096  # rows of the hash comparison a worker process takes at once
MOST_CANDIDATES = 32  # a sample's closest hashes it is compared with (module doc)


def popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([i.bit_count() for i in range(256)], np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1)


def hash_pairs(
    hashes: np.ndarray, max_distance: int, most: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) for every i < j with Hamming distance <= max_distance, in (i, j) order, computed in
    blocks of rows; with ``most``, only the pairs where one is among the other's ``most`` closest
    (:func:`closest`).

    A block of rows holds at most ``_BLOCK_CELLS`` distances: 2,048 rows against every sample held 1.6 GB at
    100,000 samples."""
    h = np.asarray(hashes, np.uint64)
    return undirected([hash_rows((h, 0, len(h), max_distance, most))], len(h))


def hash_rows(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hash_pairs` of the rows ``start:stop`` (a worker process's share of a large dataset's):
    ``task`` = (hashes, start, stop, max_distance, most). Without ``most``, each row against the rows after
    it; with it, against every other row, keeping each row's ``most`` closest (so (i, j) and (j, i) may both
    come: :func:`undirected` merges them)."""
    hashes, start, stop, max_distance, most = task
    n = len(hashes)
    out_i, out_j, out_d = [], [], []
    for a in range(start, stop, _block_rows(n)):
        b = min(a + _block_rows(n), stop)
        first = a if most is None else 0
        d = popcount(hashes[a:b, None] ^ hashes[None, first:])
        i, j = np.nonzero(d <= max_distance)
        dist = d[i, j]
        i, j = i + a, j + first
        keep = j > i if most is None else j != i
        i, j, dist = i[keep], j[keep], dist[keep]
        if most is not None:
            keep = closest(i, j, dist, most)
            i, j, dist = i[keep], j[keep], dist[keep]
        out_i.append(i)
        out_j.append(j)
        out_d.append(dist)
    if not out_i:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d).astype(int)


def closest(i: np.ndarray, j: np.ndarray, d: np.ndarray, most: int) -> np.ndarray:
    """Which of the pairs (i, j, distance) are among their row i's ``most`` closest: smallest distance first,
    then the nearest in dataset order (frames of one video sit together), then the first."""
    order = np.lexsort((j, np.abs(j - i), d, i))
    rows = i[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    keep = np.zeros(len(i), bool)
    keep[order[rank < most]] = True
    return keep


def undirected(parts: list, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (i, j, distance) parts of :func:`hash_rows` as pairs i < j, each once, in (i, j) order."""
    i, j, d = (np.concatenate([p[k] for p in parts]) for k in range(3))
    low, high = np.minimum(i, j), np.maximum(i, j)
    keys, first = np.unique(low.astype(np.int64) * n + high, return_index=True)
    return keys // n, keys % n, d[first].astype(int)


def _close_hashes(ctx, hashes, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hash_pairs` for ``pairs`` with ``MOST_CANDIDATES``: computed once at the largest distance the
    checks ask for, in the run's worker processes when it has them; a smaller distance keeps the pairs
    within it (module doc)."""
    asked = ctx.cache.setdefault("duplicates:distances", set())
    asked.add(max_distance)
    top = max(max(asked), _HASH_DISTANCE)
    done = ctx.cache.get("duplicates:close")
    if done is None or done[0] < max_distance:
        h = np.asarray(hashes, np.uint64)
        if getattr(ctx, "workers", None) is None or len(h) < _HASH_ROWS:
            found = hash_pairs(h, top, MOST_CANDIDATES)
        else:
            step = _HASH_ROWS
            tasks = ((h, a, min(a + step, len(h)), top, MOST_CANDIDATES) for a in range(0, len(h), step))
            found = undirected(list(ctx.workers.map(hash_rows, tasks)), len(h))
        ctx.cache["duplicates:close"] = done = (top, *found)
    _, i, j, d = done
    keep = d <= max_distance
    return i[keep], j[keep], d[keep]


def _block_rows(n: int) -> int:
    return max(1, min(_BLOCK, _BLOCK_CELLS // max(n, 1)))


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    exact: bool
    distance: int
    correlation: float


class Candidates(Sequence):
    """Hash candidates as (a, b, hash distance) tuples, made when read: up to ``MOST_CANDIDATES`` a sample,
    held as three arrays (1.2 million tuples took 100 MB)."""

    def __init__(self, ids: list[str], i: np.ndarray, j: np.ndarray, d: np.ndarray):
        self.ids, self.i, self.j, self.d = ids, i, j, d

    def __len__(self) -> int:
        return len(self.i)

    def __getitem__(self, k):
        if isinstance(k, slice):
            ids = self.ids
            return [
                (ids[a], ids[b], dist) for a, b, dist in zip(self.i[k].tolist(), self.j[k].tolist(), self.d[k].tolist())
            ]
        return self.ids[int(self.i[k])], self.ids[int(self.j[k])], int(self.d[k])

    def __iter__(self) -> Iterator[tuple[str, str, int]]:
        for k in range(0, len(self), _PAIR_CHUNK):
            yield from self[k : k + _PAIR_CHUNK]


def candidates(table: dict, ctx, max_distance: int) -> tuple[Candidates, list[list[str]]]:
    """(the hash candidates within ``max_distance`` whose pixels differ, in (i, j) order; the groups of samples
    with identical pixels, each in the samples' order, groups in the order of their first sample)."""
    ids, hashes, same, groups, _ = _hashes(table["fingerprint"], ctx)
    if not ids:
        return Candidates([], *(np.zeros(0, int),) * 3), []
    i, j, d = _close_hashes(ctx, hashes, max_distance)
    differ = same[i] != same[j]
    return Candidates(ids, i[differ], j[differ], d[differ]), [[ids[x] for x in group] for group in groups]


def exact_mask_pairs(table: dict, ctx) -> tuple[list[Pair], dict[str, list[str]]]:
    """(pairs to judge, twins) of the groups of samples with identical pixels whose masks differ. Samples with
    the same pixels and the same mask are twins: everything QC measures of one holds for the others, so a group
    is judged through one sample of each mask (its first, in the samples' order), the pairs of those, and
    ``twins`` maps that sample to all of its twins, itself first. k copies with two masks are one pair to
    judge, not up to k^2/4; k copies with one mask make no pair however large k is."""
    ids, _, _, groups, masks = _hashes(table["fingerprint"], ctx)
    out, twins = [], {}
    for group in groups:
        codes = masks[group]
        if (codes == codes[0]).all():
            continue
        by_mask: dict[int, list[int]] = {}
        for x in group:
            by_mask.setdefault(int(masks[x]), []).append(x)
        firsts = [members[0] for members in by_mask.values()]
        out += [Pair(ids[x], ids[y], True, 0, 1.0) for n, x in enumerate(firsts) for y in firsts[n + 1 :]]
        twins.update({ids[members[0]]: [ids[x] for x in members] for members in by_mask.values()})
    return out, twins


def pairs(table: dict, ctx, max_distance: int, min_correlation: float) -> list[Pair]:
    """Confirmed near-duplicates (thumbnails correlating in place; never two samples with identical pixels);
    cached per threshold in ``ctx.cache``. The candidates are confirmed where their fingerprints are
    (:func:`pair_map`): at 100,000 samples, reading two fingerprints a candidate kept the main process busy
    for minutes while the workers waited."""
    key = f"duplicates:pairs:{max_distance}:{min_correlation}"
    if key not in ctx.cache:
        near, _ = candidates(table, ctx, max_distance)
        found = pair_map(ctx, table["fingerprint"], near, confirmed_chunk, min_correlation)
        ctx.cache[key] = [x for part in found for x in part]
    return ctx.cache[key]


def confirmed_chunk(ctx, chunk, fps, min_correlation: float) -> list[Pair]:
    """The candidates of ``chunk`` that their thumbnails confirm in place (a :func:`pair_map` task)."""
    return [found for found in confirmed_all(chunk, fps, min_correlation) if found is not None]


def _hashes(fps, ctx) -> tuple[list[str], np.ndarray, np.ndarray, list[list[int]], np.ndarray]:
    """(samples with a fingerprint, their perceptual hashes (uint64), their pixels' code (equal codes: equal
    SHA-256 of the pixels), the positions of each group of identical pixels with more than one sample, groups
    in the order of their first sample, their masks' code likewise), read once for every threshold the checks
    ask for (each read unpickles a whole fingerprint from disk). Arrays, not lists of Python ints and SHA-256
    strings: 170 bytes a sample held for the whole dataset-wide stage (17 MB at 100,000) became 24."""
    if "duplicates:hashes" not in ctx.cache:
        ids, hashes, same, masks = [], [], [], []
        code: dict[str, int] = {}  # the digests themselves are let go once each sample has its code
        mask_code: dict[str, int] = {}
        for sid in ctx.sample_ids:
            f = fps.get(sid)
            if f is not None:
                ids.append(sid)
                hashes.append(f.phash)
                same.append(code.setdefault(f.pixels_sha256, len(code)))
                masks.append(mask_code.setdefault(f.mask_sha256, len(mask_code)))
        del code, mask_code
        same = np.array(same, np.int64)
        members = np.argsort(same, kind="stable")  # each group's positions in dataset order, groups by code
        counts = np.bincount(same)
        starts = np.cumsum(counts) - counts
        groups = [members[a : a + c].tolist() for a, c in zip(starts.tolist(), counts.tolist()) if c > 1]
        ctx.cache["duplicates:hashes"] = ids, np.array(hashes, np.uint64), same, groups, np.array(masks, np.int64)
    return ctx.cache["duplicates:hashes"]


def confirmed_all(chunk: Sequence, fps, min_correlation: float) -> Iterator[Pair | None]:
    """Each candidate (a, b, distance) of ``chunk``, in order, as a Pair if its thumbnails correlate in place at
    ``min_correlation``, else None."""
    for a, b, distance in chunk:
        ta, tb = fps[a].thumb, fps[b].thumb
        corr = None if ta is None or tb is None else float(ta @ tb)
        yield None if corr is None or corr < min_correlation else Pair(a, b, False, distance, corr)


def aligned_pair(ctx, x: Pair, fa: Fingerprint, fb: Fingerprint) -> tuple[float, float, tuple[float, float]]:
    """(mask IoU, picture correlation, shift) once ``fb``'s picture is moved onto ``fa``'s."""
    if fa.grey is None or fb.grey is None:  # fingerprints made without a picture thumbnail
        return mask_iou(fa, fb), float(fa.thumb @ fb.thumb) if fa.thumb is not None else 0.0, (0.0, 0.0)
    pa, pb = pictures(ctx, (x.a, fa), (x.b, fb))
    return aligned(fa.grey, fb.grey, fa.mask_thumbs, fb.mask_thumbs, (pa.spectrum, pb.spectrum))


def pictures(ctx, *samples: tuple[str, Fingerprint]) -> list[Picture]:
    """Each (sample, fingerprint)'s grey :func:`~medseg.qc.duplicates_align.picture`, kept for the last
    ``_PICTURES_KEPT`` samples: hash pairs come a row at a time, so a sample meets its near-identical frames
    within a short stretch."""
    kept = ctx.cache.setdefault("duplicates:pictures", OrderedDict())
    out = []
    for sid, fp in samples:
        if sid in kept:
            kept.move_to_end(sid)
        else:
            kept[sid] = picture(fp.grey)
            if len(kept) > _PICTURES_KEPT:
                kept.popitem(last=False)
        out.append(kept[sid])
    return out


def pair_map(ctx, fps, items: Sequence, fn: Callable, arg) -> Iterator[list]:
    """``fn(context, chunk, fingerprints, arg)`` over ``items`` (candidates or pairs, a sample id first and
    second in each), in order: in chunks of ``_PAIR_CHUNK`` in the run's worker processes, each chunk with the
    fingerprints of its samples (where a worker wrote them, read there: :meth:`medseg.qc.spill.SpillTable.given`),
    or here on all of them at once with the run's own cache (``fn`` a module-level function, its result a list)."""
    workers = getattr(ctx, "workers", None)
    if workers is None:
        if items:
            yield fn(ctx, items, fps, arg)
        return

    run = uuid.uuid4().hex  # a worker keeps its cache over this call's chunks only: ids name other samples later

    def tasks():
        for k in range(0, len(items), _PAIR_CHUNK):
            chunk = items[k : k + _PAIR_CHUNK]
            yield fn, chunk, {x: given(fps, x) for c in chunk for x in _ids(c)}, arg, run

    yield from workers.map(_pair_task, tasks())


def _ids(item) -> tuple[str, str]:
    return (item.a, item.b) if isinstance(item, Pair) else (item[0], item[1])


# a worker process's cache and reader of fingerprints over the chunks of one pair_map call
_WORKER = SimpleNamespace(run=None, cache={}, reader=None)


def _pair_task(task) -> list:
    """A worker process's chunk of :func:`pair_map`, with the cache it kept from this call's earlier chunks
    (the next chunks of candidates pair many of the same samples)."""
    global _WORKER
    fn, chunk, fps, arg, run = task
    if _WORKER.run != run:
        if _WORKER.reader is not None:
            _WORKER.reader.close()
        _WORKER = SimpleNamespace(run=run, cache={}, reader=Reader())
    return fn(_WORKER, chunk, _WORKER.reader.values(fps), arg)
