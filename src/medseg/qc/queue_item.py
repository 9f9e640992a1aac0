"""One place of the review queue, and the words that say why it is there (see :mod:`medseg.qc.queue`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from medseg.qc.findings import Finding, severity_rank
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.queue_index import finding_of, told_rows
from medseg.qc.queue_words import reason_line, signal_verdicts, signals
from medseg.qc.volume_slices import slice_words

FINDING_PENALTY = {"error": 1.0, "warning": 0.75, "info": 0.0}
SLICES_SHOWN = 5  # slices named in a reason; QueueItem.slices holds more
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


def finding_penalty(f: Finding) -> float:
    if f.check in IMAGE_CHECKS and f.severity != "error":
        return 0.0
    return FINDING_PENALTY[f.severity]


@dataclass
class _ItemContext:
    """What an item's words are made of, from the snapshot its place was computed on."""

    ids: list
    statuses: list
    heads: list
    judged: dict
    score: np.ndarray
    scored_rev: dict
    words: object  # .details(method, sample id) -> JSON text or None; .findings(k) -> finding rows
    method: str | None
    model: str | None
    calibration: object
    trusted_over: np.ndarray | None = None  # QueueState.trusted_over
    _trusted_by: dict | None = field(default=None, init=False, repr=False)

    def _details(self, method: str | None, sid: str) -> dict | None:
        """The stored details of ``sid``'s score under ``method``; None when it has no score row there."""
        text = None if method is None else self.words.details(method, sid)
        return None if text is None else json.loads(text)

    def item(self, k: int, priority: float) -> QueueItem:
        sid, head, method, model = self.ids[k], self.heads[k], self.method, self.model
        rows = self.words.findings(k)
        if self.trusted_over is not None:
            if self._trusted_by is None:  # the other way round, made once: {label told wrong: label trusted}
                told = np.flatnonzero(self.trusted_over >= 0)
                self._trusted_by = dict(zip(self.trusted_over[told].tolist(), told.tolist()))
            if self.trusted_over[k] >= 0:
                rows = told_rows(rows, self.ids[self.trusted_over[k]])
            elif k in self._trusted_by:
                rows = told_rows(rows, self.ids[self._trusted_by[k]], trusted=False)
        found = tuple(sorted((finding_of(r) for r in rows), key=lambda f: -severity_rank(f.severity)))
        standings = {m: s.at(k, _STALE) for m, s in self.judged.items()}
        score = None if math.isnan(self.score[k]) else float(self.score[k])
        own = self._details(method, sid) or {}
        was = (self.scored_rev[k], int(head)) if k in self.scored_rev else None
        fit = standings.get(OUTLINE_METHOD)
        fit = None if fit is None or fit is _STALE else float(fit)
        zs = worst_slices(own if score is not None else {}, found)
        outline = self._details(OUTLINE_METHOD, sid) if method != OUTLINE_METHOD and fit is not None else None
        fit_details = None if score is None and model is not None else outline  # beside a model's verdict only
        reason = reason_line(score, own, method, found, fit_details, was)
        verdicts = signal_verdicts(
            {m: (None if v is _STALE else v) for m, v in standings.items() if m not in (model, OUTLINE_METHOD)},
            self.calibration,
        )
        said = signals(
            found,
            finding_penalty,
            score,
            own,
            method,
            outline=outline,
            model_percentile=standings.get(model) if model is not None else standings.get(method),
            stale=was,
            verdicts=verdicts,
            reliability=self.calibration,
        )
        if zs:
            reason += f"; look at {slice_words(zs[:SLICES_SHOWN], ordered=True)}"
            said += (f"look at {slice_words(zs[:SLICES_SHOWN], ordered=True)}",)
        return QueueItem(
            sid,
            self.statuses[k],
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


@dataclass
class ReadWords:
    """An item's score details and findings from the columns the queue was computed from."""

    rows: dict  # {method: score rows of ``Workspace.queue_columns``}
    found: dict  # {sample index: finding rows}
    texts: dict = field(default_factory=dict)  # {method: {sample: details JSON}}, made on the first item

    def details(self, method: str, sid: str) -> str | None:
        if method not in self.texts:
            self.texts[method] = {r[0]: r[4] for r in self.rows.get(method, ())}
        return self.texts[method].get(sid)

    def findings(self, k: int) -> list:
        return self.found.get(k, ())


@dataclass
class LazyWords:
    """An item's score details and findings read from the workspace when it is made (a stored queue's,
    :class:`medseg.qc.queue_cache.StoredWords`), only for the checks the queue folds in."""

    stored: object
    ids: list
    checks: frozenset | None

    def details(self, method: str, sid: str) -> str | None:
        return self.stored.details(method, sid)

    def findings(self, k: int) -> list:
        rows = self.stored.findings(self.ids[k])
        return [r for r in rows if self.checks is None or r[1] in self.checks]


class _Stale(float):
    """A standing judged on an earlier revision: stands at ``STALE_STANDING`` (module doc)."""


_STALE = _Stale(STALE_STANDING)


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
