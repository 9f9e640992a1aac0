"""Volume labels from arrays (napari layers): one label file on its image's own NIfTI header, and an image +
label volume exported as plain folders, both read back on the image's grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _volume_data import rotated_affine, save_nifti, synthetic_case
from _volume_export_data import assert_same_grid, raw_voxels

from medseg.errors import ExportError
from medseg.export.arrays import ArraySample, export_arrays, write_label_file
from medseg.io import load
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_labels import read_label_volume


@pytest.fixture
def case(tmp_path):
    image, labels = synthetic_case((28, 24, 9), seed=11)
    affine = rotated_affine(spacing=(0.75, 0.75, 2.0), angle_deg=33.0, origin=(40.0, -12.5, 80.0))
    src = save_nifti(tmp_path / "data" / "ct.nii.gz", image, affine)
    lab = save_nifti(tmp_path / "data" / "ct_labels.nii.gz", labels, affine)
    return src, lab


@pytest.mark.parametrize("with_affine", [False, True])
def test_a_label_file_written_like_its_image_has_the_image_header(case, tmp_path, with_affine):
    src, lab = case
    image = load(src)
    ids, _ = read_label_volume(lab)  # display order, as a napari Labels layer holds them
    affine = image.metadata["affine"] if with_affine else None
    out = write_label_file(tmp_path / "out" / "labels.nii.gz", ids, image.spacing, affine=affine, like=src)
    np.testing.assert_array_equal(raw_voxels(out), raw_voxels(lab))  # the source's voxel order
    np.testing.assert_allclose(nib.load(str(out)).affine, nib.load(str(src)).affine)
    assert nib.load(str(out)).header["sform_code"] == nib.load(str(src)).header["sform_code"] == 1
    assert_same_grid(out, Geometry.from_image(image))
    np.testing.assert_array_equal(read_label_volume(out)[0], ids)


def test_a_label_file_that_does_not_fit_its_image_is_refused_naming_both(case, tmp_path):
    src, lab = case
    ids, _ = read_label_volume(lab)
    with pytest.raises(ExportError, match=r"labels.nii.gz: cannot write the labels on the grid of .*ct.nii.gz"):
        write_label_file(tmp_path / "out" / "labels.nii.gz", ids[:-1], like=src)
    assert not (tmp_path / "out" / "labels.nii.gz").exists()


def test_an_array_volume_exported_as_folders_keeps_its_affine(case, tmp_path):
    src, lab = case
    image = load(src)
    ids, _ = read_label_volume(lab)
    result = export_arrays(tmp_path / "out", [ArraySample("ct 1", image, ids, {"layer": "ct"})])
    assert result.n_samples == 1
    grid = Geometry.from_image(image)
    exported_image, exported_mask = (
        tmp_path / "out" / "images" / "ct_1.nii.gz",
        tmp_path / "out" / "masks" / "ct_1.nii.gz",
    )
    assert_same_grid(exported_image, grid)
    assert_same_grid(exported_mask, grid)
    np.testing.assert_array_equal(load(exported_image).array, image.array)
    np.testing.assert_array_equal(read_label_volume(exported_mask)[0], ids)
    assert nib.load(str(exported_mask)).header["sform_code"] == nib.load(str(exported_image)).header["sform_code"]
