"""Exact and near-duplicate images, and duplicates whose masks disagree.

Each sample leaves a small :class:`Fingerprint` from the decoding pass:

* ``pixels_sha256``: SHA-256 of the decoded pixels (shape and type included),
  so a PNG and a TIFF of one picture are exact duplicates, a re-save as JPEG
  is not;
* ``phash``: 64-bit DCT perceptual hash of the grey image's centre (10 %
  margin cut on every side, so a vignette, burned-in text or a frame shared by
  every image of a device does not make different pictures look alike; 32x32
  box thumbnail, lowest 8x8 DCT coefficients, bit = above their median);
* ``thumb``: that 32x32 thumbnail, zero-mean and unit-norm, to confirm hash
  candidates by correlation (invariant to brightness and contrast changes);
* per-class 64x64 area thumbnails of the mask for a resolution-free IoU.

Near-duplicates: Hamming distance <= ``max_distance`` AND thumbnail
correlation >= ``min_correlation``. On CVC-ClinicDB the hash alone (distance
<= 6) also pairs different polyps whose smooth pink frames share low
frequencies; the correlation removes them. On CVC-ClinicDB frames a JPEG
re-save (quality 70) or a 15 % brightness change keeps distance <= 4 and
correlation >= 0.995, a resize to 300x225 >= 0.993 (the centre crop falls a
pixel differently; a 128 -> 90 px resize of a small photo: 0.989).

Mask disagreement: a pair showing the *same picture* whose masks disagree is
an error on both samples (each names the other): one of the two is
mislabelled. Identical pixels (a copied frame) must have masks at IoU >=
``min_iou`` (0.95: a redrawn or eroded outline, IoU 0.85, is caught; an
anti-aliased edge binarised differently is not). A near-identical pair
(distance <= ``same_max_distance`` and correlation >= ``same_min_correlation``)
is first aligned (:mod:`medseg.qc.duplicates_align`: the shift its pictures
show, masks compared on 128 px area thumbnails); if the aligned pictures
correlate at >= ``copy_min_correlation`` (0.9999) it is a copy, held to
``min_iou`` too, otherwise to ``near_min_iou`` (0.5) only. On CVC-ClinicDB
frames a JPEG re-save (quality 70) keeps an aligned correlation >= 0.99993
and mask IoU 1.0; a copy cropped 6 px on two sides (edge-padded back to
size) aligns its masks at IoU >= 0.96 (0.94 without the alignment's
half-pixel search) but its pictures at 0.994-0.9995 only, so it is held to
``near_min_iou``: a window of a larger picture moved by whole thumbnail
pixels aligns at >= 0.9999. Neighbouring frames of a video paused on
a polyp correlate at 0.992-0.99984 while their small polyps' masks, each
drawn anew, overlap at IoU 0.69-0.89 (one pair at 0.98): holding those to
0.95 flagged 22 of the 612 frames, the copy threshold none (0.9995: 2).
A shift of more than a few per cent of the side changes the perceptual hash
beyond ``max_distance``: such copies are not found as near-duplicates.
Looser near-duplicates are neighbouring video frames whose objects move, so IoU says little; they only raise a warning
when a class is labelled in one and absent from the other (a missing
annotation).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np

from medseg.qc.checks_base import Check, SampleView
from medseg.qc.checks_images import grey
from medseg.qc.duplicates_align import aligned, aligned_correlation, grey_thumb, spectrum
from medseg.qc.findings import Finding

_CROP = 0.1
_HASH_THUMB = 32
_MASK_THUMB = 128
_BLOCK = 2048  # rows of the pairwise distance matrix computed at once: bounds memory for big datasets
_BLOCK_CELLS = 1 << 18  # distances held at once (2 MB of XORed hashes)
_SPECTRA_KEPT = 128  # grey spectra of the last samples compared (4 MB)
_PAIR_CHUNK = 64  # hash candidates a worker task confirms and aligns: ~0.4 MB of fingerprints, 4 tasks in flight
_HASH_DISTANCE = 8  # the default near-duplicate distances: the one hash comparison serves every check
_HASH_ROWS = 4096  # rows of the hash comparison a worker process takes at once


@dataclass
class Fingerprint:
    pixels_sha256: str
    phash: int
    thumb: np.ndarray | None
    mask_sha256: str
    mask_thumbs: dict[int, np.ndarray]
    classes: dict[int, int]
    grey: np.ndarray | None = None  # 64x64 thumbnail of the whole picture, on the mask thumbnails' grid


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX))


def phash_and_thumb(g: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(64-bit DCT pHash, unit-norm 32x32 thumbnail or None for a flat image) of a grey 0..1 image."""
    from scipy import fft

    h, w = g.shape
    dy, dx = int(h * _CROP), int(w * _CROP)
    centre = g[dy : h - dy or None, dx : w - dx or None]
    t = _resize(centre, _HASH_THUMB).astype(np.float64)
    low = fft.dctn(t, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low)
    value = int(np.packbits(bits).view(">u8")[0])
    z = t - t.mean()
    norm = np.linalg.norm(z)
    return value, (z.ravel() / norm).astype(np.float32) if norm > 1e-6 else None


