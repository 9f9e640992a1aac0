"""Montgomery chest X-rays: CXR_png/ + ManualMask/{leftMask,rightMask}/, merged into one id map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets import dataset as ds
from medseg.datasets import detect_layout, open_dataset, split_by_group

H, W = 40, 32


def lung(side: str, shape=(H, W)) -> np.ndarray:
    """0/255 ellipse in the patient's left (image right) or right (image left) half."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    cx = shape[1] * (0.72 if side == "left" else 0.28)
    return ((((y - shape[0] / 2) / (shape[0] * 0.35)) ** 2 + ((x - cx) / (shape[1] * 0.18)) ** 2) <= 1).astype(
        np.uint8
    ) * 255


def xray(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(H, W), dtype=np.uint8)


def make_montgomery(root: Path, stems=("MCUCXR_0001_0", "MCUCXR_0002_1", "MCUCXR_0005_0")) -> Path:
    for d in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        Image.fromarray(xray(k)).save(root / "CXR_png" / f"{stem}.png")
        Image.fromarray(lung("left")).save(root / "ManualMask" / "leftMask" / f"{stem}.png")
        Image.fromarray(lung("right")).save(root / "ManualMask" / "rightMask" / f"{stem}.png")
    (root / "ClinicalReadings").mkdir()
    (root / "ClinicalReadings" / "MCUCXR_0001_0.txt").write_text("Patient's Sex: F\n")
    (root / "NLM-MontgomeryCXRSet-ReadMe.pdf").write_bytes(b"%PDF-1.4")
    return root


def test_montgomery_is_detected_with_left_and_right_lung_classes(tmp_path):
    root = make_montgomery(tmp_path / "MontgomerySet")
    assert detect_layout(root) == "montgomery"
    d = open_dataset(root)
    assert d.layout == "montgomery" and len(d) == 3 and d.problems == []
    assert d.classmap.task == "multiclass"
    assert d.classmap.id_of("left_lung") == 1 and d.classmap.id_of("right_lung") == 2
    s = d.by_id("MCUCXR_0002_1")
    assert s.group == "MCUCXR_0002" and s.extra["abnormal"] is True
    assert s.mask_paths == {
        1: root / "ManualMask" / "leftMask" / "MCUCXR_0002_1.png",
        2: root / "ManualMask" / "rightMask" / "MCUCXR_0002_1.png",
    }


def test_lung_masks_are_merged_at_load(tmp_path):
    d = open_dataset(make_montgomery(tmp_path))
    ids, reports = d.samples[0].load_mask(return_report=True)
    assert ids.shape == (H, W) and set(np.unique(ids)) == {0, 1, 2}
    assert (ids == 1).sum() == (lung("left") > 0).sum()
    assert (ids == 2).sum() == (lung("right") > 0).sum()
    assert ids[:, : W // 2].max() == 2 and ids[:, W // 2 :].max() == 1  # right lung on image left
    assert set(reports) == {1, 2} and reports[1].n_changed == 0


def test_patient_groups_keep_both_readings_together(tmp_path):
    # the same patient number with both endings: one patient, one group
    root = make_montgomery(tmp_path, stems=("MCUCXR_0001_0", "MCUCXR_0001_1", "MCUCXR_0002_0", "MCUCXR_0003_1"))
    d = open_dataset(root)
    assert sorted(d.groups) == ["MCUCXR_0001", "MCUCXR_0002", "MCUCXR_0003"]
    for seed in range(10):
        train, val = split_by_group(d.samples, (0.5, 0.5), seed=seed)
        assert not {s.group for s in train} & {s.group for s in val}


def test_montgomery_problems(tmp_path):
    root = make_montgomery(tmp_path)
    (root / "ManualMask" / "rightMask" / "MCUCXR_0005_0.png").unlink()  # right mask missing
    Image.fromarray(lung("left", (H, W + 4))).save(root / "ManualMask" / "leftMask" / "MCUCXR_0002_1.png")  # wrong size
    Image.fromarray(lung("left")).save(root / "ManualMask" / "leftMask" / "MCUCXR_0099_0.png")  # orphan
    d = open_dataset(root)
    assert [s.id for s in d] == ["MCUCXR_0001_0"]
    got = {(p.path.name, p.kind) for p in d.problems}
    assert got == {
        ("MCUCXR_0005_0.png", ds.IMAGE_WITHOUT_MASK),
        ("MCUCXR_0002_1.png", ds.SIZE_MISMATCH),
        ("MCUCXR_0099_0.png", ds.MASK_WITHOUT_IMAGE),
    }
    missing = next(p for p in d.problems if p.kind == ds.IMAGE_WITHOUT_MASK)
    assert "right_lung" in missing.message
