"""Volume QC: label ids, grid mismatch, gaps in an organ's z-extent, stray 3-D islands, slices unlike both
neighbours; each planted defect is found on the slice it was planted on, clean volumes are not flagged."""

from __future__ import annotations

import numpy as np
import pytest
from _volume_data import NAMES, rotated_affine, save_nifti, synthetic_case

from medseg.classmap import ClassMap, LabelClass
from medseg.datasets.dataset import GRID_MISMATCH, MASK_VOLUME, Dataset, Problem, Sample
from medseg.io import load
from medseg.io.volume_geometry import Geometry, label_image_like
from medseg.io.volume_labels import read_label_volume
from medseg.qc.checks_base import SampleView
from medseg.qc.checks_registry import CHECKS
from medseg.qc.run import qc

CLASSMAP = ClassMap([LabelClass(k, v, (40 * k, 200, 90)) for k, v in NAMES.items()])
SPACING = (2.5, 0.8, 0.8)
VOLUME_CHECKS = ("mask_values", "slice_gap", "stray_island", "slice_jump")


def case(seed: int = 0, shape=(40, 36, 16)) -> np.ndarray:
    """A synthetic case's labels in display order (slice, row, col): (16, 36, 40), three ellipsoid organs."""
    _, labels = synthetic_case(shape, seed=seed)
    return np.ascontiguousarray(labels.transpose(2, 1, 0))


def geometry(shape, spacing=SPACING) -> Geometry:
    return Geometry(shape, spacing, np.diag([*spacing, 1.0]))


def view(labels: np.ndarray, spacing=SPACING, classmap: ClassMap = CLASSMAP) -> SampleView:
    return SampleView("case", labels, classmap, geometry=geometry(labels.shape, spacing), group="case")


def run(check: str, labels: np.ndarray, spacing=SPACING, **params) -> list:
    c = CHECKS[check]
    return c.run(view(labels, spacing), {**c.defaults, **params})


def by_check(labels: np.ndarray, spacing=SPACING) -> dict[str, list]:
    return {name: run(name, labels, spacing) for name in VOLUME_CHECKS}


def organ_slices(labels: np.ndarray, cid: int) -> np.ndarray:
    return np.flatnonzero((labels == cid).any(axis=(1, 2)))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clean_volumes_are_not_flagged(seed):
    found = by_check(case(seed))
    assert found == dict.fromkeys(VOLUME_CHECKS, [])


def test_a_slice_left_unlabelled_inside_the_organs_is_a_gap_naming_it():
    labels = case()
    z = 8
    assert all(z in organ_slices(labels, c)[1:-1] for c in (1, 2))
    labels[z] = 0
    (f,) = run("slice_gap", labels)
    assert f.severity == "warning" and f.check == "slice_gap"
    assert f.details["slices"] == [z] and f.details["z"] == z and f.details["empty_slices"] == [z]
    assert {1, 2} <= {int(c) for c in f.details["per_class"]}
    assert f.details["per_class"]["1"]["gaps"][0]["slices"] == [z, z]
    assert f.message.startswith(f"slice {z} hold no label at all between labelled slices; liver absent from slice {z}")
    # the neighbours of an empty slice are not called jumps: the gap is slice_gap's
    assert run("slice_jump", labels) == []


def test_one_organ_missing_on_two_slices_names_the_organ_and_its_slices():
    labels = case(1)
    spleen = organ_slices(labels, 2)
    gap = [int(spleen[2]), int(spleen[3])]
    for z in gap:
        labels[z][labels[z] == 2] = 0
    (f,) = run("slice_gap", labels)
    assert f.details["slices"] == gap and f.details["empty_slices"] == []
    assert list(f.details["per_class"]) == ["2"] and f.details["per_class"]["2"]["solid"] is True
    assert f"spleen absent from slices {gap[0]}..{gap[1]} (5 mm)" in f.message  # 2 slices x 2.5 mm