def fingerprint(v: SampleView) -> Fingerprint | None:
    gb = grey(v)
    if gb is None:
        return None
    h = hashlib.sha256(f"{v.image.shape}{v.image.dtype}".encode())
    h.update(np.ascontiguousarray(v.image).tobytes())
    ph, thumb = phash_and_thumb(gb[0])
    m = hashlib.sha256(f"{v.mask.shape}{v.mask.dtype}".encode())
    m.update(np.ascontiguousarray(v.mask).tobytes())
    thumbs, classes = {}, {}
    if v.volume:  # the central slice's classes only: no bool volume per class
        mid = v.mask[v.mask.shape[0] // 2]
        masks = [(int(c), mid == c) for c in np.unique(mid) if c != 0]
    else:
        masks = v.class_masks()
    for cid, cm in masks:
        if cm.ndim == 3:
            cm = cm[cm.shape[0] // 2]
        classes[cid] = int(cm.sum())
        thumbs[cid] = np.round(_resize(cm, _MASK_THUMB) * 255).astype(np.uint8)
    return Fingerprint(h.hexdigest(), ph, thumb, m.hexdigest(), thumbs, classes, grey_thumb(gb[0]))


def popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([i.bit_count() for i in range(256)], np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1)


def hash_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) for every i < j with Hamming distance <= max_distance, in blocks of rows.

    A block of rows is compared with the rows from its first on (the pairs i < j), and holds at most
    ``_BLOCK_CELLS`` distances: 2,048 rows against every sample held 1.6 GB at 100,000 samples."""
    return hash_rows((np.asarray(hashes, np.uint64), 0, len(hashes), max_distance))


def hash_rows(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hash_pairs` of the rows ``start:stop`` against the rows from each on, in (i, j) order:
    ``task`` = (hashes, start, stop, max_distance) (a worker process's share of a large dataset's)."""
    hashes, start, stop, max_distance = task
    n = len(hashes)
    out_i, out_j, out_d = [], [], []
    for a in range(start, stop, _block_rows(n)):
        b = min(a + _block_rows(n), stop)
        rest = hashes[a:]
        d = popcount(hashes[a:b, None] ^ rest[None, :])
        i, j = np.nonzero(d <= max_distance)
        keep = j > i
        out_i.append(i[keep] + a)
        out_j.append(j[keep] + a)
        out_d.append(d[i[keep], j[keep]])
    if not out_i:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d).astype(int)


