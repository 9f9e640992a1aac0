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

Three or more copies can tell which label is wrong: one that disagrees with
copies which do not disagree with one another is the odd one out
(:mod:`medseg.qc.duplicates_odd`); its error names them, and theirs become
info findings naming it, so they are not pulled to the top with it.

Copies with identical pixels are judged through one copy of each mask: the
copies that share a mask too (twins) share its verdicts, and count as one
label of their number in the search for the odd ones out. Each finding's
details name at most ``NAMED`` samples and count the rest
(``others_not_listed``; the message counts every pair): 1,000 copies with two
masks were up to 250,000 pairs judged and listed (19 s, 455 MB of QC and 37
MB of findings), and now are one pair.

Each pair is judged on its own (:func:`judge`), where its fingerprints are: in
the run's worker processes with the confirmation of its hash candidate, or
here. A pair that is neither the same picture nor labels a class the other
lacks has nothing to report, so it is not aligned (aligning is most of a
pair's cost, and most pairs of a video's frames are such pairs). Nor is a hash
candidate whose magnitude spectra, which a shift leaves nearly as they are, say
it cannot be the same picture (``GATE_MARGIN``): 95 % of the candidates of
smooth video frames are another video's frames.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from medseg.qc.duplicates_align import aligned_correlations, magnitudes, pictures_of
from medseg.qc.duplicates_fingerprint import Fingerprint, mask_iou
from medseg.qc.duplicates_odd import cleared
from medseg.qc.duplicates_pairs import (
    _PICTURES_KEPT,
    Pair,
    aligned_pair,
    candidates,
    exact_mask_pairs,
    pair_map,
    pictures,
)
from medseg.qc.findings import Finding

_CHUNK = 64  # candidates confirmed together: their missing magnitude spectra made by one transform
_MAGNITUDES_KEPT = 512  # samples whose magnitude spectra a process keeps (8.6 KB each)
# a candidate is aligned only when its magnitude spectra correlate within this of the correlation judge()
# needs of it. Copies that reach a threshold once aligned lay below it by: 0.002 at most for shifted, padded
# and resized CVC-ClinicDB frames that are hash candidates, 0.016 for a photo's 128 px window moved by 2 px,
# 0.039 moved by 6 px (beyond the hash distance); frames of other synthetic videos are still cut by 2/3
GATE_MARGIN = 0.04
EITHER = ": one of the two is a label error"
NAMED = 50  # the samples a finding's details name (one copy of many: the others, the odd ones, the copies)


def same_picture_message(other: str, how: str, iou: float, least: float) -> str:
    return f"the same picture as sample {other} ({how}) but the masks overlap only IoU {iou:.2f} (< {least:g}){EITHER}"


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
                out.append((me, ("error", iou, other, same_picture_message(other, how, iou, least))))
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
    for x in _confirmed(ctx, chunk, fps, p):
        if x is not None:
            out += judge(ctx, x, fps[x.a], fps[x.b], p)
    return out


def _confirmed(ctx, chunk: Sequence, fps, p: dict) -> Iterator[Pair | None]:
    """Each candidate (a, b, distance) of ``chunk``, in order, as a Pair if its 32x32 thumbnails correlate at
    ``near_min_correlation`` in place, or its grey thumbnails once aligned (a copy cropped by a pixel or two:
    0.88 in place, 0.99999 aligned; the Pair's ``correlation`` is then the aligned one), else None.

    A candidate is aligned only if it could matter to :func:`judge`: its magnitude spectra
    (:func:`~medseg.qc.duplicates_align.magnitudes`) correlate within ``GATE_MARGIN`` of
    ``same_min_correlation`` when both masks label the same classes (less is a near-duplicate at most, and
    judge reports nothing of those), of ``near_min_correlation`` otherwise."""
    least = p["near_min_correlation"]
    for k in range(0, len(chunk), _CHUNK):
        part = chunk[k : k + _CHUNK]
        corrs: list[float | None] = []
        align = []
        for c in part:
            fa, fb = fps[c[0]], fps[c[1]]
            if fa.thumb is None or fb.thumb is None:
                corrs.append(None)
                continue
            corrs.append(float(fa.thumb @ fb.thumb))
            if corrs[-1] < least and fa.grey is not None and fb.grey is not None:
                align.append((len(corrs) - 1, c, fa, fb))
        if align:
            spectra = _magnitudes(ctx, [(c[i], f) for _, c, fa, fb in align for i, f in ((0, fa), (1, fb))])
            bound = np.einsum("ij,ij->i", spectra[::2], spectra[1::2]).tolist()
            needs = [
                p["same_min_correlation"] if fa.classes.keys() == fb.classes.keys() else least for *_, fa, fb in align
            ]
            align = [x for x, b, need in zip(align, bound, needs) if b >= need - GATE_MARGIN]
        for (n, *_), corr in zip(align, _aligned(ctx, align)):
            corrs[n] = corr
        for c, corr in zip(part, corrs):
            yield None if corr is None or corr < least else Pair(c[0], c[1], False, c[2], corr)