def test_a_class_handing_over_to_another_is_no_gap():
    # vertebrae and discs alternate along z in one "vertebrae" class: on a disc slice the vertebra's place
    # is the disc's, not background (the real MR has exactly this)
    labels = case(2)
    liver = organ_slices(labels, 1)
    z = int(liver[len(liver) // 2])
    labels[z][labels[z] == 1] = 3
    assert run("slice_gap", labels) == []


def test_a_thin_end_gap_is_info_not_warning():
    labels = case(3)
    kidney = organ_slices(labels, 3)
    gap, tip = int(kidney[-2]), int(kidney[-1])
    labels[gap][labels[gap] == 3] = 0
    end = labels[tip] == 3
    labels[tip][end & (np.cumsum(end.ravel()).reshape(end.shape) > 3)] = 0  # 3 voxels left beyond the gap
    (f,) = run("slice_gap", labels)
    assert f.severity == "info" and f.details["slices"] == [gap]
    assert 0 < f.details["per_class"]["3"]["gaps"][0]["after"] <= 3


def test_a_stray_island_is_found_with_its_slices_and_size_in_mm3():
    labels = case()
    island = (slice(3, 5), slice(4, 6), slice(30, 32))  # 2 slices x 2 x 2 voxels, far from the spleen
    assert not labels[island].any()
    labels[island] = 2
    (f,) = run("stray_island", labels)
    assert f.severity == "warning" and f.value == 1
    (isl,) = f.details["islands"]
    assert isl["class"] == 2 and isl["voxels"] == 8 and isl["slices"] == [3, 4]
    assert isl["mm3"] == pytest.approx(8 * 2.5 * 0.8 * 0.8)
    assert f.details["slices"] == [3, 4] and f.details["z"] in (3, 4)
    assert isl["centre"][1:] in ([4, 30], [5, 31], [4, 31], [5, 30])
    assert "spleen: 1 island of 12.8 mm^3 on slices 3..4" in f.message


def test_a_piece_cut_by_the_field_of_view_is_no_island():
    labels = case()
    labels[0, 0:2, 0:2] = 1  # at the volume's corner: a structure leaving the field of view
    assert run("stray_island", labels) == []


def test_tiny_classes_depend_on_the_spacing():
    labels = case()
    labels = np.where(labels == 3, 0, labels)
    labels[6, 10, 10:12] = 3  # the kidney is 2 voxels
    fine = run("stray_island", labels, spacing=(1.0, 1.0, 1.0))  # 2 mm^3: a stray click?
    assert [(f.severity, f.details["classes"]) for f in fine] == [("info", [3])]
    assert fine[0].details["tiny"]["3"]["slices"] == [6]
    coarse = run("stray_island", labels, spacing=(5.0, 3.0, 3.0))  # 90 mm^3 at 5 x 3 x 3 mm
    assert coarse == []


def test_a_shifted_slice_jumps_against_both_neighbours():
    labels = case()
    z = 8
    labels[z] = np.roll(labels[z], 6, axis=1)
    (f,) = run("slice_jump", labels)
    assert f.severity == "warning" and f.details["slices"] == [z] and f.details["z"] == z
    rows = f.details["per_slice"][str(z)]
    assert {r["class"] for r in rows} >= {1, 2}
    for r in rows:
        assert r["dice_across"] > max(r["dice_prev"], r["dice_next"]) + 0.2
    assert f.message.startswith(f"1 slice unlike both neighbours (slice {z}: ")
    assert run("slice_gap", labels) == []


def test_a_half_erased_slice_jumps_too():
    labels = case(1)
    z = 8
    liver = labels[z] == 1
    cols = np.nonzero(liver)[1]
    labels[z][liver & (np.arange(labels.shape[2]) < np.median(cols))[None, :]] = 0
    (f,) = run("slice_jump", labels)
    assert f.details["slices"] == [z] and [r["class"] for r in f.details["per_slice"][str(z)]] == [1]


def test_ids_outside_the_class_map_name_their_slices():
    labels = case()
    labels[4:6, 10:14, 10:14] = 9
    (f,) = run("mask_values", labels)
    assert f.severity == "error" and f.details["ids"] == [9] and f.details["pixels"] == [2 * 16]
    assert f.details["slices"] == [4, 5] and f.details["per_id"] == {"9": [4, 5]}
    assert "9 (32 voxels on slices 4..5)" in f.message


def test_specks_leave_volumes_to_stray_island():
    labels = case()
    labels[3:5, 4:6, 30:32] = 2
    assert run("specks", labels) == []


# ----------------------------------------------------------------------- through run_qc, from NIfTI files
def write_case(root, name: str, display_labels: np.ndarray | None = None, seed: int = 0, label_affine=None) -> Sample:
    """An image NIfTI on a rotated grid and its label (display-order labels written on the image's grid)."""
    image, labels = synthetic_case((40, 36, 16), seed=seed)
    affine = rotated_affine(angle_deg=10.0 + seed)
    image_path = save_nifti(root / "images" / f"{name}.nii.gz", image, affine)
    grid = Geometry.from_image(load(image_path))
    label_path = root / "labels" / f"{name}.nii.gz"
    if label_affine is not None:
        save_nifti(label_path, labels, label_affine)
    else:
        import nibabel as nib

        if display_labels is None:
            save_nifti(label_path, labels, affine)
        else:
            label_path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(label_image_like(display_labels, image_path, grid), str(label_path))
    return Sample(
        name,
        image_path,
        {1: label_path},
        group=name,
        extra={"geometry": grid.to_dict()},
        classmap=CLASSMAP,
        mask_kind=MASK_VOLUME,
    )


def display_labels(root, seed: int) -> np.ndarray:
    """The labels of case ``seed`` as QC sees them: the reader's display order."""
    s = write_case(root / "probe", "probe", seed=seed)
    return read_label_volume(s.mask_paths[1])[0]


def test_run_qc_finds_each_planted_defect_in_display_slices(tmp_path):
    clean = display_labels(tmp_path, 0)
    gap, island, shifted, foreign = (clean.copy() for _ in range(4))
    gap[7] = 0
    island[3:5, 4:6, 30:32] = 2
    shifted[9] = np.roll(shifted[9], 6, axis=1)
    foreign[11, 10:13, 10:13] = 42
    samples = [write_case(tmp_path, "clean", clean)]
    for name, labels in (("gap", gap), ("island", island), ("shifted", shifted), ("foreign", foreign)):
        samples.append(write_case(tmp_path, name, labels))
    ds = Dataset(tmp_path, "test", CLASSMAP, samples)
    report = qc(ds, checks=[*VOLUME_CHECKS, "grid_mismatch", "size_mismatch"], workers=1)
    found = {(f.sample_id, f.check): f for f in report.findings}
    assert set(found) == {
        ("gap", "slice_gap"),
        ("island", "stray_island"),
        ("shifted", "slice_jump"),
        ("foreign", "mask_values"),
    }
    assert found["gap", "slice_gap"].details["slices"] == [7]
    assert found["island", "stray_island"].details["slices"] == [3, 4]
    assert found["shifted", "slice_jump"].details["slices"] == [9]
    assert found["foreign", "mask_values"].details["slices"] == [11]
    assert found["foreign", "mask_values"].path == str(samples[-1].mask_paths[1])


def test_a_label_off_the_image_grid_is_a_grid_mismatch_and_still_checked(tmp_path):
    off = rotated_affine(angle_deg=25.0)  # the image is at 10 degrees
    s = write_case(tmp_path, "off", label_affine=off)
    problem = Problem(tmp_path / "labels" / "other.nii.gz", GRID_MISMATCH, "label other.nii.gz is on another grid")
    ds = Dataset(tmp_path, "test", CLASSMAP, [s], [problem])
    report = qc(ds, workers=1)
    grid = [f for f in report.findings if f.check == "grid_mismatch"]
    assert len(grid) == 2 and all(f.severity == "error" for f in grid)
    decoded = next(f for f in grid if f.sample_id == "off")
    assert "is not on the grid of its image" in decoded.message and "mm apart at voxel" in decoded.message
    assert decoded.details["label"]["affine"] != decoded.details["image"]["affine"]
    indexed = next(f for f in grid if f.sample_id != "off")
    assert indexed.details["kind"] == GRID_MISMATCH and indexed.sample_id == "other"
    assert not [f for f in report.findings if f.check == "unreadable"]
