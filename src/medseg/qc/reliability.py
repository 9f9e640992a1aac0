"""How far each label-quality signal can be trusted on *this* dataset, measured by planting errors in it.

No signal is equally good everywhere: an outline fit separates errors on
sharp endoscopy frames and not on a blurry ultrasound, and fold models that
reached Dice 0 on a small new dataset rank worse than chance. So the queue
does not weigh signals by rules chosen on another dataset; it measures them
here:

1. Up to ``MAX_PAIRS`` random non-empty 2-D samples get a copy of their label
   corrupted in one of the ways of :mod:`medseg.qc.corruptions` (the kinds in
   turn; ``grey_noise`` is left out: binarised, it is the original mask, and
   only the ``mask_values`` rule, a finding, can see it).
2. For each copy and its original, every signal's *standing* is taken: where
   that label would stand among the dataset's judged samples (0 = below
   every one of them). Model-free signals (:mod:`medseg.qc.signals`) are
   asked with the copy's own measures recomputed on its corrupted mask
   (``signals.standing_of``); a model is asked with its stored out-of-fold
   probabilities (:func:`medseg.qc.prediction_store.load_prediction`) scored
   against the corrupted mask (:func:`medseg.qc.label_scores.label_score`).
3. A signal's AUROC separating the planted copies from the originals is its
   measured reliability; ``found`` is the share of planted copies it put in
   the dataset's worst fifth (what a queue row quotes). A signal that cannot
   judge a label stands at 0.5 there.
4. The combination is an L2-regularised logistic regression on the signals'
   suspicions (:func:`suspicion`: 1 - standing plus a term that grows at the
   dataset's very worst; a standing of 0.5 where unjudged), numpy only, with weights
   held >= 0 (a signal never counts backwards). A signal with AUROC <=
   ``USELESS_AUROC`` gets no weight: a useless model cannot drag the queue down.

The result (:class:`Calibration`: weights, per-signal AUROC and share found,
the number of pairs, when, which model) is stored in the workspace
(``reliability.json``, written atomically) with the planted pairs, so that a
ranking run later adds the model's standings to the same pairs without
decoding an image: QC calibrates at its end (:func:`calibrate_qc`), a ranking
at its end (:func:`medseg.qc.reliability_model.calibrate_model`), per model method.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import MedsegError, WorkspaceError
from medseg.qc.corruptions import KINDS, corrupt

FILE = "reliability.json"
MAX_PAIRS = 150
MIN_PAIRS = 12  # fewer planted copies say nothing reliable: the queue keeps its plain rule
USELESS_AUROC = 0.55
WORST_SHARE = 0.2  # "found": a planted copy standing in the dataset's worst fifth
# weak: 150 planted pairs pin the weights down; 1.0 shrank the strongest signal (the fitted model) towards the
# others. Choosing side of benchmarks/bench_rank.py (frames 1-297, seeds 0-1, with medseg.qc.refit's outlines):
# first 20 % 92 / 92 % at 1.0, 93 / 93 % at 0.3, 95 / 93 % at 0.03 (AUROC 0.989 / 0.992 -> 0.990 / 0.994)
L2 = 0.03
PLANT_KINDS = tuple(k for k in KINDS if k != "grey_noise")
# a standing's evidence: 1 - standing, plus EXTREME x -ln(standing) (floored at FLOOR, the worst hundredth), so
# that a label one signal puts among the dataset's very worst counts more than a linear sum gives it (a grown
# outline the image's edges reject while the fitted model, which learnt it, accepts it). Choosing sides of
# benchmarks/bench_rank.py, re-scored from stored predictions: frames 298-408 (eight seeds) first 20 % 90.9 ->
# 93.2 %, AUROC 0.988 -> 0.990; frames 1-297 (seeds 0-1) 94.1 % either way, AUROC 0.996 -> 0.995; no run fell.
# EXTREME 0.1 gave the same shares; -ln alone 93.2 / 93.2 % (frames 1-297 fell); the floor at 0.005 or 0.03 alike
EXTREME = 0.3
FLOOR = 0.01
EVIDENCE = 2  # the version of suspicion() a calibration's weights were fitted for (1: 1 - standing alone)


def suspicion(standing: float) -> float:
    """What a standing adds to the evidence before its weight (0.5 for a signal that did not judge): the
    comment above; :func:`suspicions` of one standing, so the per-sample rule and the queue's agree to the bit."""
    return float(suspicions(np.array([standing], dtype=float))[0])


