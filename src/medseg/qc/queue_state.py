"""A review queue's state: each sample's priority, tie keys and standings, computed over the workspace's columns.

:func:`compute` is the rule of :mod:`medseg.qc.queue` over arrays (one vector per signal, the same float
operations in the same order as the per-sample rule, so the priorities are equal to the bit); a
:class:`QueueState` holds the result, in the workspace's order, and is what :mod:`medseg.qc.queue_cache`
stores between opens.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

from medseg.qc.findings import severity_rank
from medseg.qc.model_standing import ModelStanding
from medseg.qc.queue_index import Standings, calibrated, finding_of, told_rows, weighted_mean
from medseg.qc.queue_item import FINDING_PENALTY, IMAGE_CHECKS, STALE_STANDING, ReadWords
from medseg.qc.queue_words import PAIR_CHECK, pair_partners
from medseg.qc.signals import percentiles

UNJUDGED_STANDING = 0.5  # a sample no signal judges stands in the middle, not last
# a pair of disagreeing copies whose combined values differ by this much: the signals tell which label is wrong
# (told_pairs). Choosing sides of benchmarks/bench_rank.py (stored predictions re-scored, QC run again): frames
# 298-408, eight seeds, first 20 % 93.2 -> 94.3 % (two sets one mask up, none down), AUROC 0.990 -> 0.994, the
# same at 0.1 and 0.4 (the six pairs told apart differ by 0.43-0.77; four of the labels trusted are clean, two
# planted errors whose copy was planted too, kept in the first fifth by their own findings); 1-297, seeds 0-1,
# 94.9 / 93.2 % either way. Held out (frames 409-612, seeds 2-5) no pair of copies disagrees: unchanged
PAIR_MARGIN = 0.2
NO_REVISION = np.iinfo(np.int64).min  # no head revision; scored_rev where the score is not stale
SEPARATOR = "\0"  # between the stored sample ids (no file name holds it)


@dataclass
class QueueState:
    """A queue's inputs per sample, in the workspace's order (``n`` samples)."""

    ids: list[str]
    heads: list[int | None]  # each sample's head revision
    positions: np.ndarray  # each sample's ``position`` (the workspace's order)
    method: str | None
    model: str | None
    judged: dict[str, Standings]
    score: np.ndarray  # the method's score; NaN where unscored or stale
    scored_rev: dict[int, int]  # the revision a stale score was about
    priority: np.ndarray
    unscored: np.ndarray
    worst: np.ndarray
    count: np.ndarray
    edges: np.ndarray  # (E, 2) sample indices named by each other's disagreeing-duplicate errors
    calibration: str  # what of the calibration the priorities depend on (:func:`calibration_key`)
    order: np.ndarray | None = None  # the unfiltered queue's places and shared priorities (queue_order's)
    shared: np.ndarray | None = None
    trusted_over: np.ndarray | None = None  # the pair partner the other signals tell is wrong (-1: none)

    def to_bytes(self) -> bytes:
        stale = np.full(len(self.score), NO_REVISION)
        if self.scored_rev:
            stale[list(self.scored_rev)] = list(self.scored_rev.values())
        heads = np.array([NO_REVISION if h is None else int(h) for h in self.heads], np.int64)
        arrays = {
            "ids": np.frombuffer(SEPARATOR.join(self.ids).encode(), np.uint8),
            "heads": heads,
            "positions": np.asarray(self.positions, np.int64),
            "score": self.score,
            "scored_rev": stale,
            "priority": self.priority,
            "unscored": self.unscored,
            "worst": self.worst,
            "count": self.count,
            "edges": self.edges.reshape(-1, 2).astype(np.int64),
        }
        if self.order is not None:
            arrays["order"], arrays["shared"] = self.order, self.shared
        if self.trusted_over is not None:
            arrays["trusted_over"] = self.trusted_over
        signals = list(self.judged)
        for i, m in enumerate(signals):
            arrays[f"value{i}"] = self.judged[m].value
            arrays[f"stale{i}"] = self.judged[m].stale
        meta = {"method": self.method, "model": self.model, "signals": signals, "calibration": self.calibration}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QueueState:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        meta = json.loads(a["meta"].tobytes().decode())
        stale = a["scored_rev"]
        at = np.flatnonzero(stale != NO_REVISION)
        ids = a["ids"].tobytes().decode().split(SEPARATOR) if len(a["heads"]) else []
        heads = [None if h == NO_REVISION else h for h in a["heads"].tolist()]
        return cls(
            ids,
            heads,
            a["positions"],
            meta["method"],
            meta["model"],
            {m: Standings.of(a[f"value{i}"], a[f"stale{i}"]) for i, m in enumerate(meta["signals"])},
            a["score"],
            dict(zip(at.tolist(), stale[at].tolist())),
            a["priority"],
            a["unscored"],
            a["worst"],
            a["count"],
            a["edges"],
            meta["calibration"],
            a.get("order"),
            a.get("shared"),
            a.get("trusted_over"),
        )


def calibration_key(calibration) -> str:
    """The part of a calibration the priorities depend on, as text (a new calibration re-computes them)."""
    if calibration is None:
        return ""
    return json.dumps([calibration.bias, sorted(calibration.weights.items())])


def _usable(calibration, judged: dict):
    """The calibration, or None when it weighs signals no longer stored (the plain rule until QC or ranking
    runs again)."""
    if calibration is not None and not {m for m, w in calibration.weights.items() if w > 0} <= set(judged):
        return None
    return calibration


def compute(root, cols: dict, method: str | None, free: list[str], checks: set | None):
    """(:class:`QueueState`, calibration, the items' words) from the workspace's columns ``cols``
    (``Workspace.queue_columns``), ranking by ``method`` beside the model-free signals ``free``, folding in
    the findings of ``checks`` (None: all); ``root``: the workspace's folder (its calibration)."""
    from medseg.qc import reliability

    ids, heads = cols["ids"], cols["heads"]
    n = len(ids)
    at = {sid: k for k, sid in enumerate(ids)}
    model = method if method is not None and method not in free else None
    rows = {m: cols["scores"].get(m, []) for m in {*free, method} if m is not None}
    judged = {m: _signal_standings(rows[m], at, heads, n) for m in free}
    if model is not None:
        judged[model] = _model_standings(rows[model], at, dict(zip(ids, cols["groups"])), heads, n)
    calibration = _usable(reliability.calibration(root, model), judged)
    if calibration is None:
        dice = {r[0]: {"dice": r[3]} for r in rows.get(model, ()) if r[3] is not None}
        combined = weighted_mean(_plain_weights(judged, model, dice), judged, n, UNJUDGED_STANDING)
    else:
        # a sum, not a max: adding k x the largest single excess (weight x (0.5 - standing)) put every grown
        # and shifted outline but one into the first fifth of the choosing side (bench_rank.py, seeds 0-1) yet
        # pushed other kinds out: 93 / 93 % -> 86 / 88 % (k 0.5), 86 / 85 % (k 1), AUROC 0.990 / 0.994 -> 0.986 / 0.990
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
    stale = np.zeros(n, bool)
    for s in judged.values():
        stale |= s.stale
    stale[list(scored_rev)] = True
    edges = _pair_edges(found, at)
    trusted = told_pairs(edges, combined, stale)
    # a told pair names each other no more (the trusted label's error reads as info): its two edges go
    told = (trusted[edges[:, 0]] == edges[:, 1]) | (trusted[edges[:, 1]] == edges[:, 0])
    ruled = {k: told_rows(rows, ids[trusted[k]]) if trusted[k] >= 0 else rows for k, rows in found.items()}
    penalty, worst, count = np.zeros(n), np.full(n, -1), np.zeros(n, np.int64)
    for k, fs in ruled.items():
        penalty[k] = sum(FINDING_PENALTY[s] if not (c in IMAGE_CHECKS and s != "error") else 0.0 for _, c, s, *_ in fs)
        worst[k] = max(severity_rank(f[2]) for f in fs)
        count[k] = len(fs)
    state = QueueState(
        ids,
        heads,
        cols["positions"],
        method,
        model,
        judged,
        score,
        scored_rev,
        combined - penalty,
        np.isnan(score),
        worst,
        count,
        edges[~told],
        calibration_key(calibration),
        trusted_over=trusted,
    )
    return state, calibration, ReadWords(rows, found)


def told_pairs(edges: np.ndarray, combined: np.ndarray, stale: np.ndarray | None = None) -> np.ndarray:
    """For each sample, the index of its disagreeing copy that the signals tell is the wrong one, -1 where they
    do not: a pair of copies (each the other's only partner) whose combined values differ by ``PAIR_MARGIN`` or
    more. Copies cannot tell which of two labels is wrong; the rest of the evidence often can (a shifted or
    grown copy of an outline its picture's edges and its neighbouring frames reject). Not where a signal
    judged an earlier label of either copy (``stale``): a person corrected one since, its stale standings
    presume it right, and its copy would be called wrong on evidence about a label that is gone. ``edges``:
    :func:`_pair_edges`."""
    out = np.full(len(combined), -1, np.int64)
    stale = np.zeros(len(combined), bool) if stale is None else stale
    partners: dict[int, list[int]] = {}
    for k, j in edges.tolist():
        partners.setdefault(k, []).append(j)
    for k, js in partners.items():
        j = js[0]
        if len(js) == 1 and len(partners[j]) == 1 and not (stale[k] or stale[j]):
            if combined[k] - combined[j] >= PAIR_MARGIN:
                out[k] = j
    return out


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


def _pair_edges(found: dict, at: dict) -> np.ndarray:
    """(sample, partner) indices of every pair of samples whose disagreeing-duplicate errors name each other.
    An odd one out's error names copies whose own findings are info (:mod:`medseg.qc.duplicates_odd`): they
    are likely right, and not pulled up with it."""
    named = set()
    for k, rows in found.items():
        for row in rows:
            if row[1] != PAIR_CHECK or row[2] != "error":
                continue
            for other in pair_partners(finding_of(row)):
                j = at.get(other)
                if j is not None:
                    named.add((k, j))
    return np.array(sorted(e for e in named if e[::-1] in named), np.int64).reshape(-1, 2)


def _pair_groups(keep: np.ndarray, edges: np.ndarray) -> list[list[int]]:
    """Item indices (into ``keep``) of the samples named by each other's disagreeing-duplicate errors."""
    if not len(edges):
        return []
    place = {int(k): i for i, k in enumerate(keep.tolist())}
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, j in edges.tolist():
        if k in place and j in place:
            parent[root(place[j])] = root(place[k])
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(root(i), []).append(i)
    return [m for m in members.values() if len(m) > 1]


def model_weight(details: dict[str, dict]) -> float:
    """The model's say beside the outline's (which counts 1): its median Dice with the labels, 1 without Dice."""
    dice = [float(d["dice"]) for d in details.values() if d.get("dice") is not None and math.isfinite(d["dice"])]
    return float(min(1.0, max(0.05, sorted(dice)[len(dice) // 2]))) if dice else 1.0
