"""Exact and near-duplicate images, and duplicates whose masks disagree.

Each sample leaves a small :class:`~medseg.qc.duplicates_fingerprint.Fingerprint` from the decoding pass
(pixel and mask hashes, a perceptual hash, thumbnails); the pairs they make are found in
:mod:`medseg.qc.duplicates_pairs`, their masks judged in :mod:`medseg.qc.duplicates_disagree`.

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

from collections import defaultdict

from medseg.qc.checks_base import Check
from medseg.qc.duplicates_disagree import decide_disagreement
from medseg.qc.duplicates_fingerprint import Fingerprint, fingerprint, mask_iou, phash_and_thumb
from medseg.qc.duplicates_pairs import Pair, candidates, hash_pairs, pairs, popcount
from medseg.qc.findings import Finding

__all__ = [
    "CHECKS",
    "Fingerprint",
    "Pair",
    "decide_disagreement",
    "decide_exact",
    "decide_near",
    "fingerprint",
    "hash_pairs",
    "mask_iou",
    "pairs",
    "phash_and_thumb",
    "popcount",
]


LISTED = 50  # the copies an exact duplicate's details name (its value counts them all)


def _per_sample(found: list[Pair]) -> dict[str, list[tuple[str, Pair]]]:
    out = defaultdict(list)
    for p in found:
        out[p.a].append((p.b, p))
        out[p.b].append((p.a, p))
    return out


def _others(ids: list[str], limit: int = 8, total: int | None = None) -> str:
    """The first ``limit`` of ``ids`` and how many more of ``total`` (default: all of ``ids``) there are."""
    total = len(ids) if total is None else total
    return ", ".join(ids[:limit]) + (f" and {total - limit} more" if total > limit else "")


def decide_exact(table: dict, ctx, p: dict) -> list[Finding]:
    """A warning on each sample of a group of identical pictures. Its details list the first ``LISTED`` others
    and one sample of each other group (what a group split must merge: :mod:`medseg.workspace.split_groups`),
    so k copies store k lists of at most ``LISTED`` names, not k lists of k - 1."""
    out = []
    for group in candidates(table, ctx, 0)[1]:
        first_of: dict[str, str] = {}  # a member of each split group among the copies
        for sid in group:
            first_of.setdefault(str(ctx.groups.get(sid)), sid)
        for sid in group:
            others = [o for o in group[: LISTED + 1] if o != sid][:LISTED]  # not k - 1 names for each of k
            mine = str(ctx.groups.get(sid))
            cross = [o for g, o in first_of.items() if g != mine]
            leak = f"; {_others(cross)} in another group, so a group split would leak" if cross else ""
            out.append(
                Finding(
                    sid,
                    "exact_duplicate",
                    "warning",
                    f"image pixels identical to sample {_others(others, total=len(group) - 1)}{leak}",
                    value=len(group) - 1,
                    path=ctx.paths.get(sid),
                    details={"others": others, "cross_group": cross},
                )
            )
    return out


def decide_near(table: dict, ctx, p: dict) -> list[Finding]:
    found = pairs(table, ctx, p["max_distance"], p["min_correlation"])
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
