"""The review queue: a workspace's samples, the labels most likely wrong first.

Ordering rule (what :func:`review_queue` does, and what ``QueueItem.reason`` explains):

* A scored sample's priority is its label-quality score (in [0, 1], lower =
  more likely wrong) minus a penalty per QC finding about its label or files:
  ``FINDING_PENALTY`` = 1.0 per error, 0.75 per warning, nothing for info.
  One error-severity label finding (duplicates whose masks disagree, ids
  outside the class map, an all-foreground mask, a missing mask) therefore
  puts the sample ahead of every scored sample without one; a warning (grey
  noise, an empty mask where masks are rarely empty, specks beside objects,
  enclosed holes, an object count unlike the rest of the video) moves it up
  by three quarters of the score range: a rule check that fires is
  near-certain evidence that the label needs a look, which a model trained
  on the same noisy labels often cannot give (grey noise binarised on import
  leaves a plausible outline). Warnings are rare on clean data (3 of the 612
  CVC-ClinicDB frames); 0.75 rather than 0.5 measured AUROC +0.004 to +0.009
  on each of four benchmark runs (benchmarks/bench_rank.py, seeds 0-2).
* Outline fit (:mod:`medseg.qc.outline_fit`, method ``outline-fit``,
  stored by QC): when the queue ranks by a model's method and the workspace
  also holds outline-fit scores, the two are combined: a sample's standing is
  a weighted mean of its percentile rank among the model's scores and its
  outline-fit percentile (both 0 = worst in the dataset), and the penalty is
  taken from that. The outline counts 1, the model counts its median Dice
  with the labels over the scored samples (most labels are right, so that
  says how good the model is: a model that finds half of each object gets
  half the outline's say; one that matches the labels gets an equal say).
  The two see different errors (the model: objects left out or drawn where
  it sees none; the outline: shifted, grown, shrunk outlines, which a weak
  model only half sees), and ranks make them comparable whatever their
  scales. A sample without an outline-fit score (an empty label, no image)
  keeps its model percentile alone. Ranking by ``outline-fit`` itself
  (before any model exists) uses its percentile as the score.
* Groups (the frames of one video, the slices of one scan: the same groups
  the out-of-fold split keeps together): where groups of at least
  ``MIN_GROUP`` scored samples exist, each model score and outline-fit
  value has ``GROUP_SHARE`` (half) of its group's median taken off before
  the percentiles are taken. A fold model that never saw a video often
  fails on all of its frames (measured on CVC-ClinicDB: whole videos at
  out-of-fold Dice 0), and a low-contrast video has low outline fits
  throughout; a frame's low value then says little about its label, while a
  frame that stands out from its own video does. Half, not all: a video
  whose every label is off in the same way (one annotator's habit) should
  still come early. Groups below the size are set against the median of all.
  Measured (benchmarks/bench_rank.py): queue AUROC 0.925 -> 0.94 from this
  alone, with the ``object_count`` check 0.95.
* Image-quality findings (too dark, over-exposed, blurred, duplicate images)
  say nothing about the label: they are listed in the item but add a penalty
  only at error severity (an unusable image is worth a look).
* A score given to an earlier revision of the label (the label was corrected
  or reverted since) says nothing about the current one: the sample is
  treated as unscored, and its reason says so, until the queue is scored again;
  an outline fit judged on an earlier revision is left out of its standing
  until QC runs again.
* Samples without a score (none stored for the method, or no method) stand
  like the best-scored sample (``UNSCORED_STANDING`` = 1.0), less the same
  penalties: an unscored clean sample comes after the scored ones, an
  unscored sample with an error finding (0.0) before every scored sample
  without one, two warnings (-0.5) before one error.
* One number orders the whole queue: items come in ascending ``priority``,
  scored or not. Ties: scored before unscored, then the worst finding's
  severity, then the number of findings, then the workspace's order
  (numbered frames in number order, not "10" before "2").
* Duplicate images whose masks disagree (the ``duplicate_mask_disagreement``
  error names its partner) are one question, which of the two is wrong: the
  samples of such a pair share the pair's lowest priority and follow one
  another in the queue.
* ``QueueItem.signals`` say the same in short phrases, most telling first
  (:mod:`medseg.qc.queue_words`).
* Volumes (a CT or MR case per sample) are ranked like any sample, by their
  volume score (the mean of their worst slices' scores, see
  :mod:`medseg.qc.volume_scores`) and their findings; each item names the
  slices to open (``QueueItem.slices``, also in its reason): the slices of
  its error and warning findings first, then the model's worst slices, then
  those of info findings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from medseg.errors import UnknownNameError
from medseg.qc.findings import Finding, severity_rank
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue_words import finding_phrase, outline_phrase, pair_partners, reason_line, score_phrase, signals
from medseg.qc.ranks import average_ranks
from medseg.qc.volume_slices import slice_words

__all__ = [
    "QueueItem",
    "default_method",
    "finding_penalty",
    "finding_phrase",
    "model_weight",
    "outline_phrase",
    "review_queue",
    "score_phrase",
    "worst_slices",
]

FINDING_PENALTY = {"error": 1.0, "warning": 0.75, "info": 0.0}
MIN_GROUP = 5
GROUP_SHARE = 0.5
SLICES_SHOWN = 5  # slices named in a reason; QueueItem.slices holds more
UNSCORED_STANDING = 1.0  # an unscored sample stands like the best-scored one, less its findings' penalties
IMAGE_CHECKS = frozenset({"too_dark", "over_exposed", "blurred", "exact_duplicate", "near_duplicate"})


@dataclass(frozen=True)
class QueueItem:
    """One place in the review queue.

    ``score``: label quality in [0, 1], lower = more likely wrong, None when
    unscored; ``method``: the score's method; ``findings``: the sample's QC
    findings (filtered by ``checks``); ``reason``: why it stands where it does, in one line;
    ``priority``: what orders the queue (ascending: the queue is sorted by it alone, ties aside);
    ``signals``: the same reasons as short phrases, most telling first.
    """

    sample_id: str
    status: str
    score: float | None
    method: str | None
    findings: tuple[Finding, ...]
    reason: str
    priority: float = 1.0
    outline: float | None = None  # outline-fit percentile in the dataset (0 = worst), None when unjudged
    slices: tuple[int, ...] = ()  # volumes: the slices to look at, most telling first (module doc)
    signals: tuple[str, ...] = ()


def default_method(methods: Iterable[str]) -> str | None:
    """The score method a queue uses when none is named.

    An out-of-fold method ("oof-k5") is preferred (unbiased; the largest K
    when several), then any other stored method; None when none is stored.
    """
    methods = sorted(methods)
    oof = [m for m in methods if m.startswith("oof")]
    if oof:
        return max(oof, key=lambda m: (_fold_count(m), m))
    return methods[0] if methods else None


def _fold_count(method: str) -> int:
    digits = "".join(ch for ch in method.rsplit("-k", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


def finding_penalty(f: Finding) -> float:
    if f.check in IMAGE_CHECKS and f.severity != "error":
        return 0.0
    return FINDING_PENALTY[f.severity]


def review_queue(
    workspace, *, method: str | None = None, statuses: Iterable[str] | None = None, checks: Iterable[str] | None = None
) -> list[QueueItem]:
    """The workspace's samples, worst first (the rule is in this module's docstring).

    ``method``: the score method to rank by (default: :func:`default_method`
    over the stored ones); a method with no stored score raises naming the
    stored ones. ``statuses``: keep only samples with these review statuses.
    ``checks``: fold in only findings of these checks.
    """
    from medseg.workspace.records import check_status

    stored = workspace.score_methods()
    if method is None:
        method = default_method(stored)
    elif method not in stored:
        raise UnknownNameError(
            "score method",
            method,
            stored or ["(none stored yet: run medseg rank)"],
            hint=f"(in workspace {workspace.root})",
        )
    if statuses is not None:
        statuses = {str(s) for s in ([statuses] if isinstance(statuses, str) else statuses)}
        for s in statuses:
            check_status(s)
    all_findings = workspace.findings()
    if checks is not None:
        checks = {str(c) for c in ([checks] if isinstance(checks, str) else checks)}
        from medseg.qc.checks_registry import CHECKS

        known = set(CHECKS) | {f.check for f in all_findings}
        for c in checks:
            if c not in known:
                raise UnknownNameError("QC check", c, sorted(known))
    per_sample: dict[str, list[Finding]] = {}
    for f in all_findings:
        if checks is None or f.check in checks:
            per_sample.setdefault(f.sample_id, []).append(f)
    scores = workspace.scores(method) if method else {}
    details = workspace.score_details(method) if method else {}
    outline = workspace.scores(OUTLINE_METHOD) if OUTLINE_METHOD in stored else {}
    outline_details = workspace.score_details(OUTLINE_METHOD) if outline else {}
    records = workspace.samples()
    groups = {rec.id: rec.group for rec in records}
    heads = {rec.id: rec.head_revision for rec in records}
    # an outline judged on an earlier revision says nothing about the current label
    outline = {s: v for s, v in outline.items() if outline_details.get(s, {}).get("revision") in (None, heads.get(s))}
    standing = _standing(scores, details, outline if method != OUTLINE_METHOD else {}, groups)

    model_pct = _percentiles({s: float(v) for s, v in scores.items() if v is not None and math.isfinite(v)})
    items = []
    for rec in records:
        if statuses is not None and rec.status not in statuses:
            continue
        found = tuple(sorted(per_sample.get(rec.id, ()), key=lambda f: -severity_rank(f.severity)))
        score = scores.get(rec.id)
        if score is not None and not math.isfinite(score):
            score = None
        scored = details.get(rec.id, {}).get("revision")
        stale = (
            score is not None
            and scored is not None
            and rec.head_revision is not None
            and int(scored) != int(rec.head_revision)
        )
        if stale:  # the score is about a label that is no longer the current one
            score = None
        penalty = sum(finding_penalty(f) for f in found)
        priority = (UNSCORED_STANDING if score is None else standing.get(rec.id, float(score))) - penalty
        fit = outline.get(rec.id)
        fit = float(fit) if fit is not None and math.isfinite(fit) else None
        zs = worst_slices(details.get(rec.id, {}) if score is not None else {}, found)
        own = details.get(rec.id, {})
        fit_details = (
            outline_details.get(rec.id) if method != OUTLINE_METHOD and score is not None and fit is not None else None
        )
        was = (int(scored), int(rec.head_revision)) if stale else None
        reason = reason_line(score, own, method, found, fit_details, was)
        said = signals(
            found,
            finding_penalty,
            score,
            own,
            method,
            outline=fit_details,
            model_percentile=model_pct.get(rec.id),
            stale=was,
        )
        if zs:
            reason += f"; look at {slice_words(zs[:SLICES_SHOWN], ordered=True)}"
            said += (f"look at {slice_words(zs[:SLICES_SHOWN], ordered=True)}",)
        items.append(
            QueueItem(
                rec.id,
                rec.status,
                score,
                method if score is not None else None,
                found,
                reason,
                priority,
                fit,
                zs,
                said,
            )
        )
    return _ordered(items)


def _pair_groups(items: list[QueueItem]) -> dict[str, str]:
    """{sample: its group}: samples named by each other's disagreeing-duplicate error form one group."""
    parent = {i.sample_id: i.sample_id for i in items}

    def root(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for item in items:
        for f in item.findings:
            for other in pair_partners(f):
                if other in parent:
                    parent[root(other)] = root(item.sample_id)
    return {s: root(s) for s in parent}


def _ordered(items: list[QueueItem]) -> list[QueueItem]:
    """Ascending priority, the workspace's order on ties after: scored before unscored, the worst finding
    and the most findings first. The samples of a disagreeing duplicate pair share the pair's lowest
    priority and follow one another (one of them is wrong; which, only a look at both says)."""
    group = _pair_groups(items)
    own = {}
    for pos, item in enumerate(items):
        worst = max((severity_rank(f.severity) for f in item.findings), default=-1)
        own[item.sample_id] = (item.score is None, -worst, -len(item.findings), pos)
    lowest: dict[str, tuple] = {}
    for item in items:
        g = group[item.sample_id]
        lowest[g] = min(lowest.get(g, (math.inf,)), (item.priority, own[item.sample_id]))
    shared = [
        item
        if lowest[group[item.sample_id]][0] == item.priority
        else replace(item, priority=lowest[group[item.sample_id]][0])
        for item in items
    ]
    return sorted(shared, key=lambda item: (lowest[group[item.sample_id]], own[item.sample_id]))


def worst_slices(details: dict, found: tuple[Finding, ...], limit: int = 20) -> tuple[int, ...]:
    """A volume's slices to open, most telling first: those of its error and warning findings (each
    finding's ``z`` first), then the model's worst slices (``details["worst_slices"]``), then those of info
    findings; () for a 2-D sample."""
    out: list[int] = []

    def add(zs) -> None:
        for z in zs:
            if z is not None and int(z) not in out:
                out.append(int(z))

    serious = [f for f in found if f.severity != "info"]
    add(f.details.get("z") for f in serious)
    add(details.get("worst_slices") or ())
    for f in serious:
        add(f.details.get("slices") or ())
    info = [f for f in found if f.severity == "info"]
    add(f.details.get("z") for f in info)
    return tuple(out[:limit])


def model_weight(details: dict[str, dict]) -> float:
    """The model's say beside the outline's (which counts 1): its median Dice with the labels, 1 without Dice."""
    dice = [float(d["dice"]) for d in details.values() if d.get("dice") is not None and math.isfinite(d["dice"])]
    return float(min(1.0, max(0.05, sorted(dice)[len(dice) // 2]))) if dice else 1.0


def _group_relative(values: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    """Each value less ``GROUP_SHARE`` of its group's median (groups of >= ``MIN_GROUP``; others: the median
    of all), so what counts is how a sample stands among its own video's or scan's samples (module doc)."""
    by: dict[str, list[float]] = {}
    for sid, v in values.items():
        by.setdefault(groups.get(sid, sid), []).append(v)
    overall = float(np.median(list(values.values())))
    median = {g: float(np.median(v)) if len(v) >= MIN_GROUP else overall for g, v in by.items()}
    return {sid: v - GROUP_SHARE * median[groups.get(sid, sid)] for sid, v in values.items()}


def _percentiles(values: dict[str, float]) -> dict[str, float]:
    """{sample: rank among ``values`` in [0, 1], 0 = lowest}, ties averaged."""
    ids = list(values)
    if len(ids) < 2:
        return dict.fromkeys(ids, 0.5)
    ranks = average_ranks(np.array([values[s] for s in ids], dtype=float))
    return {s: float(r) / (len(ids) - 1) for s, r in zip(ids, ranks)}


def _standing(scores: dict, details: dict, outline: dict, groups: dict[str, str] | None = None) -> dict[str, float]:
    """{sample: its standing in [0, 1]} from the model's scores, the outline fit and the groups (module
    doc); {} when the raw score is the standing (no outline-fit scores and no group large enough)."""
    model = {s: float(v) for s, v in scores.items() if v is not None and math.isfinite(v)}
    fits = {s: float(v) for s, v in outline.items() if v is not None and math.isfinite(v)}
    groups = groups or {}
    grouped = any(n >= MIN_GROUP for n in Counter(groups.get(s, s) for s in model).values())
    if not model or not (fits or grouped):
        return {}
    if grouped:
        model = _group_relative(model, groups)
        fits = _percentiles(_group_relative(fits, groups)) if fits else {}
    pct = _percentiles(model)
    w = model_weight({s: details.get(s, {}) for s in model})
    return {s: p if s not in fits else (w * p + fits[s]) / (w + 1.0) for s, p in pct.items()}
