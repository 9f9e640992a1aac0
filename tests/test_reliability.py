"""Reliability calibration (issue 17): signals measured on errors planted in the workspace's own labels."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from medseg.qc import qc, review_queue
from medseg.qc.checks_base import DatasetContext
from medseg.qc.corruptions import corrupt
from medseg.qc.reliability import Calibration, auroc, calibrate_qc, calibration, fit, load
from medseg.qc.reliability_model import calibrate_model
from medseg.qc.signals import SIGNALS, Signal, own_measure
from medseg.qc.sources import WorkspaceSource
from medseg.workspace import Workspace

KINDS = ("shift", "dilate", "erode", "missing", "extra", "other_frame")


def ellipse(shape, cy, cx, ry, rx) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_set(root, n: int = 40, size: int = 64, wrong: int = 10, seed: int = 0) -> tuple:
    """``n`` noisy images of one bright ellipse each (two for every fifth); ``wrong`` of the masks corrupted
    the ways of medseg.qc.corruptions. Returns (root, {planted sample: kind})."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shape = (size, size)
    objs = []
    for k in range(n):
        ry, rx = rng.uniform(size * 0.12, size * 0.2, 2)
        obj = ellipse(shape, rng.uniform(ry + 2, size - ry - 2), rng.uniform(rx + 2, size - rx - 2), ry, rx)
        if k % 5 == 0:
            obj |= ellipse(shape, 6, 6, 4, 4)
        img = ndi.gaussian_filter(rng.normal(60, 20, (*shape, 3)), (1, 1, 0))
        img[obj] += 110
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"f{k:02d}.png")
        objs.append(obj)
    planted = {f"f{k:02d}": KINDS[j % len(KINDS)] for j, k in enumerate(rng.choice(n, wrong, replace=False))}
    for k, obj in enumerate(objs):
        sid = f"f{k:02d}"
        label = obj if sid not in planted else corrupt(planted[sid], obj, rng, objs[(k + 3) % n])
        Image.fromarray((np.asarray(label) > 0).astype(np.uint8) * 255).save(root / "masks" / f"{sid}.png")
    return root, planted


def queue_auroc(queue, planted) -> float:
    """Chance that a planted error comes before a clean label in the queue."""
    pos = [k for k, i in enumerate(queue) if i.sample_id in planted]
    neg = [k for k, i in enumerate(queue) if i.sample_id not in planted]
    return float(np.mean([[p < q for q in neg] for p in pos]))


def _area(table, ctx, sid, own):
    fg = own_measure(table, sid, own, "foreground")
    if not fg:
        return None
    n = [max(1, v["n"]) for v in table["foreground"].values() if v]
    return -abs(math.log(max(1, fg["n"]) / float(np.median(n))))


def _noise(table, ctx, sid, own):  # says the same of every label of a sample, whatever it is
    return zlib.crc32(sid.encode()) / 2**32


AREA = Signal("t-area", "object size", "an object unlike the dataset's in size", ("foreground",), _area)
NOISE = Signal("t-noise", "a coin", "the coin fell badly", ("foreground",), _noise)


@pytest.fixture
def planted_ws(tmp_path):
    root, planted = make_set(tmp_path / "data")
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        yield ws, planted


def test_calibration_finds_a_planted_signal_reliable_and_a_noise_signal_not(planted_ws, monkeypatch):
    from medseg.qc.checks_registry import FEATURES

    ws, _ = planted_ws
    monkeypatch.setitem(SIGNALS, AREA.method, AREA)
    monkeypatch.setitem(SIGNALS, NOISE.method, NOISE)
    src = WorkspaceSource(ws)
    ids = src.sample_ids()
    table = {"foreground": {sid: FEATURES["foreground"](src.load(sid, False)) for sid in ids}}
    ctx = DatasetContext(ids, {s: s for s in ids}, {s: src.path(s) for s in ids})
    state = calibrate_qc(src, table, ctx, [AREA.method, NOISE.method])
    cal = Calibration.from_dict(state["calibrations"][""])
    non_empty = sum(bool(ws.current_mask(s).any()) for s in ids)
    assert cal.n_pairs == non_empty and set(cal.kinds) == set(KINDS)  # every non-empty label, kinds in turn
    assert cal.auroc["t-area"] > 0.7 and cal.weights["t-area"] > 0
    assert cal.auroc["t-noise"] == pytest.approx(0.5) and cal.weights["t-noise"] == 0.0
    # a label the area signal puts worst is judged more likely wrong than one it puts in the middle
    assert cal.combined({"t-area": 0.0, "t-noise": 0.9}) < cal.combined({"t-area": 0.5, "t-noise": 0.0})
    # the same planting every time: the pairs are the same, so a later ranking can add its model's standings
    again = calibrate_qc(src, table, ctx, [AREA.method, NOISE.method])
    assert [(p["sample_id"], p["kind"], p["seed"]) for p in again["pairs"]] == [
        (p["sample_id"], p["kind"], p["seed"]) for p in state["pairs"]
    ]