def suspicions(standings: np.ndarray) -> np.ndarray:
    """:func:`suspicion` of each standing (no NaN). ``math.log`` element by element: numpy's log may give
    another last bit depending on where in an array a value sits."""
    x = np.asarray(standings, dtype=float)
    logs = np.fromiter(map(math.log, np.maximum(x, FLOOR).tolist()), float, len(x))
    return 1.0 - x - EXTREME * logs


SEED = 0


@dataclass(frozen=True)
class Calibration:
    """One fitted combination: ``weights`` per signal method (0 = no say), ``bias``; ``auroc`` and ``found``
    per signal measured; ``model`` the model method in it (None: model-free); ``n_pairs`` planted copies;
    ``evidence``: the version of :func:`suspicion` the weights were fitted for."""

    weights: dict[str, float]
    bias: float
    auroc: dict[str, float]
    found: dict[str, float]
    n_pairs: int
    model: str | None = None
    when: str = ""
    kinds: dict[str, int] = field(default_factory=dict)
    evidence: int = EVIDENCE

    def combined(self, standings: dict[str, float | None]) -> float:
        """1 - the chance (on a planted set half wrong) that the label is wrong: lower = look first."""
        z = self.bias
        for m, w in self.weights.items():
            x = standings.get(m)
            z += w * suspicion(0.5 if x is None else float(x))
        return 1.0 - 1.0 / (1.0 + math.exp(-z))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"evidence": 1, **{k: v for k, v in d.items() if k in names}})  # stored before versions: 1


# planting ------------------------------------------------------------------------------------------------
def plant(load, ids: list[str], revisions, seed: int = SEED) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Up to ``MAX_PAIRS`` planted pairs over random non-empty 2-D samples of ``ids`` (``load(sample)``: its
    canonical mask, None to skip it; ``revisions.get(sample)``: its head revision, asked of the chosen only),
    kinds in turn: ([{sample_id, revision, kind, cls, partner, seed}], {sample: mask} of the chosen)."""
    rng = np.random.default_rng(seed)
    masks: dict[str, np.ndarray] = {}
    for k in rng.permutation(len(ids)):
        mask = load(ids[k])
        if mask is not None and _plantable(mask):
            masks[ids[k]] = mask
            if len(masks) >= MAX_PAIRS:
                break
    chosen = list(masks)
    pairs = []
    for k, sid in enumerate(chosen):
        kind = PLANT_KINDS[k % len(PLANT_KINDS)]
        present = _classes(masks[sid])
        cls = int(present[rng.integers(len(present))])
        partner = None
        if kind == "other_frame":
            others = [o for o in chosen if o != sid and masks[o].shape == masks[sid].shape]
            if not others:
                kind = "shift"
            else:
                partner = others[int(rng.integers(len(others)))]
        pairs.append(
            {
                "sample_id": sid,
                "revision": revisions.get(sid),
                "kind": kind,
                "cls": cls,
                "partner": partner,
                "seed": seed * 100_003 + k,
            }
        )
    return pairs, masks


def _plantable(mask: np.ndarray) -> bool:
    return mask.ndim in (2, 3) and (mask.ndim == 2 or mask.dtype == bool) and bool(np.any(mask))


def _classes(mask: np.ndarray) -> list[int]:
    if mask.ndim == 3:  # multilabel (H, W, C): channel indices
        return [c for c in range(mask.shape[-1]) if mask[..., c].any()]
    return [int(v) for v in np.unique(mask) if v != 0]


def corrupted(pair: dict, mask: np.ndarray, partner: np.ndarray | None = None) -> np.ndarray:
    """The pair's corrupted copy of ``mask`` (canonical form kept), the same every time it is asked."""
    rng = np.random.default_rng(int(pair["seed"]))
    cls = int(pair["cls"])
    multilabel = mask.ndim == 3
    own = mask[..., cls] if multilabel else mask == cls
    other = None
    if partner is not None:
        other = partner[..., cls] if multilabel else (partner == cls if np.any(partner == cls) else partner > 0)
    new = np.asarray(corrupt(pair["kind"], own, rng, other)) > 0
    out = mask.copy()
    if multilabel:
        out[..., cls] = new
    else:
        out[own & ~new] = 0
        out[new] = cls
    return out


