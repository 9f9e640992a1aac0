"""QC on real data: the original noisy CVC-ClinicDB frame-1 mask, and CVC-ClinicDB frames.

Facts asserted here were checked by eye: frame 152 is motion-blurred, frames
10 and 100 are sharp; frames 266 and 275 show the same polyp from the same
viewpoint; the frame-block grouping once split them (228-274 and 275-277),
it now keeps their video together (253-277). The whole-dataset run (612 frames) is the benchmark
benchmarks/bench_qc.py; this test takes 194 frames around those.
"""

from __future__ import annotations

import hashlib
import shutil

from medseg.datasets import Dataset, open_dataset
from medseg.io.masks import read_mask
from medseg.qc import apply_fix, qc


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_noisy_mask_example_grey_levels_and_binarise_fix(noisy_mask_dir, tmp_path):
    before = _hashes(noisy_mask_dir)
    root = tmp_path / "noisy"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shutil.copyfile(noisy_mask_dir / "1.tif", root / "images" / "1.tif")
    shutil.copyfile(noisy_mask_dir / "1_mask.tif", root / "masks" / "1.tif")
    ds = open_dataset(root)
    report = qc(ds, "mask_values", workers=1)
    (f,) = report.findings
    assert (f.sample_id, f.check, f.severity, f.value, f.fix) == ("1", "mask_values", "warning", 42, "binarise")
    assert "42 grey levels (8..112) in 7,209 pixels outside the class map {0, 255}" in f.message
    assert f.details["levels"][0] == 8 and f.details["levels"][-1] == 112 and f.details["to_background"] == 7209

    raw = read_mask(root / "masks" / "1.tif")
    fixed, summary = apply_fix("binarise", raw, ds.classmap)
    assert summary["n_changed"] == 7209 and summary["gained"] == {0: 7209, 1: 0}
    cleaned = read_mask(noisy_mask_dir / "1_mask.png")  # the published cleaned mask (0/255)
    differ = (fixed * 255) != cleaned
    assert int(differ.sum()) == 12  # the pixels the cleaner edited by hand; all else is the same
    assert _hashes(noisy_mask_dir) == before and _hashes(root / "masks") == {
        "1.tif": hashlib.sha256((noisy_mask_dir / "1_mask.tif").read_bytes()).hexdigest()
    }


def _frames(ds: Dataset, ranges) -> Dataset:
    keep = [s for s in ds.samples if any(lo <= int(s.id) <= hi for lo, hi in ranges)]
    return Dataset(ds.root, ds.layout, ds.classmap, keep, ds.problems)


def test_cvc_clinicdb_frames(cvc_dir):
    before = _hashes(cvc_dir / "masks")
    ds = _frames(open_dataset(cvc_dir), [(1, 100), (140, 160), (228, 300)])
    assert len(ds) == 194
    report = qc(ds, workers=2)
    by = report.by_check
    # the masks were binarised by their previous owner: no grey noise, no specks or holes either
    assert by.get("mask_values", 0) == 0 and by.get("specks", 0) == 0 and by.get("holes", 0) == 0
    assert by.get("exact_duplicate", 0) == 0 and by.get("empty_mask", 0) == 0
    assert report.by_severity()["error"] == 0
    near = [f for f in report.findings if f.check == "near_duplicate"]
    assert len(near) >= 20  # neighbouring video frames
    for f in near:  # ... and only neighbours: every pair is close in frame number
        assert all(abs(int(o["id"]) - int(f.sample_id)) <= 12 for o in f.details["others"]), f.message
    leak = {f.sample_id: f for f in near if f.severity == "warning"}
    # 266 and 275 (the same polyp, one video) were a leak when the grouping split their video; now none leaks
    assert ds.by_id("266").group == ds.by_id("275").group and not leak
    blurred = {f.sample_id for f in report.findings if f.check == "blurred"}
    assert "152" in blurred and not {"10", "100"} & blurred
    assert _hashes(cvc_dir / "masks") == before