def test_qc_keeps_the_model_calibration_of_the_last_ranking_and_drops_others(planted_ws, monkeypatch):
    from medseg.qc.checks_registry import FEATURES
    from medseg.qc.reliability import save

    ws, _ = planted_ws
    monkeypatch.setitem(SIGNALS, AREA.method, AREA)
    src = WorkspaceSource(ws)
    ids = src.sample_ids()
    table = {"foreground": {sid: FEATURES["foreground"](src.load(sid, False)) for sid in ids}}
    ctx = DatasetContext(ids, {s: s for s in ids}, {s: src.path(s) for s in ids})
    ranked = {"weights": {"oof-k5": 2.0}, "bias": -1.0, "auroc": {"oof-k5": 0.8}, "found": {}, "n_pairs": 20}
    save(ws.root, {"pairs": [], "signals": [], "calibrations": {"oof-k5": ranked, "oof-k3": ranked}})
    # QC in the viewer cannot score the model against new planted copies (the torch side): it keeps what the
    # ranking measured for the model the queue ranks by, and nothing for another one
    state = calibrate_qc(src, table, ctx, [AREA.method], model="oof-k5")
    assert state["calibrations"]["oof-k5"] == ranked and "oof-k3" not in state["calibrations"]
    assert "" in state["calibrations"]
    assert "oof-k5" not in calibrate_qc(src, table, ctx, [AREA.method])["calibrations"]


def test_fit_weighs_only_signals_above_chance_and_keeps_weights_non_negative():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(60):
        good_p, good_o = rng.uniform(0, 0.4), rng.uniform(0.3, 1)
        pairs.append(
            {
                "kind": "shift",
                "planted": {"good": good_p, "backwards": 1 - good_p, "noise": rng.random()},
                "original": {"good": good_o, "backwards": 1 - good_o, "noise": rng.random(), "absent": None},
            }
        )
    cal = fit(pairs, ["good", "backwards", "noise"])
    assert cal.auroc["good"] > 0.9 and cal.weights["good"] > 0
    assert cal.auroc["backwards"] < 0.1 and cal.weights["backwards"] == 0.0  # never counted the wrong way
    assert cal.weights["noise"] == 0.0 or cal.auroc["noise"] > 0.55
    assert fit(pairs[:5], ["good"]) is None  # too few pairs to say anything
    assert auroc(np.array([0.1, 0.2]), np.array([0.5, 0.2])) == pytest.approx(0.875)


def _useless_model(ws, method: str = "oof-k5") -> None:
    """A model that learnt nothing: each sample's probabilities are another sample's blurred mask."""
    from medseg.qc.label_scores import label_score
    from medseg.qc.prediction_store import save_prediction

    records = ws.samples()
    rng = np.random.default_rng(7)
    scores, details = {}, {}
    for k, rec in enumerate(records):
        other = ws.current_mask(records[(k * 7 + 3) % len(records)].id).astype(float)
        probs = np.clip(ndi.gaussian_filter(other, 3) * 0.9 + 0.05 + rng.normal(0, 0.02, other.shape), 0, 1)[None]
        run = f"rank:{method}:fold0@test"
        save_prediction(ws.root, method, rec.id, probs, run)
        result = label_score(probs, ws.current_mask(rec.id), ws.classmap)
        scores[rec.id] = result.score
        details[rec.id] = {**result.to_dict(), "revision": rec.head_revision, "run": run, "out_of_fold": True}
    ws.set_scores(method, scores, details)


def test_a_useless_model_does_not_lower_the_queue_auroc(planted_ws):
    ws, planted = planted_ws
    qc(ws, workers=1)
    free = calibration(ws.root, None)
    assert free is not None and free.n_pairs >= 30
    before = queue_auroc(review_queue(ws), planted)
    _useless_model(ws)
    plain = queue_auroc(review_queue(ws), planted)  # no calibration for the model yet: the plain rule
    cal = calibrate_model(ws, "oof-k5")
    assert cal is not None and cal.model == "oof-k5" and "oof-k5" in cal.auroc
    queue = review_queue(ws)
    after = queue_auroc(queue, planted)
    assert after >= before - 0.02, (before, plain, after, cal.auroc, cal.weights)
    assert after >= plain
    # the calibration is stored in the workspace with what it measured
    state = load(ws.root)
    assert set(state["calibrations"]) == {"", "oof-k5"} and all("oof-k5" in p["planted"] for p in state["pairs"])
    if cal.weights["oof-k5"] == 0.0:  # the rows say the model counted nothing
        row = next(i for i in queue if i.score is not None)
        assert any("not counted" in s for s in row.signals)


