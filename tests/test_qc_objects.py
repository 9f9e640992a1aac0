"""object_count: a label with more or fewer objects than the rest of its group (video frames, scan slices)."""

from __future__ import annotations

import numpy as np
import pytest
from _qc_data import view
from PIL import Image

from medseg.datasets import ClassMap, open_dataset
from medseg.jobs import Result
from medseg.qc.checks_base import DatasetContext
from medseg.qc.checks_objects import decide_object_count, object_counts
from medseg.qc.checks_registry import CHECKS
from medseg.qc.queue_words import finding_phrase
from medseg.qc.run import run_qc

PARAMS = CHECKS["object_count"].defaults


def disks(size: int = 64, centres=((20, 20),), r: int = 7, value: int = 1) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    m = np.zeros((size, size), np.uint8)
    for cy, cx in centres:
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
    return m


def decide(counts: dict[str, dict], groups: dict[str, str]) -> list:
    ids = list(counts)
    ctx = DatasetContext(ids, groups, {i: f"/d/{i}.png" for i in ids})
    return decide_object_count({"objects": counts}, ctx, PARAMS)


def test_object_counts_ignore_specks_and_count_per_class():
    m = disks(centres=((20, 20), (44, 44)))
    m[2, 60] = 1  # a 1 px speck is the specks check's business, not an object
    assert object_counts(view(m)) == {1: 2}
    mc = disks(centres=((20, 20),), value=1) + disks(centres=((44, 44),), value=2)
    assert object_counts(view(mc, classmap=ClassMap.from_names(["a", "b"]))) == {1: 1, 2: 1}
    assert object_counts(view(np.zeros((64, 64), np.uint8))) == {}


def test_an_extra_object_in_one_frame_of_a_video_is_a_warning():
    counts = {f"v1_{i}": {1: 1} for i in range(8)} | {f"v2_{i}": {1: 2} for i in range(8)}
    counts["v1_3"] = {1: 2}  # an object more than its video mates
    counts["v2_5"] = {1: 1}  # one left out
    groups = {s: s.split("_")[0] for s in counts}
    found = {f.sample_id: f for f in decide(counts, groups)}
    assert set(found) == {"v1_3", "v2_5"}  # v2's frames with 2 objects are normal there
    f = found["v1_3"]
    assert f.severity == "warning" and f.value == 2
    assert f.message == (
        "2 objects where 7 of the other 7 labelled samples of its group (v1) have 1 object: "
        "an object drawn where there is none, or a stray outline?"
    )
    assert f.details["usual"] == {"1": 1}
    assert found["v2_5"].message.endswith("an object left out?")


def test_no_finding_where_counts_vary_groups_are_small_or_labels_empty():
    groups = {}
    counts = {}
    for i in range(10):  # a scan where the organ splits and merges: half 1, half 2 objects
        counts[f"ct_{i}"] = {1: 1 + i % 2}
    for i in range(4):  # a group of 4: too few to know what is usual
        counts[f"small_{i}"] = {1: 3 if i == 0 else 1}
    for i in range(10):  # mostly empty slices: the empty ones do not take part
        counts[f"mr_{i}"] = {1: 1} if i < 3 else {}
    groups = {s: s.split("_")[0] for s in counts}
    assert decide(counts, groups) == []
    # one sample past the dominance threshold: 8 of 9 others share a count (>= 0.8) -> flagged
    counts = {f"g_{i}": {1: 1} for i in range(10)}
    counts["g_0"] = {1: 2}
    counts["g_1"] = {1: 3}
    flagged = {f.sample_id for f in decide(counts, {s: "g" for s in counts})}
    assert flagged == {"g_0", "g_1"}
    counts["g_2"] = {1: 2}  # 7 of 9 others: no longer a clear norm for g_0
    assert "g_0" not in {f.sample_id for f in decide(counts, {s: "g" for s in counts})}


def test_wrong_class_is_named():
    mc = {f"s{i}": {1: 1, 2: 1} for i in range(7)}
    mc["s6"] = {1: 2}
    (f,) = decide(mc, dict.fromkeys(mc, "scan"))
    assert f.sample_id == "s6"
    assert f.message.startswith(
        "2 objects (class 1: 2) where 6 of the other 6 labelled samples of its group "
        "(scan) have 2 objects (class 1: 1, class 2: 1): objects given the wrong class?"
    )


