"""The review queue: a workspace's samples, the labels most likely wrong first.

Ordering rule (what :func:`review_queue` does, and what ``QueueItem.signals`` explain):

* Signals: every label-quality signal the workspace stores (the model-free
  ones of :mod:`medseg.qc.signals`, stored by QC, e.g. ``outline-fit``,
  ``neighbour-fit``; and the model's score method the queue ranks by, e.g.
  ``oof-k5``) gives each sample a *standing* in [0, 1]: its percentile among
  the dataset's judged samples, 0 = the most suspect (the model's after its
  group's median is partly taken off, :mod:`medseg.qc.model_standing`).
* Their combination, the sample's *suspicion*, comes from their reliability
  measured on this very dataset (:mod:`medseg.qc.reliability`): errors of
  every kind are planted into copies of up to 150 labels, each signal's
  AUROC separating those copies from the originals is its reliability, and
  a logistic regression on the standings says how much each counts; a signal
  at AUROC <= 0.55 (fold models that did not learn, an outline fit on blurry
  images) counts nothing, so it cannot drag the queue below what the others
  give alone. The combined value is 1 - the fitted chance that the label is
  wrong. A signal that cannot judge a sample (an outline on an empty mask)
  stands at 0.5 there, the middle; a sample no signal judges stands in the
  middle too, not last. Until a calibration is stored (QC and ranking make
  one at their end; fewer than 12 labels to plant into make none), the
  combination is the mean of the standings that judged the sample, the
  model's weighted by its median Dice with the labels (the outline and the
  other signals count 1 each); none judged: 0.5.
* The priority is that value less a penalty per QC finding about the label
  or its files: ``FINDING_PENALTY`` = 1.0 per error, 0.75 per warning,
  nothing for info. One error finding (duplicates whose masks disagree, ids
  outside the class map, an all-foreground mask, a missing mask) therefore
  puts the sample ahead of every sample without one; a warning (grey noise,
  specks beside objects, enclosed holes, an object count unlike the rest of
  the video) moves it up by three quarters of the range: a rule check that
  fires is near-certain evidence, which a model trained on the same noisy
  labels often cannot give (grey noise binarised on import leaves a plausible
  outline). 0.75 rather than 0.5 measured AUROC +0.004 to +0.009 on each of
  four benchmark runs (benchmarks/bench_rank.py, seeds 0-2).
* Image-quality findings (too dark, over-exposed, blurred, duplicate images)
  say nothing about the label: they are listed in the item but add a penalty
  only at error severity (an unusable image is worth a look).
* A standing judged on an earlier revision of the label (a person corrected
  or reverted it since) says nothing about the current one: that signal
  stands at 1.0 (a person's label is presumed right until judged again), and
  the reason says so until the queue is scored again.
* One number orders the whole queue: items come in ascending ``priority``.
  Ties: scored before unscored, then the worst finding's severity, then the
  number of findings, then the workspace's order (numbered frames in number
  order, not "10" before "2").
* Duplicate images whose masks disagree (the ``duplicate_mask_disagreement``
  error names its partner) are one question, which of the two is wrong: the
  samples of such a pair share the pair's lowest priority and follow one
  another in the queue.
* ``QueueItem.signals`` say why in short phrases, most telling first
  (:mod:`medseg.qc.queue_words`): the findings that moved the sample, the
  signals that put it in the dataset's worst fifth, each with its measured
  reliability ("a signal that finds 91 % of planted errors here": the share of
  planted copies it put in the worst fifth), the model's verdict.
* Volumes (a CT or MR case per sample) are ranked like any sample, by their
  volume score (the mean of their worst slices' scores, see
  :mod:`medseg.qc.volume_scores`) and their findings; each item names the
  slices to open (``QueueItem.slices``, also in its reason): the slices of
  its error and warning findings first, then the model's worst slices, then
  those of info findings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from medseg.errors import UnknownNameError
from medseg.qc.findings import Finding, severity_rank
from medseg.qc.model_standing import GROUP_SHARE, MIN_GROUP, ModelStanding
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue_words import (
    finding_phrase,
    outline_phrase,
    pair_partners,
    reason_line,
    score_phrase,
    signal_verdicts,
    signals,
)
from medseg.qc.signals import percentiles
from medseg.qc.volume_slices import slice_words

__all__ = [
    "GROUP_SHARE",
    "MIN_GROUP",
    "QueueItem",
    "default_method",
    "finding_penalty",
    "finding_phrase",
    "model_weight",
    "outline_phrase",
    "review_queue",
    "score_phrase",
    "signal_methods",
    "worst_slices",
]

FINDING_PENALTY = {"error": 1.0, "warning": 0.75, "info": 0.0}
SLICES_SHOWN = 5  # slices named in a reason; QueueItem.slices holds more
UNJUDGED_STANDING = 0.5  # a sample no signal judges stands in the middle, not last
STALE_STANDING = 1.0  # a label changed since it was judged is presumed right until judged again
IMAGE_CHECKS = frozenset({"too_dark", "over_exposed", "blurred", "exact_duplicate", "near_duplicate"})


@dataclass(frozen=True)
class QueueItem:
    """One place in the review queue.

    ``score``: the model's label quality in [0, 1] (lower = more likely wrong; a model-free signal's
    percentile when the queue ranks by one), None when unscored; ``method``: the score's method;
    ``findings``: the sample's QC findings (filtered by ``checks``); ``reason``: the score and the
    findings in one line; ``priority``: what orders the queue (ascending: the queue is sorted by it alone,
    ties aside; module doc); ``signals``: why it stands there, as short phrases, most telling first;
    ``standings``: {signal method: its standing in [0, 1], 0 = most suspect; None = not judged}.
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
    standings: dict = field(default_factory=dict, compare=False)


