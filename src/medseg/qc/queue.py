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
  another in the queue (samples whose errors name each other), the one
  whose own priority is lower (the likelier error) first. Where three
  or more copies tell which label is wrong (one disagrees with copies that
  do not disagree with one another, :mod:`medseg.qc.duplicates_odd`), only
  that odd one out keeps the error; its copies' findings are info, and they
  keep their own place. Two copies cannot tell which label is wrong, but the
  other signals often can: where the combined values of a pair differ by
  ``PAIR_MARGIN`` (0.2) or more, the label they trust reads its error as
  info naming the other (``trusted_over``) and keeps its own place
  (:func:`medseg.qc.queue_state.told_pairs`); the stored finding is as QC
  wrote it, and a new ranking may tell the pair apart differently. A pair
  with a label corrected since its signals judged it is not told apart.
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

import json
from collections.abc import Iterable

import numpy as np

from medseg.errors import UnknownNameError
from medseg.qc.model_standing import GROUP_SHARE, MIN_GROUP
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue_index import ReviewQueue, queue_order
from medseg.qc.queue_item import (
    FINDING_PENALTY,
    IMAGE_CHECKS,
    STALE_STANDING,
    LazyWords,
    QueueItem,
    _ItemContext,
    finding_penalty,
    worst_slices,
)
from medseg.qc.queue_state import (
    PAIR_MARGIN,
    UNJUDGED_STANDING,
    _pair_groups,
    _usable,
    calibration_key,
    model_weight,
)
from medseg.qc.queue_words import (
    finding_phrase,
    outline_phrase,
    score_phrase,
)
from medseg.workspace.store import DB_NAME

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

    What the order is computed from is kept in the workspace until a write changes it
    (:mod:`medseg.qc.queue_cache`): the next open with the same method, checks and models reads it
    instead of every score and finding; statuses filter it (a verdict does not re-order the queue).
    """
    from medseg.qc import queue_cache, reliability
    from medseg.workspace.records import check_status

    if statuses is not None:
        statuses = {str(s) for s in ([statuses] if isinstance(statuses, str) else statuses)}
        for s in statuses:
            check_status(s)
    if checks is not None:
        checks = {str(c) for c in ([checks] if isinstance(checks, str) else checks)}
    key = _cache_key(method, checks, models)
    state, sts = queue_cache.load(workspace, key)
    if state is not None:
        calibration = _usable(reliability.calibration(workspace.root, state.model), state.judged)
        if calibration_key(calibration) != state.calibration:
            state = None  # QC or a ranking stored a new calibration since: the priorities move
    if state is None:
        token = workspace.queue_cache_begin()
        cols = workspace.queue_columns()
        state, calibration, words = _compute(workspace, cols, method, checks, models)
        state.order, state.shared = _order(state, np.arange(len(state.ids)))
        workspace.queue_cache_store(token, key, state.to_bytes())
        sts = cols["statuses"]
    else:
        stored = queue_cache.StoredWords(workspace.root / DB_NAME)
        words = LazyWords(stored, state.ids, None if checks is None else frozenset(checks))

    ids, heads, n = state.ids, state.heads, len(state.ids)
    if statuses is None:
        keep = np.arange(n)
        if state.order is None:
            state.order, state.shared = _order(state, keep)
        order, shared = state.order, state.shared
    else:
        keep = np.flatnonzero([s in statuses for s in sts])
        order, shared = _order(state, keep)
    context = _ItemContext(
        ids,
        sts,
        heads,
        state.judged,
        state.score,
        state.scored_rev,
        words,
        state.method,
        state.model,
        calibration,
        state.trusted_over,
    )
    return ReviewQueue(keep[order], ids, sts, shared[order], context.item)


def _order(state, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``queue_order`` of the samples at ``keep`` (indices in the workspace's order)."""
    return queue_order(
        state.priority[keep],
        state.unscored[keep],
        state.worst[keep],
        state.count[keep],
        _pair_groups(keep, state.edges),
    )


QUEUE_RULE = 3  # raise when the ordering rule changes in a way the cache key below does not see


def _cache_key(method: str | None, checks: set | None, models: bool) -> str:
    """What a stored order answers: the request and the rule's constants (a change of either computes it)."""
    return json.dumps(
        {
            "rule": QUEUE_RULE,
            "method": method,
            "checks": None if checks is None else sorted(checks),
            "models": bool(models),
            "signals": signal_methods(),
            "penalty": FINDING_PENALTY,
            "image": sorted(IMAGE_CHECKS),
            "standing": [UNJUDGED_STANDING, STALE_STANDING],
            "pair_margin": PAIR_MARGIN,
        },
        sort_keys=True,
    )


def _compute(workspace, cols: dict, method: str | None, checks: set | None, models: bool):
    """The method and checks asked for, checked against what the workspace stores; then
    :func:`medseg.qc.queue_state.compute`."""
    from medseg.qc.queue_state import compute

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
    stored_checks = {row[1] for row in cols["findings"]}
    if checks is not None:
        from medseg.qc.checks_registry import CHECKS

        known = set(CHECKS) | stored_checks
        for c in checks:
            if c not in known:
                raise UnknownNameError("QC check", c, sorted(known))
    free = [m for m in signal_methods() if m in stored]
    return compute(workspace.root, cols, method, free, checks)
