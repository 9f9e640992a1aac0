"""``duplicate_mask_disagreement``: two samples showing the same picture whose masks disagree.

A pair showing the *same picture* whose masks disagree is an error on both
samples (each names the other): one of the two is mislabelled. Identical
pixels (a copied frame) must have masks at IoU >= ``min_iou`` (0.95: a
redrawn or eroded outline, IoU 0.85, is caught; an anti-aliased edge
binarised differently is not). A near-identical pair (distance <=
``same_max_distance`` and correlation >= ``same_min_correlation``) is first
aligned (:mod:`medseg.qc.duplicates_align`); if the aligned pictures
correlate at >= ``copy_min_correlation`` it is a copy, held to ``min_iou``
too, otherwise to ``near_min_iou`` only (the figures behind these thresholds:
:mod:`medseg.qc.duplicates`). Looser near-duplicates are neighbouring video
frames whose objects move, so IoU says little; they only raise a warning when
a class is labelled in one and absent from the other (a missing annotation).

Each pair is judged on its own (:func:`judge`), where its fingerprints are: in
the run's worker processes with the confirmation of its hash candidate, or
here. A pair that is neither the same picture nor labels a class the other
lacks has nothing to report, so it is not aligned (aligning is most of a
pair's cost, and most pairs of a video's frames are such pairs).
"""

from __future__ import annotations

from collections import defaultdict

from medseg.qc.duplicates_fingerprint import Fingerprint, mask_iou
from medseg.qc.duplicates_pairs import Pair, aligned_pair, candidates, confirmed_all, pair_map
from medseg.qc.findings import Finding


def judge(ctx, x: Pair, fa: Fingerprint, fb: Fingerprint, p: dict) -> list[tuple[str, tuple]]:
    """[(sample, (severity, iou, other sample, message))] of pair ``x``: none, or one per sample of it."""
    similar = x.correlation >= p["same_min_correlation"]
    same = x.exact or (x.distance <= p["same_max_distance"] and similar)
    how = "identical pixels" if x.exact else f"hash distance {x.distance}, correlation {x.correlation:.3f}"
    least = p["min_iou"]
    if x.exact:
        iou = mask_iou(fa, fb)
    elif not similar and fa.classes.keys() == fb.classes.keys():
        return []  # neither the same picture (a copy needs ``similar`` too) nor a class missing on one side
    else:
        # a copy cropped by a pixel or two moves the hash beyond same_max_distance: the aligned pictures say
        iou, corr, shift = aligned_pair(ctx, x, fa, fb)
        copy = similar and corr >= p["copy_min_correlation"]
        same = same or copy
        least = p["min_iou"] if copy else p["near_min_iou"]
        how = f"{'a copy' if copy else 'near-identical'}: aligned correlation {corr:.4f}" + (
            f", shifted {abs(shift[1]):.1f} x {abs(shift[0]):.1f} of 64 px" if any(shift) else ""
        )
    out = []
    if same:
        if iou < least:
            for me, other in ((x.a, x.b), (x.b, x.a)):
                msg = (
                    f"the same picture as sample {other} ({how}) but the masks overlap only "
                    f"IoU {iou:.2f} (< {least:g}): one of the two is a label error"
                )
                out.append((me, ("error", iou, other, msg)))
        return out
    for me, other, fm, fo in ((x.a, x.b, fa, fb), (x.b, x.a, fb, fa)):
        missing = sorted(set(fo.classes) - set(fm.classes))
        if missing:
            names = ", ".join(f"class {c} ({fo.classes[c]:,} px)" for c in missing)
            msg = (
                f"near-duplicate of sample {other} ({how}) which labels {names} that this "
                "mask lacks: a missing annotation?"
            )
            out.append((me, ("warning", mask_iou(fa, fb), other, msg)))
    return out


def judge_candidates(ctx, chunk: list[tuple], fps, p: dict) -> list[tuple[str, tuple]]:
    """:func:`judge` of each hash candidate (a, b, distance) that its thumbnails confirm, aligned if need be."""
    out = []
    for x in confirmed_all(ctx, chunk, fps, p["near_min_correlation"], shifted=True):
        if x is not None:
            out += judge(ctx, x, fps[x.a], fps[x.b], p)
    return out


def judge_pairs(ctx, chunk: list[Pair], fps, p: dict) -> list[tuple[str, tuple]]:
    return [found for x in chunk for found in judge(ctx, x, fps[x.a], fps[x.b], p)]


def decide_disagreement(table: dict, ctx, p: dict) -> list[Finding]:
    fps = table["fingerprint"]
    near, exact = candidates(table, ctx, p["near_max_distance"])
    issues = defaultdict(list)  # sample -> (severity, iou, other, message), in the order of its pairs
    for fn, items in ((judge_candidates, near), (judge_pairs, exact)):
        for judged in pair_map(ctx, fps, items, fn, p):
            for sid, issue in judged:
                issues[sid].append(issue)
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
