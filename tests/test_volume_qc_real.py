"""Volume QC on the real abdominal CT (41 TotalSegmentator structures, 30 x 101 x 122 at 3 mm) and MR: the
reference labels raise no gap, jump or id finding, the islands found are small pieces beside their class's main
part, and defects planted into the real label are found on their slices."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _volume_data import real_nnunet3d

from medseg.datasets import open_dataset
from medseg.io import load
from medseg.io.volume_geometry import Geometry, label_image_like
from medseg.io.volume_labels import read_label_volume
from medseg.qc import offer_fixes, review_queue
from medseg.qc.run import qc
from medseg.workspace import Workspace


def real_dataset(ct_mr, root, modality: str, labels: np.ndarray | None = None):
    """The real case of the folder ``ct_mr`` as nnU-Net raw 3-D, indexed by its layout; ``labels`` (display
    order) replace its label."""
    real_nnunet3d(ct_mr, root, modality)
    if labels is not None:
        image = root / "imagesTr" / f"{modality}_000_0000.nii.gz"
        grid = Geometry.from_image(load(image))
        nib.save(label_image_like(labels, image, grid), str(root / "labelsTr" / f"{modality}_000.nii.gz"))
    ds = open_dataset(root)
    assert ds.layout == "nnunet3d" and len(ds.samples) == 1 and not ds.problems
    return ds


def real_labels(ct_mr, tmp_path, modality: str) -> np.ndarray:
    ds = real_dataset(ct_mr, tmp_path / "probe", modality)
    return read_label_volume(ds.samples[0].mask_paths[1])[0]


def test_real_ct_reference_labels_raise_only_small_islands(ct_mr_dir, tmp_path):
    ds = real_dataset(ct_mr_dir, tmp_path, "ct")
    report = qc(ds, workers=1)
    checks = {f.check for f in report.findings}
    assert not {"mask_values", "grid_mismatch", "size_mismatch", "unreadable", "slice_gap", "slice_jump"} & checks
    assert not [f for f in report.findings if f.severity == "error"]
    islands = [f for f in report.findings if f.check == "stray_island" and f.severity == "warning"]
    assert len(islands) == 1
    f = islands[0]
    known = set(ds.classmap.ids)
    for isl in f.details["islands"]:
        assert isl["class"] in known and 0 < isl["slices"][0] <= isl["slices"][1] < 29
        main = f.details["per_class"][str(isl["class"])]["largest_mm3"]
        assert isl["mm3"] < 0.1 * main and isl["mm3"] == pytest.approx(isl["voxels"] * 27.0)
    assert set(f.details["slices"]) <= set(range(1, 29)) and f.details["z"] in f.details["slices"]
    # one lung lobe reaches into the field of view by a single voxel on the top slice
    (tiny,) = [f for f in report.findings if f.check == "stray_island" and f.severity == "info"]
    assert tiny.details["tiny"] == {"13": {"name": "lung_middle_lobe_right", "voxels": 1, "slices": [29]}}


def test_defects_planted_into_the_real_ct_are_found_on_their_slices(ct_mr_dir, tmp_path):
    labels = real_labels(ct_mr_dir, tmp_path, "ct")
    liver = labels == 5
    assert liver[10:20].any(axis=(1, 2)).all()
    labels[12] = 0  # a slice left unlabelled
    labels[20] = np.roll(labels[20], 7, axis=1)  # a slice shifted by 21 mm
    ds = real_dataset(ct_mr_dir, tmp_path / "planted", "ct", labels)
    report = qc(ds, checks="slice_gap,slice_jump", workers=1)
    found = {f.check: f for f in report.findings}
    assert set(found) == {"slice_gap", "slice_jump"}
    gap = found["slice_gap"]
    assert gap.severity == "warning" and gap.details["empty_slices"] == [12] and gap.details["slices"] == [12]
    assert len(gap.details["per_class"]) > 20  # every structure crossing slice 12
    jump = found["slice_jump"]
    assert jump.details["slices"] == [20] and len(jump.details["per_slice"]["20"]) >= 5


def test_real_mr_vertebrae_and_discs_alternating_is_no_gap(ct_mr_dir, tmp_path):
    labels = real_labels(ct_mr_dir, tmp_path, "mr")
    ds = real_dataset(ct_mr_dir, tmp_path / "mr", "mr")
    classmap = ds.classmap
    vertebrae, discs = classmap.id_of("vertebrae"), classmap.id_of("intervertebral_discs")
    present = labels.any(axis=(1, 2))
    on = [(labels == c).any(axis=(1, 2)) for c in (vertebrae, discs)]
    assert present.all() and not on[0].all() and not on[1].all()  # each class leaves slices inside its extent
    report = qc(ds, workers=1)
    assert not [f for f in report.findings if f.check in ("slice_gap", "slice_jump", "mask_values")]


def test_real_ct_workspace_qc_stores_findings_and_the_queue_names_their_slices(ct_mr_dir, tmp_path):
    ds = real_dataset(ct_mr_dir, tmp_path / "ds", "ct")
    with Workspace.create(tmp_path / "ws", ds.root) as ws:
        assert ws.is_volume("ct_000") and len(ws.classmap.ids) == 41
        report = qc(ws, workers=1)
        stored = ws.findings(source="qc")
        assert {f.check for f in stored} == {f.check for f in report.findings}
        island = next(f for f in stored if f.check == "stray_island" and f.severity == "warning")
        (item,) = review_queue(ws)
        assert island.details["z"] in item.slices[:2]  # the holes finding names its first slice too
        assert "stray island" in item.reason and "look at slices" in item.reason
        # the 1-voxel gaps between neighbouring structures: filling them is offered, and saved as a revision
        # of only the slices that hold them
        holes = next(f for f in stored if f.check == "holes")
        assert holes.fix == "fill_holes" and holes.value == 172
        (rev,) = offer_fixes(ws, [holes])
        changed = ws.changed_slices(rev.id)
        assert changed and set(changed) <= set(holes.details["slices"])
        assert qc(ws, "holes", workers=1).findings == []
