"""The review queue as it was before it was ordered over columns (per sample, in Python), kept as the
reference the new queue must equal item for item (tests/test_workspace_scale_queue.py). Only the ordering
rule is kept here; the item type, penalties and helpers that did not change come from medseg.qc.queue."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from medseg.errors import UnknownNameError
from medseg.qc.findings import Finding, severity_rank
from medseg.qc.model_standing import ModelStanding
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue import UNJUDGED_STANDING, QueueItem, default_method, model_weight, signal_methods, worst_slices
from medseg.qc.queue_item import _STALE, SLICES_SHOWN, finding_penalty
from medseg.qc.queue_state import PAIR_MARGIN
from medseg.qc.queue_words import (
    pair_partners,
    reason_line,
    signal_verdicts,
    signals,
)
from medseg.qc.signals import percentiles
from medseg.qc.volume_slices import slice_words


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

    combined = {
        rec.id: _combined({m: v.get(rec.id) for m, v in judged.items()}, calibration, weights) for rec in records
    }
    stale = {rec.id for rec in records if any(v.get(rec.id) is _STALE for v in judged.values())}
    stale |= {
        s
        for s, d in details.items()
        if d.get("revision") is not None and heads.get(s) is not None and int(d["revision"]) != int(heads[s])
    }
    per_sample = _told(per_sample, combined, stale)
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


def _told(per_sample: dict[str, list[Finding]], combined: dict[str, float], stale: set) -> dict[str, list[Finding]]:
    """Copies whose errors name each other and no one else, whose combined values differ by PAIR_MARGIN or
    more, neither judged on an earlier label: the one the signals trust reads its error as info naming the
    other (``trusted_over``)."""
    names = {(s, o) for s, fs in per_sample.items() for f in fs for o in pair_partners(f)}
    mutual: dict[str, list[str]] = {}
    for s, o in sorted(names):
        if (o, s) in names and o in combined and s in combined:
            mutual.setdefault(s, []).append(o)
    out = dict(per_sample)
    for s, others in mutual.items():
        o = others[0]
        if len(others) == 1 and len(mutual[o]) == 1 and not {s, o} & stale and combined[s] - combined[o] >= PAIR_MARGIN:
            out[s] = _told_findings(per_sample[s], "info", "trusted_over", o)
            out[o] = _told_findings(per_sample[o], "error", "trusted_partner", s)
    return out


def _told_findings(found: list[Finding], severity: str, key: str, other: str) -> list[Finding]:
    return [
        replace(f, severity=severity, details={**f.details, key: [other]})
        if f.check == "duplicate_mask_disagreement" and f.severity == "error"
        else f
        for f in found
    ]


def _pair_groups(items: list[QueueItem]) -> dict[str, str]:
    """{sample: its group}: samples whose disagreeing-duplicate errors name each other form one group (an odd
    one out names copies whose own findings are info: they are not in its group)."""
    parent = {i.sample_id: i.sample_id for i in items}
    names = {(i.sample_id, o) for i in items for f in i.findings for o in pair_partners(f)}

    def root(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for item in items:
        for f in item.findings:
            for other in pair_partners(f):
                if other in parent and (other, item.sample_id) in names:
                    parent[root(other)] = root(item.sample_id)
    return {s: root(s) for s in parent}


def _ordered(items: list[QueueItem]) -> list[QueueItem]:
    """Ascending priority, the workspace's order on ties after: scored before unscored, the worst finding
    and the most findings first. The samples of a disagreeing duplicate pair share the pair's lowest
    priority and follow one another (one of them is wrong; which, only a look at both says), the one with
    the lower priority of its own first."""
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
    mine = {item.sample_id: item.priority for item in items}  # within a pair, the likelier error first
    return sorted(shared, key=lambda item: (lowest[group[item.sample_id]], mine[item.sample_id], own[item.sample_id]))
