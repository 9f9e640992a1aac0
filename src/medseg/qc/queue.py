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

import numpy as np

from medseg.errors import UnknownNameError
from medseg.qc.findings import severity_rank
from medseg.qc.model_standing import GROUP_SHARE, MIN_GROUP, ModelStanding
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue_index import (
    ReviewQueue,
    Standings,
    calibrated,
    finding_of,
    queue_order,
    weighted_mean,
)
from medseg.qc.queue_item import (
    FINDING_PENALTY,
    IMAGE_CHECKS,
    STALE_STANDING,
    QueueItem,
    _ItemContext,
    finding_penalty,
    worst_slices,
)
from medseg.qc.queue_words import (
    PAIR_CHECK,
    finding_phrase,
    outline_phrase,
    pair_partners,
    score_phrase,
)
from medseg.qc.signals import percentiles

__all__ = [
    "GROUP_SHARE",
    "MIN_GROUP",
    "QueueItem",
    "ReviewQueue",
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

UNJUDGED_STANDING = 0.5  # a sample no signal judges stands in the middle, not last


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


def review_queue(
    workspace,
    *,
    method: str | None = None,
    statuses: Iterable[str] | None = None,
    checks: Iterable[str] | None = None,
    models: bool = True,
) -> ReviewQueue:
    """The workspace's samples, worst first (the rule is in this module's docstring), as a
    :class:`~medseg.qc.queue_index.ReviewQueue`: a sequence of :class:`QueueItem` whose items are made
    when asked (its ``sample_ids``, ``statuses`` and ``priorities`` cover every place at once).

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
    cols = workspace.queue_columns()
    stored_checks = {row[1] for row in cols["findings"]}
    if checks is not None:
        checks = {str(c) for c in ([checks] if isinstance(checks, str) else checks)}
        from medseg.qc.checks_registry import CHECKS

        known = set(CHECKS) | stored_checks
        for c in checks:
            if c not in known:
                raise UnknownNameError("QC check", c, sorted(known))
    ids, heads = cols["ids"], cols["heads"]
    n = len(ids)
    at = {sid: k for k, sid in enumerate(ids)}
    free = [m for m in signal_methods() if m in stored]
    model = method if method is not None and method not in free else None
    rows = {m: cols["scores"].get(m, []) for m in {*free, method} if m is not None}
    judged = {m: _signal_standings(rows[m], at, heads, n) for m in free}
    if model is not None:
        judged[model] = _model_standings(rows[model], at, dict(zip(ids, cols["groups"])), heads, n)
    calibration = reliability.calibration(workspace.root, model)
    if calibration is not None and not {m for m, w in calibration.weights.items() if w > 0} <= set(judged):
        calibration = None  # made for signals no longer stored: the plain rule until QC or ranking runs again
    if calibration is None:
        dice = {r[0]: {"dice": r[3]} for r in rows.get(model, ()) if r[3] is not None}
        combined = weighted_mean(_plain_weights(judged, model, dice), judged, n, UNJUDGED_STANDING)
    else:
        combined = calibrated(calibration.bias, calibration.weights, judged, n)

    # the method's score per sample: None where unscored, not finite, or about an earlier revision
    score = np.full(n, np.nan)
    scored_rev: dict[int, int] = {}
    for sid, v, rev, _, _ in rows.get(method, ()):
        k = at.get(sid)
        if k is None or v is None or not math.isfinite(v):
            continue
        if rev is not None and heads[k] is not None and int(rev) != int(heads[k]):
            scored_rev[k] = int(rev)  # stale: the score is about a label that is no longer the current one
            continue
        score[k] = v
    found: dict[int, list[tuple]] = {}
    for row in cols["findings"]:
        k = at.get(row[0])
        if k is not None and (checks is None or row[1] in checks):
            found.setdefault(k, []).append(row)
    penalty, worst, count = np.zeros(n), np.full(n, -1), np.zeros(n, np.int64)
    for k, fs in found.items():
        penalty[k] = sum(FINDING_PENALTY[s] if not (c in IMAGE_CHECKS and s != "error") else 0.0 for _, c, s, *_ in fs)
        worst[k] = max(severity_rank(f[2]) for f in fs)
        count[k] = len(fs)
    priority = combined - penalty

    keep = np.arange(n) if statuses is None else np.flatnonzero([s in statuses for s in cols["statuses"]])
    order, shared = queue_order(
        priority[keep], np.isnan(score[keep]), worst[keep], count[keep], _pair_groups(keep, found, at)
    )
    context = _ItemContext(
        ids, cols["statuses"], heads, judged, score, scored_rev, rows, found, method, model, calibration
    )
    return ReviewQueue(keep[order], ids, cols["statuses"], shared[order], context.item)


def _signal_standings(rows: list, at: dict, heads: list, n: int) -> Standings:
    """A model-free signal's stored percentile per sample; stale where it judged an earlier revision."""
    values, stale = {}, set()
    for sid, v, judged, _, _ in rows:
        k = at.get(sid)
        if k is None or v is None or not math.isfinite(v):
            continue
        if judged is not None and judged != heads[k]:
            stale.add(k)
        else:
            values[k] = float(v)
    return Standings(n, values, stale, STALE_STANDING)


def _model_standings(rows: list, at: dict, groups: dict, heads: list, n: int) -> Standings:
    """The percentile of each sample's group-relative score (:mod:`medseg.qc.model_standing`); stale where
    it scored an earlier revision. Stale scores stay in the reference: a correction moves its own sample,
    not the others' standings."""
    scores = {sid: v for sid, v, _, _, _ in rows}
    revisions = {sid: {"revision": r} for sid, _, r, _, _ in rows if r is not None}
    values, stale = {}, set()
    for sid, v in percentiles(ModelStanding(scores, revisions, groups).values).items():
        k = at.get(sid)
        if k is None:
            continue
        judged = revisions.get(sid, {}).get("revision")
        if judged is not None and heads[k] is not None and int(judged) != int(heads[k]):
            stale.add(k)
        else:
            values[k] = v
    return Standings(n, values, stale, STALE_STANDING)


def _plain_weights(judged: dict, model: str | None, details: dict) -> dict[str, float]:
    """Without a calibration: the model counts its median Dice with the labels, every other signal 1."""
    return {m: (model_weight(details) if m == model else 1.0) for m in judged}


def _pair_groups(keep: np.ndarray, found: dict, at: dict) -> list[list[int]]:
    """Item indices (into ``keep``) of the samples named by each other's disagreeing-duplicate errors."""
    place = {int(k): i for i, k in enumerate(keep.tolist())}
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, rows in found.items():
        if k not in place:
            continue
        for row in rows:
            if row[1] != PAIR_CHECK or row[2] != "error":
                continue
            for other in pair_partners(finding_of(row)):
                j = place.get(at.get(other, -1))
                if j is not None:
                    parent[root(j)] = root(place[k])
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(root(i), []).append(i)
    return [m for m in members.values() if len(m) > 1]


def model_weight(details: dict[str, dict]) -> float:
    """The model's say beside the outline's (which counts 1): its median Dice with the labels, 1 without Dice."""
    dice = [float(d["dice"]) for d in details.values() if d.get("dice") is not None and math.isfinite(d["dice"])]
    return float(min(1.0, max(0.05, sorted(dice)[len(dice) // 2]))) if dice else 1.0
