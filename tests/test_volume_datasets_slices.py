"""2-D DICOM files and one-slice NIfTI files inside the 2-D layouts (images/ + masks/, nnU-Net 2-D): indexed
from their headers and loaded as 2-D samples, like their PNG twins; volumes among them are problems."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _volume_data import rotated_affine, save_nifti, synthetic_case
from _volume_layouts import make_slice_files, write_dicom_slice

from medseg.datasets import open_dataset
from medseg.datasets.dataset import SIZE_MISMATCH, UNSUPPORTED_FILE
from medseg.datasets.files import header_size
from medseg.errors import NotASliceError


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_slice_files_in_images_and_masks_load_as_2d_samples(tmp_path, kind):
    root, want = make_slice_files(tmp_path / kind, n=3, kind=kind)
    ds = open_dataset(root)
    assert ds.layout == "images_masks" and not ds.problems and [s.id for s in ds] == sorted(want)
    assert ds.classmap.task == "multiclass" and ds.classmap.ids == [1, 2, 3]  # ids read from NIfTI masks
    for s in ds:
        assert not s.is_volume and s.geometry is None
        image = s.load_image()
        assert image.array.shape == (36, 40) and len(image.spacing) == 2
        assert header_size(s.image_path) == (36, 40)
        mask = s.load_mask()
        assert mask.shape == (36, 40) and np.array_equal(mask, want[s.id])
    if kind == "dicom":
        assert ds[0].load_image().metadata["modality"] == "CT"
        assert ds[0].load_image().spacing == pytest.approx((0.7, 0.7))
    else:
        assert ds[0].load_image().spacing == pytest.approx((0.8, 0.8))


def test_a_dicom_without_suffix_is_an_image(tmp_path):
    root, want = make_slice_files(tmp_path / "d", n=2, kind="dicom")
    (root / "images" / "slice0.dcm").rename(root / "images" / "slice0")
    ds = open_dataset(root)
    assert [s.image_path.name for s in ds] == ["slice0", "slice1.dcm"] and not ds.problems


def test_a_volume_among_slices_is_a_problem_and_the_rest_indexes(tmp_path):
    root, _ = make_slice_files(tmp_path / "d", n=3, kind="dicom")
    write_dicom_slice(root / "images" / "slice1.dcm", np.zeros((36, 40)), frames=4)
    image, labels = synthetic_case((40, 36, 10), seed=7)
    save_nifti(root / "masks" / "slice2.nii.gz", labels, rotated_affine(angle_deg=0.0))
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["slice0"]
    said = {p.path.name: p for p in ds.problems}
    assert said["slice1.dcm"].kind == UNSUPPORTED_FILE and "multi-frame DICOM (4 frames)" in said["slice1.dcm"].message
    assert said["slice2.nii.gz"].kind == UNSUPPORTED_FILE
    assert "is a volume of 10 slices (10x36x40)" in said["slice2.nii.gz"].message
    with pytest.raises(NotASliceError, match=r"slice1\.dcm: is a multi-frame DICOM"):
        header_size(root / "images" / "slice1.dcm")


def test_a_mask_of_another_size_than_its_dicom_is_a_size_mismatch(tmp_path):
    root, _ = make_slice_files(tmp_path / "d", n=2, kind="dicom")
    _, labels = synthetic_case((40, 30, 10), seed=0)
    save_nifti(root / "masks" / "slice1.nii.gz", labels[:, :, 5:6], rotated_affine(angle_deg=0.0))
    ds = open_dataset(root)
    (p,) = ds.problems
    assert p.kind == SIZE_MISMATCH and p.path.name == "slice1.nii.gz" and "30x40" in p.message and "36x40" in p.message


def test_nnunet_2d_with_nifti_slices(tmp_path):
    """nnU-Net's 2-D NIfTI datasets: imagesTr/<case>_0000.nii.gz of shape (x, y, 1), labels alike."""
    root = tmp_path / "Dataset001"
    want = {}
    for c in range(3):
        image, labels = synthetic_case((40, 36, 10), seed=c)
        affine = rotated_affine(angle_deg=0.0)
        save_nifti(root / "imagesTr" / f"sl_{c:03d}_0000.nii.gz", image[:, :, 4:5], affine)
        save_nifti(root / "labelsTr" / f"sl_{c:03d}.nii.gz", labels[:, :, 4:5], affine)
        want[f"sl_{c:03d}"] = labels[:, :, 4].T[::-1, ::-1]
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(root)
    assert ds.layout == "nnunet" and not ds.problems and [s.id for s in ds] == sorted(want)
    for s in ds:
        assert s.load_image().array.shape == (36, 40)
        assert np.array_equal(s.load_mask(), want[s.id])


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_a_workspace_over_slice_files_holds_their_2d_masks(tmp_path, kind):
    from medseg.workspace import Workspace

    root, want = make_slice_files(tmp_path / kind, n=2, kind=kind)
    with Workspace.create(tmp_path / "ws", root) as ws:
        for sid, mask in want.items():
            assert not ws.is_volume(sid) and np.array_equal(ws.current_mask(sid), mask), sid