# measuring -----------------------------------------------------------------------------------------------
def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Chance that a planted copy (``pos``) stands lower than an original (``neg``), ties half."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    ref = np.sort(neg)
    above = len(ref) - np.searchsorted(ref, pos, side="right")
    ties = np.searchsorted(ref, pos, side="right") - np.searchsorted(ref, pos, side="left")
    return float((above + 0.5 * ties).sum() / (len(pos) * len(neg)))


def fit(pairs: list[dict], methods: list[str], model: str | None = None) -> Calibration | None:
    """The combination of ``methods`` measured on ``pairs`` (each with "planted"/"original" standings);
    None with fewer than ``MIN_PAIRS`` pairs."""
    if len(pairs) < MIN_PAIRS:
        return None

    def column(which: str, m: str) -> np.ndarray:
        return np.array([_impute(p[which].get(m)) for p in pairs], dtype=float)

    aurocs, found = {}, {}
    for m in methods:
        planted, original = column("planted", m), column("original", m)
        aurocs[m] = auroc(planted, original)
        found[m] = float(np.mean(planted <= WORST_SHARE))
    used = [m for m in methods if aurocs[m] > USELESS_AUROC]
    weights, bias = {}, 0.0
    while used:
        X = np.vstack([np.column_stack([suspicions(column(w, m)) for m in used]) for w in ("planted", "original")])
        y = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
        coef = _logistic(X, y)
        if (coef[1:] >= 0).all():
            bias, weights = float(coef[0]), {m: float(c) for m, c in zip(used, coef[1:])}
            break
        used = [m for m, c in zip(used, coef[1:]) if c > 0]  # held >= 0: drop those that came out negative
    if not weights:
        bias = 0.0
    kinds: dict[str, int] = {}
    for p in pairs:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    return Calibration(
        {m: weights.get(m, 0.0) for m in methods},
        bias,
        aurocs,
        found,
        len(pairs),
        model,
        time.strftime("%Y-%m-%dT%H:%M:%S"),
        kinds,
    )


def _impute(x) -> float:
    return 0.5 if x is None or not math.isfinite(x) else float(x)


def _logistic(X: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """[bias, weights] of an L2-regularised logistic regression (the bias not penalised), by Newton steps."""
    A = np.column_stack([np.ones(len(X)), X])
    r = np.r_[0.0, np.ones(X.shape[1])]
    w = np.zeros(A.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -30, 30)))
        g = A.T @ (p - y) + l2 * r * w
        H = A.T @ (A * (p * (1 - p))[:, None]) + np.diag(l2 * r + 1e-9)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


# storing -------------------------------------------------------------------------------------------------
def load(root) -> dict:
    """The stored calibration state ({"pairs": [...], "signals": [...], "calibrations": {key: dict}}), {} if none
    (or unreadable: it is derived data, the next QC or ranking makes it again)."""
    path = Path(root) / FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save(root, state: dict) -> Path:
    from medseg.folder_swap import write_text_atomic

    return write_text_atomic(Path(root) / FILE, json.dumps(state, indent=1))