def _close_hashes(ctx, hashes: list[int], max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hash_pairs` for ``pairs``: computed once at the largest distance the checks ask for (the
    comparison grows with the square of the samples: 17 s at 100,000 on one core), in the run's worker
    processes when it has them; a smaller distance keeps the pairs within it, in the same (i, j) order."""
    asked = ctx.cache.setdefault("duplicates:distances", set())
    asked.add(max_distance)
    top = max(max(asked), _HASH_DISTANCE)
    done = ctx.cache.get("duplicates:close")
    if done is None or done[0] < max_distance:
        h = np.array(hashes, np.uint64)
        if getattr(ctx, "workers", None) is None or len(h) < _HASH_ROWS:
            found = hash_pairs(h, top)
        else:
            tasks = ((h, a, min(a + _HASH_ROWS, len(h)), top) for a in range(0, len(h), _HASH_ROWS))
            parts = list(ctx.workers.map(hash_rows, tasks))
            found = tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
        ctx.cache["duplicates:close"] = done = (top, *found)
    _, i, j, d = done
    keep = d <= max_distance
    return i[keep], j[keep], d[keep]


def _block_rows(n: int) -> int:
    return max(1, min(_BLOCK, _BLOCK_CELLS // max(n, 1)))


def mask_iou(a: Fingerprint, b: Fingerprint) -> float:
    """Mean per-class IoU of the area thumbnails (1.0 when the masks are identical or both empty)."""
    if a.mask_sha256 == b.mask_sha256:
        return 1.0
    ious = []
    for cid in set(a.mask_thumbs) | set(b.mask_thumbs):
        ta = a.mask_thumbs.get(cid, np.zeros((_MASK_THUMB, _MASK_THUMB), np.uint8)).astype(np.float32)
        tb = b.mask_thumbs.get(cid, np.zeros((_MASK_THUMB, _MASK_THUMB), np.uint8)).astype(np.float32)
        union = float(np.maximum(ta, tb).sum())
        ious.append(float(np.minimum(ta, tb).sum()) / union if union else 1.0)
    return float(np.mean(ious)) if ious else 1.0


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    exact: bool
    distance: int
    correlation: float


def pairs(table: dict, ctx, max_distance: int, min_correlation: float, shifted: bool = False) -> list[Pair]:
    """Exact duplicates and confirmed near-duplicates (cached per threshold in ``ctx.cache``).

    With ``shifted``, a hash-close pair whose thumbnails correlate too little in
    place is confirmed by their correlation once aligned (a copy cropped by a
    pixel or two: 0.88 in place, 0.99999 aligned); its ``correlation`` is then
    the aligned one.
    """
    key = ("pairs", max_distance, min_correlation, shifted)
    if key in ctx.cache:
        return ctx.cache[key]
    # fingerprints are read one at a time (they may live on disk, medseg.qc.spill): only the hashes of all
    # samples are held at once, and the full fingerprints of hash candidates are read when compared
    fps = table["fingerprint"]
    ids, hashes, shas = _hashes(fps, ctx)
    found = []
    if ids:
        i, j, d = _close_hashes(ctx, hashes, max_distance)
        candidates = [
            (ids[a], ids[b], dist) for a, b, dist in zip(i.tolist(), j.tolist(), d.tolist()) if shas[a] != shas[b]
        ]
        if shifted and getattr(ctx, "workers", None) is not None:
            found += _confirmed_in(ctx, fps, candidates, min_correlation)
        else:
            found += [x for x, _ in (_confirmed(ctx, fps, c, min_correlation, shifted) for c in candidates) if x]
        by_sha = defaultdict(list)
        for sid, sha in zip(ids, shas):
            by_sha[sha].append(sid)
        for members in by_sha.values():
            found += [Pair(x, y, True, 0, 1.0) for n, x in enumerate(members) for y in members[n + 1 :]]
    ctx.cache[key] = found
    return found


def _hashes(fps, ctx) -> tuple[list[str], list[int], list[str]]:
    """(samples with a fingerprint, their perceptual hashes, their pixels' SHA-256), read once for the three
    thresholds ``pairs`` is asked for (each read unpickles a whole fingerprint from disk)."""
    if "duplicates:hashes" not in ctx.cache:
        ids, hashes, shas = [], [], []
        for sid in ctx.sample_ids:
            f = fps.get(sid)
            if f is not None:
                ids.append(sid)
                hashes.append(f.phash)
                shas.append(f.pixels_sha256)
        ctx.cache["duplicates:hashes"] = ids, hashes, shas
    return ctx.cache["duplicates:hashes"]


def _confirmed(ctx, fps, candidate: tuple, min_correlation: float, shifted: bool, align: bool = False):
    """(the pair if its thumbnails confirm it else None, ``_aligned`` of a confirmed pair if ``align``)."""
    a, b, dist = candidate
    fa, fb = fps[a], fps[b]
    if fa.thumb is None or fb.thumb is None:
        return None, None
    corr = float(fa.thumb @ fb.thumb)
    if corr < min_correlation and shifted and fa.grey is not None and fb.grey is not None:
        ga, gb = fa.grey.astype(np.float32), fb.grey.astype(np.float32)
        corr = aligned_correlation(ga, gb, *_spectra(ctx, (a, fa), (b, fb)))
    if corr < min_correlation:
        return None, None
    return Pair(a, b, False, dist, corr), _aligned(ctx, a, b, fa, fb) if align else None


def _confirmed_in(ctx, fps, candidates: list[tuple], min_correlation: float) -> list[Pair]:
    """The shifted confirmation of hash candidates in the run's worker processes, each confirmed pair also
    aligned there for :func:`decide_disagreement` (kept in ``ctx.cache``: a few per sample)."""

    def tasks():
        for k in range(0, len(candidates), _PAIR_CHUNK):
            chunk = candidates[k : k + _PAIR_CHUNK]
            yield chunk, {x: fps[x] for a, b, _ in chunk for x in (a, b)}, min_correlation

    out, done = [], ctx.cache.setdefault("duplicates:aligned", {})
    for confirmed in ctx.workers.map(confirm_pairs, tasks()):
        for pair, how in confirmed:
            out.append(pair)
            done[pair.a, pair.b] = how
    return out


def confirm_pairs(task) -> list[tuple]:
    """A worker process's part of :func:`_confirmed_in`: [(pair, its alignment)] of the confirmed ones."""
    from types import SimpleNamespace

    chunk, fps, min_correlation = task
    local = SimpleNamespace(cache={})
    found = (_confirmed(local, fps, c, min_correlation, True, align=True) for c in chunk)
    return [(pair, how) for pair, how in found if pair is not None]


def _per_sample(found: list[Pair]) -> dict[str, list[tuple[str, Pair]]]:
    out = defaultdict(list)
    for p in found:
        out[p.a].append((p.b, p))
        out[p.b].append((p.a, p))
    return out


def _position(ctx) -> dict[str, int]:
    if "position" not in ctx.cache:
        ctx.cache["position"] = {sid: n for n, sid in enumerate(ctx.sample_ids)}
    return ctx.cache["position"]


def _others(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def decide_exact(table: dict, ctx, p: dict) -> list[Finding]:
    found = [x for x in pairs(table, ctx, 0, 1.0) if x.exact]
    out = []
    for sid, partners in _per_sample(found).items():
        others = sorted((o for o, _ in partners), key=_position(ctx).__getitem__)
        cross = [o for o in others if ctx.groups.get(o) != ctx.groups.get(sid)]
        leak = f"; {_others(cross)} in another group, so a group split would leak" if cross else ""
        out.append(
            Finding(
                sid,
                "exact_duplicate",
                "warning",
                f"image pixels identical to sample {_others(others)}{leak}",
                value=len(others),
                path=ctx.paths.get(sid),
                details={"others": others, "cross_group": cross},
            )
        )
    return out


def decide_near(table: dict, ctx, p: dict) -> list[Finding]:
    found = [x for x in pairs(table, ctx, p["max_distance"], p["min_correlation"]) if not x.exact]
    out = []
    for sid, partners in _per_sample(found).items():
        partners.sort(key=lambda t: (t[1].distance, -t[1].correlation))
        others = [
            {"id": o, "distance": x.distance, "correlation": round(x.correlation, 4), "group": ctx.groups.get(o, "")}
            for o, x in partners
        ]
        cross = [o["id"] for o in others if o["group"] != ctx.groups.get(sid)]
        listing = _others(
            [f"{o['id']} (hash distance {o['distance']}, correlation {o['correlation']:.2f})" for o in others], 4
        )
        if cross:
            msg = (
                f"near-duplicate of {listing}; {_others(cross)} in another group "
                f"(this: {ctx.groups.get(sid)!r}), so a group split would leak"
            )
        else:
            msg = f"near-duplicate of {listing}, all in the same group"
        out.append(
            Finding(
                sid,
                "near_duplicate",
                "warning" if cross else "info",
                msg,
                value=len(others),
                path=ctx.paths.get(sid),
                details={"others": others, "cross_group": cross},
            )
        )
    return out


def _aligned(ctx, a: str, b: str, fa: Fingerprint, fb: Fingerprint) -> tuple[float, float, tuple[float, float]]:
    """(mask IoU, picture correlation, shift) once ``fb``'s picture is moved onto ``fa``'s."""
    if fa.grey is None or fb.grey is None:  # fingerprints made without a picture thumbnail
        return mask_iou(fa, fb), float(fa.thumb @ fb.thumb) if fa.thumb is not None else 0.0, (0.0, 0.0)
    return aligned(fa.grey, fb.grey, fa.mask_thumbs, fb.mask_thumbs, _spectra(ctx, (a, fa), (b, fb)))


def _spectra(ctx, *samples: tuple[str, Fingerprint]) -> list[np.ndarray]:
    """Each (sample, fingerprint)'s grey :func:`spectrum`, kept for the last ``_SPECTRA_KEPT`` samples: hash
    pairs come a row at a time, so a sample meets its near-identical frames within a short stretch."""
    kept = ctx.cache.setdefault("duplicates:spectra", OrderedDict())
    out = []
    for sid, fp in samples:
        if sid in kept:
            kept.move_to_end(sid)
        else:
            kept[sid] = spectrum(fp.grey)
            if len(kept) > _SPECTRA_KEPT:
                kept.popitem(last=False)
        out.append(kept[sid])
    return out


def decide_disagreement(table: dict, ctx, p: dict) -> list[Finding]:
    fps = table["fingerprint"]
    found = pairs(table, ctx, p["near_max_distance"], p["near_min_correlation"], shifted=True)
    issues = defaultdict(list)  # sample -> (severity, iou, message, other)
    for x in found:
        fa, fb = fps[x.a], fps[x.b]
        similar = x.correlation >= p["same_min_correlation"]
        same = x.exact or (x.distance <= p["same_max_distance"] and similar)
        how = "identical pixels" if x.exact else f"hash distance {x.distance}, correlation {x.correlation:.3f}"
        iou, least = mask_iou(fa, fb), p["min_iou"]
        if not x.exact:
            # a copy cropped by a pixel or two moves the hash beyond same_max_distance: the aligned pictures say
            known = ctx.cache.get("duplicates:aligned", {}).get((x.a, x.b))
            iou, corr, shift = known if known is not None else _aligned(ctx, x.a, x.b, fa, fb)
            copy = similar and corr >= p["copy_min_correlation"]
            same = same or copy
            least = p["min_iou"] if copy else p["near_min_iou"]
            how = f"{'a copy' if copy else 'near-identical'}: aligned correlation {corr:.4f}" + (
                f", shifted {abs(shift[1]):.1f} x {abs(shift[0]):.1f} of 64 px" if any(shift) else ""
            )
        if same:
            if iou < least:
                for me, other in ((x.a, x.b), (x.b, x.a)):
                    msg = (
                        f"the same picture as sample {other} ({how}) but the masks overlap only "
                        f"IoU {iou:.2f} (< {least:g}): one of the two is a label error"
                    )
                    issues[me].append(("error", iou, other, msg))
            continue
        for me, other, fm, fo in ((x.a, x.b, fa, fb), (x.b, x.a, fb, fa)):
            missing = sorted(set(fo.classes) - set(fm.classes))
            if missing:
                names = ", ".join(f"class {c} ({fo.classes[c]:,} px)" for c in missing)
                msg = (
                    f"near-duplicate of sample {other} ({how}) which labels {names} that this "
                    "mask lacks: a missing annotation?"
                )
                issues[me].append(("warning", mask_iou(fa, fb), other, msg))
    out = []
    for sid in ctx.sample_ids:
        if sid not in issues:
            continue
        items = sorted(issues[sid], key=lambda t: (t[0] != "error", t[1]))
        severity, iou = items[0][0], items[0][1]
        msg = items[0][3] + (
            f" (and {len(items) - 1} more pair{'s' if len(items) > 2 else ''})" if len(items) > 1 else ""
        )
        out.append(
            Finding(
                sid,
                "duplicate_mask_disagreement",
                severity,
                msg,
                value=iou,
                path=ctx.paths.get(sid),
                details={
                    "partner": items[0][2],
                    "others": [{"id": t[2], "iou": round(t[1], 4), "severity": t[0]} for t in items],
                },
            )
        )
    return out


CHECKS = (
    Check(
        "exact_duplicate",
        "dataset",
        "images with identical decoded pixels",
        {},
        needs=("fingerprint",),
        decide=decide_exact,
    ),
    Check(
        "near_duplicate",
        "dataset",
        "near-identical images (perceptual hash + thumbnail correlation)",
        {"max_distance": 8, "min_correlation": 0.95},
        needs=("fingerprint",),
        decide=decide_near,
    ),
    Check(
        "duplicate_mask_disagreement",
        "dataset",
        "duplicate images whose masks disagree",
        {
            "min_iou": 0.95,
            "near_min_iou": 0.5,
            "same_max_distance": 4,
            "same_min_correlation": 0.99,
            "copy_min_correlation": 0.9999,
            "near_max_distance": 8,
            "near_min_correlation": 0.95,
        },
        needs=("fingerprint",),
        decide=decide_disagreement,
    ),
)