def _aligned(ctx, align: list) -> list[float]:
    """:func:`~medseg.qc.duplicates_align.aligned_correlations` of the candidates to align, the pictures
    that :func:`~medseg.qc.duplicates_pairs.pictures` does not keep made together first."""
    kept = ctx.cache.setdefault("duplicates:pictures", OrderedDict())
    new = {s: f.grey for _, c, fa, fb in align for s, f in ((c[0], fa), (c[1], fb)) if s not in kept}
    made = dict(zip(new, pictures_of(list(new.values())))) if new else {}
    found = [[made.get(s) or pictures(ctx, (s, f))[0] for s, f in ((c[0], fa), (c[1], fb))] for _, c, fa, fb in align]
    for sid, pic in made.items():  # kept for judge(), as pictures() would have
        kept[sid] = pic
        if len(kept) > _PICTURES_KEPT:
            kept.popitem(last=False)
    return aligned_correlations([(a, b) for a, b in found])


def _magnitudes(ctx, samples: list[tuple[str, Fingerprint]]) -> np.ndarray:
    """:func:`~medseg.qc.duplicates_align.magnitudes` of each (sample, fingerprint), those of the last
    ``_MAGNITUDES_KEPT`` samples kept, the missing ones made together."""
    kept = ctx.cache.setdefault("duplicates:magnitudes", OrderedDict())
    new = {sid: fp.grey for sid, fp in samples if sid not in kept}
    made = dict(zip(new, magnitudes(list(new.values())))) if new else {}
    out = [made[sid] if sid in made else kept[sid] for sid, _ in samples]
    for (sid, _), m in zip(samples, out):
        kept[sid] = m
        kept.move_to_end(sid)
    while len(kept) > _MAGNITUDES_KEPT:
        kept.popitem(last=False)
    return np.stack(out)


def judge_pairs(ctx, chunk: list[Pair], fps, p: dict) -> list[tuple[str, tuple]]:
    return [found for x in chunk for found in judge(ctx, x, fps[x.a], fps[x.b], p)]


def decide_disagreement(table: dict, ctx, p: dict) -> list[Finding]:
    fps = table["fingerprint"]
    near, _ = candidates(table, ctx, p["near_max_distance"])
    exact, twins = exact_mask_pairs(table, ctx)
    issues = defaultdict(list)  # sample -> (severity, iou, other, message), in the order of its pairs
    for judged in pair_map(ctx, fps, near, judge_candidates, p):
        for sid, issue in judged:
            issues[sid].append(issue)
    # copies with identical pixels were judged through one copy of each mask: its twins share its verdicts
    by_mask = defaultdict(list)  # a judged copy -> (severity, iou, the other mask's judged copy)
    for judged in pair_map(ctx, fps, exact, judge_pairs, p):
        for sid, (severity, iou, other, _) in judged:
            by_mask[sid].append((severity, iou, other))
    more = _twins_issues(issues, by_mask, twins, p["min_iou"])
    class_edges = [(sid, t[2]) for sid, items in by_mask.items() for t in items if t[0] == "error"]
    odd = _odd_ones_out(issues, class_edges, twins)
    out = []
    for sid in ctx.sample_ids:
        if sid not in issues:
            continue
        items = sorted(issues[sid], key=lambda t: (t[0] != "error", t[1]))
        severity, iou = items[0][0], items[0][1]
        n_more = len(items) - 1 + more.get(sid, 0)
        msg = items[0][3] + (f" (and {n_more} more pair{'s' if n_more > 1 else ''})" if n_more else "")
        details = {
            "partner": items[0][2],
            "others": [{"id": t[2], "iou": round(t[1], 4), "severity": t[0]} for t in items],
        }
        if more.get(sid):
            details["others_not_listed"] = more[sid]
        details.update(odd.get(sid, {}))
        out.append(
            Finding(
                sid, "duplicate_mask_disagreement", severity, msg, value=iou, path=ctx.paths.get(sid), details=details
            )
        )
    return out


