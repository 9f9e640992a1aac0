"""Outline fit: does a label's outline follow the image's edges? Crafted cases, the queue, real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from medseg.datasets import open_dataset
from medseg.qc import qc, review_queue
from medseg.qc.checks_outline import outline_measure
from medseg.qc.edge_maps import edge_strength
from medseg.qc.outline_fit import METHOD, dataset_scores, outline_fit
from medseg.qc.queue import model_weight
from medseg.workspace import Workspace
from tests._qc_data import BINARY, view


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.fixture
def scene():
    """A textured RGB picture with one bright round object of radius 16 at (48, 56)."""
    rng = np.random.default_rng(0)
    img = ndi.gaussian_filter(rng.normal(90, 25, (96, 112, 3)), (1.5, 1.5, 0))
    obj = disk((96, 112), 48, 56, 16)
    img[obj] += 70
    return np.clip(img, 0, 255).astype(np.uint8), obj


def measure(image, mask):
    return outline_fit(image, [(1, mask)], channels_last=True)


def test_a_true_outline_is_the_best_edge_around(scene):
    image, obj = scene
    right = measure(image, obj)
    assert right.quality is not None and len(right.objects) == 1
    o = right.objects[0]
    assert o.fit >= 1.0 and o.contrast > 2.0 and o.distinct > 1.0
    assert o.centre == (48, 56) and o.pixels == int(obj.sum())
    assert o.advice() == "its outline is on the strongest edge around"


@pytest.mark.parametrize(
    "wrong,better",
    [
        (lambda m: np.roll(m, 8, axis=0), "moved 8 px up"),  # drawn 8 px too low: the far move fixes it
        (lambda m: np.roll(m, -8, axis=1), "moved 8 px right"),  # drawn 8 px too far left
        (lambda m: ndi.binary_dilation(m, iterations=6), "shrunk by"),
        (lambda m: ndi.binary_erosion(m, iterations=4), "grown by"),
    ],
)
def test_a_wrong_outline_scores_lower_and_says_which_way_to_go(scene, wrong, better):
    image, obj = scene
    right, bad = measure(image, obj), measure(image, wrong(obj))
    assert bad.quality < 0.8 * right.quality
    assert bad.objects[0].fit < 0.9 and bad.objects[0].best_ratio < 0.9
    assert bad.objects[0].better.startswith(better)
    assert bad.objects[0].advice().startswith(better)


def test_an_object_drawn_on_nothing_is_the_worst_of_the_sample(scene):
    image, obj = scene
    extra = disk(obj.shape, 20, 20, 8)  # a second object where the picture is only texture
    m = measure(image, obj | extra)
    assert len(m.objects) == 2
    assert m.worst.centre == (20, 20) and m.quality == m.worst.quality
    assert m.worst.contrast < 0.5 * max(o.contrast for o in m.objects)
    assert m.worst.distinct < 0.5 * max(o.distinct for o in m.objects)  # it looks like its surroundings


def test_the_rim_of_a_dark_surround_is_no_edge_to_follow():
    # an endoscope-like frame: a black octagon surround, a faint object touching nothing
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(120, 6, (96, 96)), 0, 255)
    obj = disk((96, 96), 60, 48, 12)
    img[obj] += 25
    field = disk((96, 96), 48, 48, 44)
    img[~field] = 0
    grey = img.astype(np.uint8)
    edges = edge_strength(grey, False, field)
    assert np.isnan(edges[48, 3]) and np.isnan(edges[48, 47 + 44])  # the rim is not judged
    assert np.isfinite(edges[48, 48])
    # a label drawn 6 px too low, near the rim: without the field the rim pulls it further down
    low = np.roll(obj, 6, axis=0)
    with_field = outline_fit(grey, [(1, low)], channels_last=False, field=field).objects[0]
    assert with_field.better == "moved 6 px up"


def test_nothing_to_judge_gives_no_value(scene):
    image, obj = scene
    assert outline_fit(None, [(1, obj)], channels_last=True).quality is None
    assert outline_fit(image, [], channels_last=True).quality is None
    tiny = np.zeros_like(obj)
    tiny[5:8, 5:8] = True  # 9 px: below min_pixels
    assert outline_fit(image, [(1, tiny)], channels_last=True).quality is None
    assert outline_fit(image[:50], [(1, obj)], channels_last=True).quality is None  # sizes differ
    volume = np.zeros((4, 16, 16), np.uint8)
    volume[1:3, 4:12, 4:12] = 1
    assert outline_measure(view(volume, np.zeros((4, 16, 16), np.uint8))) is None


@pytest.mark.parametrize("shape", [(2, 700), (700, 2), (1, 300), (3, 3)])
def test_strips_a_few_pixels_wide_are_measured_without_failing(shape):
    # moving a 2-pixel-high region by 3 pixels overran the array ("could not broadcast (0,481) into (1,481)")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask.flat[: mask.size // 3] = 1
    image[mask > 0] = 250
    fit = outline_fit(image, [(1, mask.astype(bool))], channels_last=True)
    assert fit.quality is None or np.isfinite(fit.quality)
    outline_measure(view(mask, image))


def test_multiclass_objects_are_judged_per_class(scene):
    image, obj = scene
    other = disk(obj.shape, 20, 90, 9)
    m = outline_fit(image, [(1, obj), (2, other)], channels_last=True)
    assert sorted(o.class_id for o in m.objects) == [1, 2]


def test_the_model_weighs_as_much_as_its_median_dice():
    assert model_weight({"a": {"dice": 0.2}, "b": {"dice": 0.6}, "c": {"dice": 0.9}}) == 0.6
    assert model_weight({}) == 1.0 and model_weight({"a": {"dice": None}}) == 1.0
    assert model_weight({"a": {"dice": 0.0}}) == 0.05  # never silenced entirely


def test_dataset_scores_are_percentiles_worst_first():
    summaries = {
        "a": {"quality": 2.0, "fit": 1.1},
        "b": {"quality": 0.5, "fit": 0.6},
        "c": {"quality": 2.0, "fit": 1.0},
        "d": None,
        "e": {"quality": 1.0, "fit": 0.9},
    }
    scores, details = dataset_scores(summaries)
    assert scores == {"a": pytest.approx(5 / 6), "b": 0.0, "c": pytest.approx(5 / 6), "e": pytest.approx(1 / 3)}
    assert "d" not in details and details["b"]["percentile"] == 0.0 and details["b"]["fit"] == 0.6
    assert dataset_scores({"x": {"quality": 3.0}})[0] == {"x": 0.5}
    assert dataset_scores({"x": None}) == ({}, {})


def _write(root: Path, items: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for sid, (img, mask) in items.items():
        Image.fromarray(img).save(root / "images" / f"{sid}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{sid}.png")
    return root


def test_qc_stores_the_score_and_the_queue_folds_it_in(tmp_path):
    rng = np.random.default_rng(2)
    items = {}
    for k in range(6):
        img = ndi.gaussian_filter(rng.normal(90, 25, (64, 64, 3)), (1.5, 1.5, 0))
        obj = disk((64, 64), 32, 32, 10 + k)
        img[obj] += 70
        label = np.roll(obj, 7, axis=1) if k == 4 else obj  # s4's outline is 7 px off
        items[f"s{k}"] = (np.clip(img, 0, 255).astype(np.uint8), label)
    root = _write(tmp_path / "ds", items)
    with Workspace.create(tmp_path / "ws", root) as ws:
        report = qc(ws, workers=1)
        assert set(report.scores[METHOD]) == set(items)
        outline = ws.scores(METHOD)
        assert min(outline, key=outline.get) == "s4" and outline["s4"] == 0.0
        notes = [f for f in ws.findings(source="qc") if f.check == "outline_fit"]
        assert [f.sample_id for f in notes] == ["s4"] and notes[0].severity == "info"
        assert "moved 7 px left it would follow them" in notes[0].message
        assert "(the worst outline of the 6 judged)" in notes[0].message
        # before any model: the queue ranks by the outline alone
        queue = review_queue(ws)
        assert queue[0].sample_id == "s4" and queue[0].method == METHOD
        assert queue[0].reason.startswith("the worst outline of the 6 judged: moved 7 px left")
        # a model that rates s4 as well as the others: the outline still lifts it above them
        model = {sid: 0.9 - 0.01 * k for k, sid in enumerate(items)}  # s5 the model's worst, s4 next
        ws.set_scores("oof-k3", model, {s: {"dice": v, "out_of_fold": True} for s, v in model.items()})
        queue = review_queue(ws)
        assert queue[0].method == "oof-k3" and queue[0].sample_id == "s4"
        by_id = {i.sample_id: i for i in queue}
        # six labels are too few to plant errors into (no calibration): the standing is the mean of the
        # signals' standings, the model's percentile (s4: 1/5) weighted by its median Dice (0.88), the
        # outline's and every other signal's by 1
        w = model_weight({s: {"dice": v} for s, v in model.items()})
        assert w == pytest.approx(0.88)  # the upper median of six

        def mean(item) -> float:
            said = [(w if m == "oof-k3" else 1.0, v) for m, v in item.standings.items() if v is not None]
            return sum(a * v for a, v in said) / sum(a for a, _ in said)

        assert by_id["s4"].standings["oof-k3"] == pytest.approx(0.2) and by_id["s4"].standings[METHOD] == 0.0
        assert by_id["s4"].priority == pytest.approx(mean(by_id["s4"]))
        assert by_id["s4"].outline == 0.0 and by_id["s4"].score == pytest.approx(0.86)
        assert "; the worst outline of the 6 judged: moved 7 px left" in by_id["s4"].reason
        assert by_id["s5"].standings["oof-k3"] == 0.0
        assert by_id["s5"].priority == pytest.approx(mean(by_id["s5"]))
        assert by_id["s5"].priority > by_id["s4"].priority


def test_real_frames_with_moved_grown_or_shrunk_outlines_rank_below_clean_ones(cvc_dir, tmp_path):
    from medseg.qc.corruptions import corrupt

    root = tmp_path / "cvc"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    wrong = {}
    for n in range(1, 613, 10):  # 62 frames across the videos
        sid = str(n)
        (root / "images" / f"{sid}.png").write_bytes((cvc_dir / "images" / f"{sid}.png").read_bytes())
        mask = np.asarray(Image.open(cvc_dir / "masks" / f"{sid}.png")) > 127
        if n % 30 == 1:  # every third frame kept: 21 corrupted
            kind = ("shift", "dilate", "erode")[len(wrong) % 3]
            mask = corrupt(kind, mask, rng)
            wrong[sid] = kind
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{sid}.png")
    report = qc(open_dataset(root), checks=["outline_fit"], workers=1)
    scores = report.scores[METHOD]
    bad = [scores[s] for s in wrong if s in scores]
    good = [v for s, v in scores.items() if s not in wrong]
    assert len(bad) >= 18 and len(good) >= 35
    auroc = np.mean([[(b < g) + 0.5 * (b == g) for g in good] for b in bad])
    assert auroc > 0.85, auroc


def test_the_suggested_correction_puts_the_outline_back(scene):
    from medseg.datasets import ClassMap
    from medseg.qc.fixes import apply_fix

    image, obj = scene
    low = np.roll(obj, 8, axis=0)  # drawn 8 px too low
    o = measure(image, low).objects[0]
    assert o.correction == ("move", -8, 0)
    ids = low.astype(np.uint8) * 2  # class id 2 of a multiclass map
    ids[5:10, 5:10] = 1  # another class elsewhere stays as it is
    cm = ClassMap.from_names(["a", "b"], task="multiclass")
    fixed, summary = apply_fix(
        "outline_correction", ids, cm, class_id=2, centre=list(o.centre), correction=list(o.correction)
    )
    assert np.array_equal(fixed == 2, obj) and (fixed[5:10, 5:10] == 1).all()
    assert summary["moved"] == int(obj.sum()) and summary["changed"][2] == 2 * int((low & ~obj).sum())
    for wrong, name in (
        (ndi.binary_dilation(obj, iterations=4), "shrink"),
        (ndi.binary_erosion(obj, iterations=4), "grow"),
    ):
        o = measure(image, wrong).objects[0]
        assert o.correction[0] == name
        fixed, _ = apply_fix(
            "outline_correction",
            wrong.astype(np.uint8),
            BINARY,
            class_id=1,
            centre=list(o.centre),
            correction=list(o.correction),
        )
        iou = (fixed.astype(bool) & obj).sum() / (fixed.astype(bool) | obj).sum()
        before = (wrong & obj).sum() / (wrong | obj).sum()
        assert iou > before + 0.1  # one step of a quarter or half radius: closer, not always exact


def test_a_malformed_correction_in_a_hand_edited_finding_is_a_clear_fix_error(scene):
    from medseg.qc.fixes import FixError, apply_fix

    _, obj = scene
    mask = obj.astype(np.uint8)
    good = {"class_id": 1, "centre": [32, 32]}
    for bad, words in (
        (["move", 3], "must be"),
        (["twist", 2], "must be"),
        (["grow", -1], "k > 0"),
        (["shrink", "2"], "must be"),
        ("grow", "must be"),
    ):
        with pytest.raises(FixError, match=words):
            apply_fix("outline_correction", mask, BINARY, **good, correction=bad)
    with pytest.raises(FixError, match="class 3 is not in the class map"):
        apply_fix("outline_correction", mask, BINARY, class_id=3, centre=[32, 32], correction=["grow", 2])
    with pytest.raises(FixError, match="centre"):
        apply_fix("outline_correction", mask, BINARY, class_id=1, centre=None, correction=["grow", 2])
    # a centre outside the image takes the nearest object instead of failing
    fixed, summary = apply_fix(
        "outline_correction", mask, BINARY, class_id=1, centre=[-50, 900], correction=["grow", 2]
    )
    assert summary["moved"] == int(obj.sum()) and fixed.sum() > mask.sum()


def test_the_correction_is_offered_but_saved_only_when_named(tmp_path):
    from medseg.qc.fixes import offer_fixes

    rng = np.random.default_rng(3)
    items = {}
    for k in range(4):
        img = ndi.gaussian_filter(rng.normal(90, 25, (64, 64, 3)), (1.5, 1.5, 0))
        obj = disk((64, 64), 32, 32, 12)
        img[obj] += 70
        items[f"s{k}"] = (np.clip(img, 0, 255).astype(np.uint8), np.roll(obj, 7, axis=1) if k == 2 else obj)
    root = _write(tmp_path / "ds", items)
    with Workspace.create(tmp_path / "ws", root) as ws:
        report = qc(ws, workers=1)
        (note,) = [f for f in report.findings if f.check == "outline_fit"]
        assert note.sample_id == "s2" and note.fix == "outline_correction"
        assert offer_fixes(ws, report.findings) == []  # a suggestion is not applied in bulk
        (rev,) = offer_fixes(ws, report.findings, names=["outline_correction"])
        assert rev.origin == "auto-fix" and rev.note.startswith("auto-fix outline_correction: outline moved by")
        fixed = ws.current_mask("s2") > 0
        truth, drawn = items["s0"][1], items["s2"][1]  # the same disk, where s2's image has it
        iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
        assert iou(fixed, truth) > 0.85 > iou(drawn, truth)  # moved 6 of the 7 px back
        ws.revert("s2", rev.parent_id)  # one call takes it back
        assert np.array_equal(ws.current_mask("s2") > 0, items["s2"][1])
        # the stored outline fits say which revision they judged; a changed label drops out of the standing
        details = ws.score_details("outline-fit")
        assert details["s1"]["revision"] == ws.sample("s1").head_revision
        assert details["s2"]["revision"] != ws.sample("s2").head_revision  # judged before the fix
        by_id = {i.sample_id: i for i in review_queue(ws, method="outline-fit")}
        assert by_id["s2"].score is None and "scored an earlier label" in by_id["s2"].reason
        assert by_id["s1"].outline is not None
        ws.set_scores("oof-k2", {s: 0.5 for s in items}, {s: {"dice": 0.5} for s in items})
        by_id = {i.sample_id: i for i in review_queue(ws, method="oof-k2")}
        assert by_id["s2"].outline is None and "judged" not in by_id["s2"].reason
        assert by_id["s1"].outline is not None and "judged" in by_id["s1"].reason


@pytest.mark.parametrize(
    "shape, channels_last",
    [((48, 64, 3), True), ((288, 384, 3), True), ((300, 400), False), ((40, 30, 4), True), ((20, 25, 2), True)],
)
def test_edge_strength_equals_one_gradient_magnitude_per_channel_to_the_bit(shape, channels_last):
    """The channels are filtered in one call; the values must be those of one ndimage call per channel."""
    a = (np.random.default_rng(sum(shape)).random(shape) * 255).astype(np.uint8)
    planes = [a[..., c] for c in range(min(a.shape[-1], 3))] if channels_last else [a]
    planes = [p.astype(np.float32) for p in planes]
    sigma = max(1.0, min(planes[0].shape) / 150.0)
    want = np.zeros(planes[0].shape, np.float32)
    for p in planes:
        want += ndi.gaussian_gradient_magnitude(p, sigma) ** 2
    np.testing.assert_array_equal(edge_strength(a, channels_last), np.sqrt(want))
