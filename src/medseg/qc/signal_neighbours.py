"""``neighbour-fit``: does a mask agree with the masks of the neighbouring frames of its video, once aligned?

Frames next to each other in a video (slices next to each other in a scan
labelled as 2-D images) show the same objects a few pixels apart, so a
correct mask overlaps its neighbours' masks well once the camera's motion is
undone, whatever a model thinks of the image. A shifted, grown or shrunk
outline, an object left out or drawn on nothing, another frame's mask: each
overlaps its neighbours less than the video's other masks overlap theirs.

Per sample, QC keeps small thumbnails (``THUMB`` px on the long side): the
grey image and the mask as the share of each thumbnail pixel that is
foreground (so a few pixels' error still shows). For each neighbour (up to
``REACH`` frames either side in the group's natural order of sample ids),
the camera's motion is the phase correlation of the two grey thumbnails
(Hann-windowed, without the outer ``CROP`` of each side, where endoscopes
draw a fixed black surround that would pull the shift to zero); the
neighbour's mask is moved by it and the two masks' soft Dice taken. A
neighbour whose image does not match after the move (a cut to another scene
within a group) is left out. The signal's raw value is the best Dice over
the neighbours left: frames of a video are often sampled far apart (in
CVC-ClinicDB the camera moves a sixth of the frame between neighbours, and
the median clean frame's median Dice with its aligned neighbours is 0.58),
so one neighbour that agrees is the evidence, and one wrong neighbour does
not make a correct mask look wrong (the best Dice ranked the planted errors
of CVC-ClinicDB frames 1-300 at AUROC 0.80, the median 0.71, without
alignment 0.70). Two empty masks agree
(1), an empty and a non-empty one do not (0). A sample with no usable
neighbour, without an image, or a volume (its slices are judged by the
volume checks) is not judged.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict

import numpy as np

from medseg.qc import spill
from medseg.qc.checks_base import SampleView
from medseg.qc.signals import own_measure
from medseg.qc.thumb_moves import moved_centres, shifted_each

METHOD = "neighbour-fit"
THUMB = 64
REACH = 3
CROP = 0.15
_MOVES_KEPT = 4096
_SPECTRA_KEPT = 64  # 64 x 41 KB
_PAIR_CHUNK = 64  # samples a worker task aligns with their neighbours: ~0.5 MB of thumbnails, 4 tasks in flight
MIN_MATCH = 0.0  # correlation of the aligned grey thumbnails below which a neighbour is another scene

_DIGITS = re.compile(r"(\d+)")


def thumbnails(v: SampleView) -> dict | None:
    """The measure ``thumbs``: {"grey": uint8 (h, w), "mask": uint8 (h, w) foreground share 0..255} of a
    2-D sample with an image (``THUMB`` px on the long side); None for volumes and samples without an image."""
    from PIL import Image

    from medseg.qc.checks_images import grey

    if v.volume or v.image is None or len(v.spatial_shape) != 2:
        return None
    g = grey(v)
    if g is None or g[0].shape != tuple(v.spatial_shape):
        return None
    h, w = g[0].shape
    scale = THUMB / max(h, w)
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    grey8 = np.clip(g[0] * 255, 0, 255).astype(np.uint8)
    mask8 = v.foreground().astype(np.uint8) * 255
    if size == (w, h):  # a frame already thumbnail-sized: Pillow's resize to the same size is a copy
        return {"grey": grey8, "mask": mask8}
    image = Image.fromarray(grey8).resize(size, Image.BOX)
    mask = Image.fromarray(mask8).resize(size, Image.BOX)
    return {"grey": np.asarray(image), "mask": np.asarray(mask)}


def natural_key(sample_id: str) -> tuple:
    """ "frame_2" before "frame_10": digit runs compared as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(sample_id) if p)


def neighbours(ctx) -> dict[str, list[str]]:
    """{sample: up to ``REACH`` samples either side of it in its group's natural order}, cached in ``ctx``."""
    key = f"{METHOD}:neighbours"
    if key not in ctx.cache:
        groups: dict[str, list[str]] = {}
        for sid in ctx.sample_ids:
            groups.setdefault(ctx.groups.get(sid, sid), []).append(sid)
        out = {}
        for members in groups.values():
            members.sort(key=natural_key)
            for i, sid in enumerate(members):
                out[sid] = members[max(0, i - REACH) : i] + members[i + 1 : i + 1 + REACH]
        ctx.cache[key] = out
    return ctx.cache[key]