def _twins_issues(issues: dict, by_mask: dict, twins: dict[str, list[str]], least: float) -> dict[str, int]:
    """Each copy's issues with the copies of the other masks it disagrees with, from the verdicts on one copy of
    each mask: the worst-agreeing mask first, up to ``NAMED`` copies named; {copy: the copies not named}."""
    more: dict[str, int] = {}
    for first, verdicts in by_mask.items():
        named = [
            (severity, iou, other, same_picture_message(other, "identical pixels", iou, least))
            for severity, iou, mask in sorted(verdicts, key=lambda v: v[1])
            for other in twins[mask][:NAMED]
        ][:NAMED]
        n = sum(len(twins[mask]) for _, _, mask in verdicts)
        for sid in twins[first]:
            issues[sid] += named
            if n > len(named):
                more[sid] = n - len(named)
    return more


def _odd_ones_out(issues: dict, class_edges: list, twins: dict[str, list[str]]) -> dict[str, dict]:
    """Rewrites ``issues`` where copies tell which label is wrong (:mod:`medseg.qc.duplicates_odd`): the labels
    likely right get info instead of errors about the odd ones. The findings' extra details: {sample:
    {"odd_one_out_of": the copies}} for an odd one, {sample: {"likely_wrong": the odd ones}} for the others,
    each naming up to ``NAMED`` samples. Twins (:func:`exact_mask_pairs`) are one label of their count in the
    disagreement graph: every smallest explanation takes all of them or none."""
    first_of = {sid: first for first, members in twins.items() for sid in members}
    edges = [
        (first_of.get(sid, sid), first_of.get(t[2], t[2]))
        for sid, items in issues.items()
        for t in items
        if t[0] == "error"
    ]
    right_firsts = cleared([*edges, *class_edges], {first: len(members) for first, members in twins.items()})

    def members(first: str) -> list[str]:
        return twins.get(first, [first])

    right: dict[str, list[str]] = {}
    n_copies: dict[str, int] = defaultdict(int)  # an odd one -> the copies it disagrees with
    copies: dict[str, list[str]] = defaultdict(list)  # ... the first NAMED of them
    for first, wrong_firsts in right_firsts.items():
        wrong = [o for w in wrong_firsts for o in members(w)]
        group = members(first)
        for sid in group:
            right[sid] = wrong
        for o in wrong:
            n_copies[o] += len(group)
            copies[o] += group[: NAMED - len(copies[o])]
    odd = set(n_copies)
    for sid in right:
        issues[sid] = [
            (
                "info",
                iou,
                other,
                msg.replace(
                    EITHER,
                    f": sample {other} is the odd one out, its mask disagrees with {n_copies[other]} copies of "
                    "this picture which do not disagree with one another, so the error is likely there",
                ),
            )
            if severity == "error" and other in odd
            else (severity, iou, other, msg)
            for severity, iou, other, msg in issues[sid]
        ]
    for sid in odd:
        named = sorted(copies[sid])
        issues[sid] = [
            (
                severity,
                iou,
                other,
                msg.replace(
                    EITHER,
                    f": this mask is the odd one out, it disagrees with {n_copies[sid]} copies of this picture "
                    f"({', '.join(named[:3])}{', ...' if n_copies[sid] > 3 else ''}) which do not disagree with "
                    "one another, so it is the likely label error",
                ),
            )
            for severity, iou, other, msg in issues[sid]
        ]
    return {sid: {"likely_wrong": wrong[:NAMED]} for sid, wrong in right.items()} | {
        sid: {"odd_one_out_of": sorted(copies[sid])} for sid in odd
    }