def test_a_planted_signal_names_itself_in_the_rows_it_moved(planted_ws, monkeypatch):
    from medseg.qc.checks_base import Check
    from medseg.qc.checks_registry import CHECKS
    from medseg.qc.signals import signal_scores

    ws, planted = planted_ws
    monkeypatch.setitem(SIGNALS, AREA.method, AREA)
    check = Check(
        "t_area",
        "dataset",
        "test: object size",
        needs=("foreground",),
        decide=lambda table, ctx, p: [],
        scores=(AREA.method, lambda table, ctx: signal_scores(AREA, table, ctx)),
    )
    monkeypatch.setitem(CHECKS, check.name, check)
    qc(ws, checks=["t_area"], workers=1)
    cal = calibration(ws.root, None)
    assert cal is not None and cal.weights == {"t-area": pytest.approx(cal.weights["t-area"])}
    queue = review_queue(ws)
    first = queue[0]
    assert first.standings["t-area"] <= 0.2
    assert first.signals[0].startswith("an object unlike the dataset's in size (a signal that finds ")
    assert f"{cal.found['t-area']:.0%} of planted errors here)" in first.signals[0]
    assert queue_auroc(queue, planted) > 0.6


def test_a_label_at_one_signals_very_worst_counts_more_than_a_linear_sum_would_give_it():
    from medseg.qc.queue_index import Standings, calibrated
    from medseg.qc.reliability import suspicion

    assert suspicion(0.5) == 1.0 - 0.5 - 0.3 * math.log(0.5)
    assert suspicion(0.0) - suspicion(0.01) == pytest.approx(0.01)  # below the floor only the linear part grows
    assert suspicion(0.01) > suspicion(0.02) > suspicion(0.5) > suspicion(1.0)
    cal = Calibration({"a": 1.0, "b": 1.0}, -2.0, {"a": 0.8, "b": 0.8}, {"a": 0.5, "b": 0.5}, 100)
    extreme, middling, quiet = {"a": 0.01, "b": 0.9}, {"a": 0.3, "b": 0.3}, {"a": 0.6, "b": 0.7}
    # a linear sum of 1 - standing would put the middling sample first (1.4 against 1.09)
    assert cal.combined(extreme) < cal.combined(middling) < cal.combined(quiet)
    # two moderate signals keep the order a linear sum gives them
    assert cal.combined({"a": 0.2, "b": 0.6}) < cal.combined({"a": 0.4, "b": 0.6})
    # the queue's vectorised rule is the per-sample rule to the bit, an unjudged standing at 0.5
    rows = [extreme, middling, quiet, {"a": None, "b": 0.4}]
    judged = {
        m: Standings(len(rows), {k: r[m] for k, r in enumerate(rows) if r[m] is not None}, set(), 1.0) for m in "ab"
    }
    assert calibrated(cal.bias, cal.weights, judged, len(rows)).tolist() == [cal.combined(r) for r in rows]


def test_a_calibration_stored_for_the_linear_evidence_is_fitted_again_on_its_planted_pairs(planted_ws):
    import json

    from medseg.qc import reliability

    ws, _ = planted_ws
    qc(ws, workers=1)
    _useless_model(ws)
    calibrate_model(ws, "oof-k5")
    state = load(ws.root)
    now = {key: calibration(ws.root, key or None) for key in state["calibrations"]}
    assert all(c is not None and c.evidence == reliability.EVIDENCE for c in now.values())
    # the same state as an earlier release stored it: no version, other weights
    for d in state["calibrations"].values():
        d.pop("evidence")
        d["weights"] = dict.fromkeys(d["weights"], 1.0)
    (ws.root / reliability.FILE).write_text(json.dumps(state))
    for key, fresh in now.items():
        again = calibration(ws.root, key or None)
        assert again.evidence == reliability.EVIDENCE and again.model == fresh.model
        assert again.weights == pytest.approx(fresh.weights) and again.bias == pytest.approx(fresh.bias)
    assert Calibration.from_dict({k: v for k, v in now[""].to_dict().items() if k != "evidence"}).evidence == 1


def test_suspicions_of_an_array_equal_suspicion_of_each_standing_to_the_bit():
    from medseg.qc.reliability import FLOOR, suspicion, suspicions

    x = np.r_[np.random.default_rng(3).random(1000), 0.0, FLOOR / 2, FLOOR, 0.5, 1.0]
    assert suspicions(x).tolist() == [suspicion(v) for v in x.tolist()]