@functools.lru_cache(maxsize=16)
def _hann(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)


def _prepared(grey: np.ndarray) -> np.ndarray:
    """The thumbnail's centre, zero-mean and Hann-windowed, as phase correlation wants it."""
    h, w = grey.shape
    cy, cx = round(CROP * h), round(CROP * w)
    a = grey[cy : h - cy, cx : w - cx].astype(np.float32)
    a -= a.mean()
    return a * _hann(*a.shape)


def spectrum(grey: np.ndarray) -> np.ndarray:
    """The Fourier transform phase correlation takes of a grey thumbnail (one per sample, for every pair)."""
    return np.fft.fft2(_prepared(grey))


def phase_shift(
    moving: np.ndarray, fixed: np.ndarray, spectra: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[float, float, float]:
    """(dy, dx, match): the move that puts ``moving`` (grey thumbnail) onto ``fixed``, sub-pixel, and the
    correlation of the two centres after that move (1 = identical, 0 = unrelated). ``spectra``: the
    :func:`spectrum` of ``moving`` and of ``fixed`` when the caller keeps them."""
    fb, fa = spectra if spectra is not None else (spectrum(moving), spectrum(fixed))
    dy, dx = _peak(np.fft.ifft2(_cross(fa, fb)).real)
    return dy, dx, _matches([moving], [(dy, dx)], fixed.shape, centred_centre(fixed))[0]


def _cross(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """The normalised cross-power spectrum whose inverse transform peaks at the move."""
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-9
    return cross


def _peak(corr: np.ndarray) -> tuple[float, float]:
    """The sub-pixel move at the peak of a phase correlation."""
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    shift = []
    for axis, p in enumerate(peak):
        n = corr.shape[axis]
        before = corr[(p - 1) % n, peak[1]] if axis == 0 else corr[peak[0], (p - 1) % n]
        after = corr[(p + 1) % n, peak[1]] if axis == 0 else corr[peak[0], (p + 1) % n]
        denom = before - 2 * corr[peak] + after
        sub = min(max(float(0.5 * (before - after) / denom), -0.5), 0.5) if denom < 0 else 0.0
        s = p + sub
        shift.append(s - n if s > n / 2 else s)
    return shift[0], shift[1]


def _matches(movings: list[np.ndarray], moves: list[tuple[float, float]], shape: tuple, centred) -> list[float]:
    """The correlation of each moved thumbnail's centre with the fixed one's (``centred``: its
    :func:`centred_centre`), all moved at once; each row's sums as a lone thumbnail's (numpy sums a
    row of a contiguous stack as it sums the row alone)."""
    h, w = shape
    x = moved_centres(np.stack(movings), moves, round(CROP * h), round(CROP * w))
    x = x.reshape(len(movings), -1)
    x = x - x.mean(axis=1, keepdims=True)
    y, yy = centred
    out = []
    for xx, xy in zip((x * x).sum(axis=1), (x * y).sum(axis=1)):
        denom = float(np.sqrt(xx * yy))
        out.append(float(xy / denom) if denom > 0 else 0.0)
    return out


def centred_centre(grey: np.ndarray) -> tuple[np.ndarray, np.floating]:
    """A fixed thumbnail's centre (float32, flat, zero-mean) and its sum of squares: the fixed half of
    :func:`phase_shift`'s match, the same for each of a sample's neighbours."""
    h, w = grey.shape
    cy, cx = round(CROP * h), round(CROP * w)
    y = grey[cy : h - cy, cx : w - cx].astype(np.float32).ravel()
    y = y - y.mean()
    return y, (y * y).sum()


def soft_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two foreground-share maps (1 when both are empty)."""
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else float(2 * np.minimum(a, b).sum() / total)


def _alignment(table: dict, ctx, sid: str, nid: str) -> tuple[float, float, float] | None:
    """The camera's move from neighbour ``nid`` to ``sid`` (images only, so kept for every ``own``).

    Kept for the last ``_MOVES_KEPT`` pairs only: the stored scores ask each pair once, the calibration asks
    one sample's pairs again for each error it plants there; every pair of 100,000 samples held 120 MB."""
    done = _all_moves(table, ctx)
    if done is not None and sid in done[0]:
        k = neighbours(ctx)[sid].index(nid)
        row = done[1][1][done[1][0][done[0][sid]] + k]
        return None if np.isnan(row[2]) else (float(row[0]), float(row[1]), float(row[2]))
    moves = ctx.cache.setdefault(f"{METHOD}:moves", OrderedDict())
    key = (nid, sid)
    if key in moves:
        moves.move_to_end(key)
        return moves[key]
    mine, theirs = table.get("thumbs", {}).get(sid), table.get("thumbs", {}).get(nid)
    ok = mine is not None and theirs is not None and mine["grey"].shape == theirs["grey"].shape
    if ok:
        spectra = (_spectrum(ctx, nid, theirs["grey"]), _spectrum(ctx, sid, mine["grey"]))
        moves[key] = found = phase_shift(theirs["grey"], mine["grey"], spectra)
    else:
        moves[key] = found = None
    if len(moves) > _MOVES_KEPT:
        moves.popitem(last=False)
    return found


def scene_match(table: dict, ctx, sid: str, nid: str) -> float | None:
    """How well neighbour ``nid``'s grey thumbnail matches ``sid``'s once the camera's move is undone (the
    correlation :func:`phase_shift` gives; below ``MIN_MATCH``: another scene); None without thumbnails."""
    found = _alignment(table, ctx, sid, nid)
    return None if found is None else found[2]


def _spectrum(ctx, sid: str, grey: np.ndarray) -> np.ndarray:
    """A sample's :func:`spectrum`, kept for the last ``_SPECTRA_KEPT`` samples: each is in up to
    2 * ``REACH`` pairs, taken in dataset order, so a short memory serves them all (3 FFTs a pair -> 1)."""
    kept = ctx.cache.setdefault(f"{METHOD}:spectra", OrderedDict())
    if sid in kept:
        kept.move_to_end(sid)
        return kept[sid]
    kept[sid] = found = spectrum(grey)
    if len(kept) > _SPECTRA_KEPT:
        kept.popitem(last=False)
    return found


def _all_moves(table: dict, ctx) -> tuple[dict[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Every sample's moves from its neighbours and its own neighbour fit, computed by the run's worker
    processes when it has them: ({sample: its place}, ((samples,) first rows, (pairs, 3) rows of (dy, dx,
    match), (samples,) fits)); NaN where none was found; 24 bytes a pair. None in a serial run (computed as
    asked)."""
    key = f"{METHOD}:all-moves"
    if key not in ctx.cache:
        ctx.cache[key] = None if getattr(ctx, "workers", None) is None else _moves_in(ctx.workers, table, ctx)
    return ctx.cache[key]


def _moves_in(workers, table: dict, ctx):
    near = neighbours(ctx)
    thumbs = table.get("thumbs", {})
    if "position" not in ctx.cache:  # {sample: place in the dataset}, kept for the run
        ctx.cache["position"] = {sid: n for n, sid in enumerate(ctx.sample_ids)}
    counts = np.array([len(near.get(sid, ())) for sid in ctx.sample_ids], np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    at = int(counts.sum())

    def tasks():
        for i in range(0, len(ctx.sample_ids), _PAIR_CHUNK):
            ids = ctx.sample_ids[i : i + _PAIR_CHUNK]
            given = {}
            for sid in ids:
                for x in (sid, *near.get(sid, ())):
                    if x not in given:
                        given[x] = spill.given(thumbs, x)
            yield [(sid, near.get(sid, [])) for sid in ids], given

    rows, fits = np.full((at, 3), np.nan), np.full(len(ctx.sample_ids), np.nan)
    at = i = 0
    for moved, fit in workers.map(moves_of, tasks()):
        rows[at : at + len(moved)] = moved
        fits[i : i + len(fit)] = fit
        at, i = at + len(moved), i + len(fit)
    return ctx.cache["position"], (start, rows, fits)


def moves_of(task) -> tuple[np.ndarray, np.ndarray]:
    """((pairs, 3) moves, (samples,) neighbour fits) of ``task``'s ([(sample, neighbours)], {sample: its
    thumbs}) samples, as :func:`_alignment` and :func:`neighbour_fit` compute them (a worker process's part
    of :func:`_all_moves`)."""
    samples, thumbs = task
    reader = spill.Reader()  # the thumbs where a worker process wrote them, read here
    try:
        thumbs = reader.values(thumbs)
    finally:
        reader.close()
    out = np.full((sum(len(near) for _, near in samples), 3), np.nan)
    fits = np.full(len(samples), np.nan)
    spectra: dict[str, np.ndarray] = {}
    k = 0
    for n, (sid, near) in enumerate(samples):
        mine = thumbs.get(sid)
        found = [(thumbs.get(nid), None) for nid in near]
        usable = [
            j
            for j, (theirs, _) in enumerate(found)
            if mine is not None and theirs is not None and mine["grey"].shape == theirs["grey"].shape
        ]
        if usable:  # phase_shift per pair, the inverse transforms of the sample's pairs in one call
            for x in (sid, *(near[j] for j in usable)):
                if x not in spectra:
                    spectra[x] = spectrum(thumbs[x]["grey"])
            corrs = np.fft.ifft2(np.stack([_cross(spectra[sid], spectra[near[j]]) for j in usable])).real
            shifts = [_peak(corr) for corr in corrs]
            movings = [found[j][0]["grey"] for j in usable]
            matches = _matches(movings, shifts, mine["grey"].shape, centred_centre(mine["grey"]))
            for j, (dy, dx), match in zip(usable, shifts, matches):
                out[k + j] = move = (dy, dx, match)
                found[j] = (found[j][0], move)
        k += len(near)
        dice = _dice_with(mine, found) if mine is not None else []
        if dice:
            fits[n] = max(dice)
    return out, fits


def _dice_with(mine: dict, others: list[tuple[dict | None, tuple | None]]) -> list[float]:
    """Soft Dice of ``mine``'s mask with each (neighbour's thumbs, its move) whose scene matches."""
    mask = mine["mask"].astype(np.float32) / 255
    kept = [
        (theirs["mask"], move)
        for theirs, move in others
        if theirs is not None and move is not None and move[2] >= MIN_MATCH and theirs["mask"].shape == mask.shape
    ]
    if not kept:
        return []
    # soft_dice of each moved mask (subpixel.shift's values, all moved at once), each row summed as alone
    moved = shifted_each(np.stack([m.astype(np.float32) / 255 for m, _ in kept]), [m[:2] for _, m in kept])
    moved = moved.reshape(len(kept), -1)
    own = mask.sum()
    out = []
    for theirs, overlap in zip(moved.sum(axis=1), np.minimum(mask.reshape(1, -1), moved).sum(axis=1)):
        total = float(own + theirs)
        out.append(1.0 if total == 0 else float(2 * overlap / total))
    return out


def neighbour_agreement(table: dict, ctx, sid: str, own: dict | None) -> list[float]:
    """Soft Dice of the sample's mask with each aligned neighbour's mask that shows the same scene."""
    mine = own_measure(table, sid, own, "thumbs")
    if mine is None:
        return []
    thumbs = table.get("thumbs", {})
    return _dice_with(
        mine, [(thumbs.get(nid), _alignment(table, ctx, sid, nid)) for nid in neighbours(ctx).get(sid, ())]
    )


def neighbour_fit(table: dict, ctx, sid: str, own: dict | None) -> float | None:
    """Best Dice with the aligned neighbours' masks; None without a usable neighbour (module doc)."""
    done = _all_moves(table, ctx) if own is None else None
    if done is not None and sid in done[0]:
        fit = done[1][2][done[0][sid]]
        return None if np.isnan(fit) else float(fit)
    dice = neighbour_agreement(table, ctx, sid, own)
    return max(dice) if dice else None
