"""A model's place in the reliability calibration: its predictions scored against each planted copy.

The torch side of :mod:`medseg.qc.reliability` (scoring needs :mod:`medseg.qc.label_scores`, whose metrics
live with training): run at the end of a ranking or a re-score, never by QC in the viewer.
"""

from __future__ import annotations

from medseg.qc.label_scores import label_score
from medseg.qc.model_standing import ModelStanding
from medseg.qc.prediction_store import load_prediction
from medseg.qc.reliability import (
    MIN_PAIRS,
    SEED,
    Calibration,
    _is_volume,
    calibration,
    corrupted,
    fit,
    load,
    plant,
    save,
)


def calibrate_model(ws, method: str) -> Calibration | None:
    """After a ranking stored ``method``: its standings on the stored planted pairs (planted afresh when QC
    has not run), the combination refitted with it, stored. None when too few pairs could be measured."""
    state = load(ws.root)
    heads = {r.id: r.head_revision for r in ws.samples()}
    pairs = [
        p
        for p in state.get("pairs") or ()
        if p.get("sample_id") in heads and p.get("revision") == heads[p["sample_id"]]
    ]
    if len(pairs) < MIN_PAIRS:  # QC has not calibrated (or the labels changed since): plant here, model alone
        ids = [sid for sid in heads if not _is_volume(ws, sid)]
        pairs, masks = plant(ws.current_mask, ids, heads)
        for p in pairs:
            p["original"], p["planted"] = {}, {}
        state = {"pairs": pairs, "signals": [], "calibrations": {}, "seed": SEED}
    else:
        state["pairs"] = pairs
        masks = {}
    _add_model(ws, state, method, masks)
    save(ws.root, state)
    return calibration(ws.root, method)


def _add_model(ws, state: dict, method: str, masks: dict) -> None:
    """Measure ``method``'s standings on the state's pairs, fit the combination with it under its key."""
    scores, details = ws.scores(method), ws.score_details(method)
    records = ws.samples()
    standing = ModelStanding(
        scores, details, {r.id: r.group for r in records}, {r.id: r.head_revision for r in records}
    )
    measured = []
    for p in state["pairs"]:
        sid = p["sample_id"]
        if sid not in standing.scores:
            continue
        stored = load_prediction(ws.root, method, sid)
        if stored is None or details.get(sid, {}).get("run") not in (None, stored[1]):
            continue
        mask = masks[sid] if sid in masks else ws.current_mask(sid)
        partner = None
        if p.get("partner"):
            partner = masks[p["partner"]] if p["partner"] in masks else ws.current_mask(p["partner"])
        probs = stored[0]
        if tuple(probs.shape[1:]) != tuple(mask.shape[:2]):
            continue
        copy = corrupted(p, mask, partner)
        p.setdefault("original", {})[method] = standing.standing_of(sid, standing.scores[sid])
        field = details.get(sid, {}).get("score_field", "score")  # fit-all ranks by its loss (label_scores)
        planted_score = getattr(label_score(probs, copy, ws.classmap), field)
        p.setdefault("planted", {})[method] = standing.standing_of(sid, planted_score)
        measured.append(p)
    # the model's fit uses the pairs it could judge; there, signals it did not see stay at 0.5
    done = fit(measured, [*state.get("signals", []), method], model=method)
    if done is not None:
        state.setdefault("calibrations", {})[method] = done.to_dict()