def calibration(root, model: str | None) -> Calibration | None:
    """The stored calibration for the queue that ranks by ``model`` (None: the model-free one)."""
    state = load(root)
    d = (state.get("calibrations") or {}).get(model or "")
    try:
        stored = Calibration.from_dict(d) if d else None
    except TypeError:
        return None
    if stored is None or stored.evidence == EVIDENCE:
        return stored
    # fitted for another suspicion(): fitted again on the planted pairs it was measured on (milliseconds),
    # rather than its weights applied to evidence they were not fitted for
    pairs = [p for p in state.get("pairs") or () if stored.model is None or stored.model in p.get("planted", {})]
    try:  # a model's combination was fitted on the pairs it judged (reliability_model._add_model)
        return fit(pairs, list(stored.weights), stored.model)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# entry points --------------------------------------------------------------------------------------------
def calibrate_qc(src, table: dict, ctx, methods: list[str], model: str | None = None, seed: int = SEED) -> dict:
    """At the end of QC on a workspace: plant, measure the model-free signals ``methods`` (their scores are
    the ones this run stores), fit, and with ``model`` (a stored model method) fit that one too. The new state,
    to be written with :func:`save` once QC stores its scores."""
    from medseg.qc.checks_registry import FEATURES
    from medseg.qc.signals import SIGNALS, standing_of

    signals = [SIGNALS[m] for m in methods if m in SIGNALS]
    ws = src.ws
    # a sample's record is read only for the planted ones' head revisions: a record of every sample (its
    # paths, hashes and status: 1.5 KB) came on top of QC's measures at its peak (150 MB at 100,000 samples)
    ids = [sid for sid in ctx.sample_ids if _plantable_sample(ws, sid)]
    pairs, masks = plant(ws.current_mask, ids, _HeadRevisions(ws), seed)
    for p in pairs:
        sid = p["sample_id"]
        try:
            view = src.load(sid, False)
        except (MedsegError, OSError, ValueError):  # QC reported it; its pair says nothing
            continue
        copy = dataclasses.replace(view, mask=corrupted(p, masks[sid], masks.get(p["partner"])), _cache={})
        p["original"], p["planted"] = {}, {}
        for s in signals:
            needs = [f for f in s.needs if f in FEATURES]
            own = {f: _measure(FEATURES[f], copy) for f in needs}
            p["original"][s.method] = standing_of(s, table, ctx, sid, None)
            p["planted"][s.method] = standing_of(s, table, ctx, sid, own)
    pairs = [p for p in pairs if "planted" in p]
    # a model's calibration needs its predictions scored against each planted copy, which is the torch
    # side's work (medseg.qc.reliability_model, after a ranking): QC, which runs in the viewer without torch,
    # keeps the one the last ranking or re-score measured until the next one measures it again
    earlier = {k: v for k, v in (load(ws.root).get("calibrations") or {}).items() if k and k == model}
    state = {"pairs": pairs, "signals": [s.method for s in signals], "calibrations": earlier, "seed": seed}
    free = fit(pairs, state["signals"])
    if free is not None:
        state["calibrations"][""] = free.to_dict()
    return state


def _measure(fn, view):
    try:
        return fn(view)
    except (ValueError, MemoryError, IndexError, TypeError):
        return None


def _is_volume(ws, sid: str) -> bool:
    probe = getattr(ws, "is_volume", None)
    return bool(probe(sid)) if probe is not None else False


def _plantable_sample(ws, sid: str) -> bool:
    """A 2-D sample the workspace still holds."""
    try:
        return not _is_volume(ws, sid)
    except WorkspaceError:  # gone since QC listed it
        return False


class _HeadRevisions:
    """``plant``'s revisions: a sample's head revision, read from its row when asked."""

    def __init__(self, ws):
        self._ws = ws

    def get(self, sid: str) -> int | None:
        return self._ws.sample(sid).head_revision