def test_real_cvc_frames_with_a_planted_extra_object(cvc_dir, tmp_path):
    """Frames 1-25 of CVC-ClinicDB (one video, one polyp each) with an ellipse added to frame 7's mask."""
    root = tmp_path / "cvc"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(1, 26):
        for sub in ("images", "masks"):
            (root / sub / f"{i}.png").write_bytes((cvc_dir / sub / f"{i}.png").read_bytes())
    mask = np.asarray(Image.open(root / "masks" / "7.png")) > 127
    h, w = mask.shape
    yy, xx = np.mgrid[:h, :w]
    far = ((yy - 0.15 * h) / 18) ** 2 + ((xx - 0.85 * w) / 30) ** 2 <= 1  # a corner without polyp
    assert not (far & mask).any()
    Image.fromarray(((mask | far) * 255).astype(np.uint8)).save(root / "masks" / "7.png")
    report = None
    for ev in run_qc(open_dataset(root), ["object_count"]):
        report = ev.value if isinstance(ev, Result) else None
    assert [(f.sample_id, f.severity, f.value) for f in report.findings] == [("7", "warning", 2)]


def _video(n: int = 12, seed: int = 0) -> tuple[dict, dict]:
    """Thumbnails of a camera panning over one smooth texture (3 px a frame) and their masks' counts."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    scene = ndimage.gaussian_filter(rng.normal(size=(80, 120)), 3)
    scene = ((scene - scene.min()) / np.ptp(scene) * 255).astype(np.uint8)
    thumbs = {}
    for i in range(n):
        grey = scene[8:56, 3 * i : 3 * i + 64].copy()
        thumbs[f"f{i:02d}"] = {"grey": grey, "mask": np.zeros_like(grey)}
    return thumbs, {sid: {1: 2} for sid in thumbs}


def _decide_video(thumbs: dict, counts: dict) -> dict:
    ids = list(counts)
    ctx = DatasetContext(ids, dict.fromkeys(ids, "video"), {i: f"/d/{i}.png" for i in ids})
    return {f.sample_id: f for f in decide_object_count({"objects": counts, "thumbs": thumbs}, ctx, PARAMS)}


def test_a_view_that_neighbouring_frames_of_the_same_scene_share_is_info_not_a_warning():
    thumbs, counts = _video()
    counts["f04"] = counts["f05"] = {1: 1}  # two frames of one view where one of the two objects is out of sight
    counts["f09"] = {1: 1}  # alone: its neighbours of the same scene all show two
    found = _decide_video(thumbs, counts)
    assert set(found) == {"f04", "f05", "f09"}
    assert found["f09"].severity == "warning" and found["f09"].message.endswith("an object left out?")
    for sid, mate in (("f04", "f05"), ("f05", "f04")):
        f = found[sid]
        assert f.severity == "info" and f.details["same_scene_as"] == mate
        assert f.message.endswith(f"as has neighbouring sample {mate}, which shows the same scene: another view?")
    assert (
        finding_phrase(found["f04"])
        == "1 object, unlike the rest of its group, like neighbouring sample f05 of the same scene"
    )


def test_a_count_shared_with_a_neighbour_of_another_scene_stays_a_warning():
    thumbs, counts = _video()
    counts["f04"] = counts["f05"] = {1: 1}
    rng = np.random.default_rng(7)
    other = rng.integers(0, 256, thumbs["f05"]["grey"].shape).astype(np.uint8)  # a cut to an unrelated picture
    thumbs["f05"] = {"grey": other, "mask": thumbs["f05"]["mask"]}
    found = _decide_video(thumbs, counts)
    assert {sid: f.severity for sid, f in found.items()} == {"f04": "warning", "f05": "warning"}
    assert all("same_scene_as" not in f.details for f in found.values())
    # without thumbnails (volumes, samples without an image) nothing is excused either
    assert {f.severity for f in decide(counts, dict.fromkeys(counts, "video"))} == {"warning"}


@pytest.mark.parametrize("processes", [None, 2])  # serial, and the moves computed by worker processes
def test_real_cvc_video_where_the_camera_turns_away(cvc_dir, tmp_path, processes):
    """CVC-ClinicDB frames 555-571: a video whose polyps mostly show as two. Frames 563 and 564 are one view
    (aligned thumbnails correlate at 0.96) where only one shows: both info; frame 559 shows one where every
    neighbour shows two: a warning."""
    root = tmp_path / "cvc"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for i in range(555, 572):
            (root / sub / f"{i}.png").write_bytes((cvc_dir / sub / f"{i}.png").read_bytes())
    report = None
    for ev in run_qc(open_dataset(root), ["object_count"], processes=processes):
        report = ev.value if isinstance(ev, Result) else None
    got = {f.sample_id: (f.severity, f.details.get("same_scene_as")) for f in report.findings}
    assert got == {"559": ("warning", None), "563": ("info", "564"), "564": ("info", "563")}