def default_method(methods: Iterable[str]) -> str | None:
    """The score method a queue uses when none is named.

    ``fit-all`` (``medseg rank``'s default, :mod:`medseg.qc.fit_all`) is
    preferred: it ranked planted errors better than out-of-fold models on data
    never used for choosing; then an out-of-fold method ("oof-k5", the largest K
    when several), then any other stored model method, then ``outline-fit``,
    then another model-free signal's; None when none is stored.
    """
    methods = sorted(methods)
    if "fit-all" in methods:
        return "fit-all"
    oof = [m for m in methods if m.startswith("oof")]
    if oof:
        return max(oof, key=lambda m: (_fold_count(m), m))
    free = set(signal_methods())
    models = [m for m in methods if m not in free]
    if not models and OUTLINE_METHOD in methods:
        return OUTLINE_METHOD
    return (models or methods or [None])[0]


def signal_methods() -> list[str]:
    """The model-free signals' score methods (:mod:`medseg.qc.signals`; ``outline-fit`` always)."""
    import medseg.qc.checks_registry  # noqa: F401 - registers the signals of the checks
    from medseg.qc.signals import SIGNALS

    return list(dict.fromkeys([OUTLINE_METHOD, *SIGNALS]))


def _fold_count(method: str) -> int:
    digits = "".join(ch for ch in method.rsplit("-k", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


def finding_penalty(f: Finding) -> float:
    if f.check in IMAGE_CHECKS and f.severity != "error":
        return 0.0
    return FINDING_PENALTY[f.severity]


def review_queue(
    workspace,
    *,
    method: str | None = None,
    statuses: Iterable[str] | None = None,
    checks: Iterable[str] | None = None,
    models: bool = True,
) -> list[QueueItem]:
    """The workspace's samples, worst first (the rule is in this module's docstring).

    ``method``: the score method to rank by (default: :func:`default_method`
    over the stored ones); a method with no stored score raises naming the
    stored ones. ``statuses``: keep only samples with these review statuses.
    ``checks``: fold in only findings of these checks. ``models=False``: the
    model-free queue (QC's signals and findings only, whatever models scored).
    """
    from medseg.qc import reliability
    from medseg.workspace.records import check_status

    stored = workspace.score_methods()
    if not models:
        stored = [m for m in stored if m in set(signal_methods())]
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
    records = workspace.samples()
    groups = {rec.id: rec.group for rec in records}
    heads = {rec.id: rec.head_revision for rec in records}
    free = [m for m in signal_methods() if m in stored]
    model = method if method is not None and method not in free else None
    scores = workspace.scores(method) if method else {}
    details = workspace.score_details(method) if method else {}
    judged = {m: _signal_standings(workspace, m, heads) for m in free}
    if model is not None:
        judged[model] = _model_standings(scores, details, groups, heads)
    calibration = reliability.calibration(workspace.root, model)
    if calibration is not None and not {m for m, w in calibration.weights.items() if w > 0} <= set(judged):
        calibration = None  # made for signals no longer stored: the plain rule until QC or ranking runs again
    weights = _plain_weights(judged, model, details) if calibration is None else None
    outline_details = workspace.score_details(OUTLINE_METHOD) if OUTLINE_METHOD in free else {}

    items = []
    for rec in records:
        if statuses is not None and rec.status not in statuses:
            continue
        found = tuple(sorted(per_sample.get(rec.id, ()), key=lambda f: -severity_rank(f.severity)))
        standings = {m: v.get(rec.id) for m, v in judged.items()}
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
        priority = _combined(standings, calibration, weights) - penalty
        fit = judged.get(OUTLINE_METHOD, {}).get(rec.id)
        fit = None if fit is None or fit is _STALE else float(fit)
        zs = worst_slices(details.get(rec.id, {}) if score is not None else {}, found)
        own = details.get(rec.id, {})
        fit_details = outline_details.get(rec.id) if method != OUTLINE_METHOD and fit is not None else None
        if fit_details is not None and score is None and model is not None:
            fit_details = None  # the reason line shows the outline beside a model's verdict only
        was = (int(scored), int(rec.head_revision)) if stale else None
        reason = reason_line(score, own, method, found, fit_details, was)
        verdicts = signal_verdicts(
            {m: (None if v is _STALE else v) for m, v in standings.items() if m not in (model, OUTLINE_METHOD)},
            calibration,
        )
        said = signals(
            found,
            finding_penalty,
            score,
            own,
            method,
            outline=outline_details.get(rec.id) if method != OUTLINE_METHOD and fit is not None else None,
            model_percentile=standings.get(model) if model is not None else standings.get(method),
            stale=was,
            verdicts=verdicts,
            reliability=calibration,
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
                {m: (None if v is _STALE else v) for m, v in standings.items()},
            )
        )
    return _ordered(items)


class _Stale(float):
    """A standing judged on an earlier revision: stands at ``STALE_STANDING`` (module doc)."""


_STALE = _Stale(STALE_STANDING)


def _signal_standings(workspace, method: str, heads: dict) -> dict[str, float]:
    """{sample: stored percentile} of a model-free signal; ``_STALE`` where it judged an earlier revision."""
    details = workspace.score_details(method)
    out = {}
    for sid, v in workspace.scores(method).items():
        if v is None or not math.isfinite(v):
            continue
        judged = details.get(sid, {}).get("revision")
        out[sid] = _STALE if judged is not None and judged != heads.get(sid) else float(v)
    return out


def _model_standings(scores: dict, details: dict, groups: dict, heads: dict) -> dict[str, float]:
    """{sample: percentile of its group-relative score} (:mod:`medseg.qc.model_standing`); stale: ``_STALE``.

    Stale scores stay in the reference: a correction moves its own sample, not the others' standings."""
    ms = ModelStanding(scores, details, groups)
    out: dict[str, float] = dict(percentiles(ms.values))
    for sid in out:
        judged = details.get(sid, {}).get("revision")
        if judged is not None and heads.get(sid) is not None and int(judged) != int(heads[sid]):
            out[sid] = _STALE
    return out


def _plain_weights(judged: dict, model: str | None, details: dict) -> dict[str, float]:
    """Without a calibration: the model counts its median Dice with the labels, every other signal 1."""
    return {m: (model_weight(details) if m == model else 1.0) for m in judged}


def _combined(standings: dict, calibration, weights: dict | None) -> float:
    if calibration is not None:
        return calibration.combined(standings)
    said = [(weights[m], v) for m, v in standings.items() if v is not None]
    if not said:
        return UNJUDGED_STANDING
    return sum(w * v for w, v in said) / sum(w for w, _ in said)


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
