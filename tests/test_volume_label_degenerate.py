"""A label written beside a NIfTI whose affine is degenerate (NaN, all zero) lies on that image's voxels:
the reader keeps such a file's stored axes, and the writer puts them back the same way."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _fuzz_bytes import _nifti_bytes, _patch_nifti

from medseg.io.nifti import read_nifti
from medseg.io.volume_geometry import DEGENERATE_AXIS_MAP, Geometry, label_image_like
from medseg.io.volume_orient import display_grid


def test_the_degenerate_axis_map_is_the_readers():
    grid = display_grid(np.zeros((4, 4)), (5, 6, 7), (1.0, 1.0, 1.0))
    assert grid.axis_map() == DEGENERATE_AXIS_MAP


NAN = float("nan")


@pytest.mark.parametrize(
    "fields",
    [{"srow": [NAN] * 12}, {"srow": [0.0] * 12}, {"pixdim": [1.0] + [NAN] * 7}],
    ids=["nan-affine", "zero-affine", "nan-pixdim"],
)
def test_a_label_of_a_degenerate_image_holds_its_stored_voxel_order(tmp_path, fields):
    stored = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    path = tmp_path / "img.nii"
    path.write_bytes(_patch_nifti(_nifti_bytes(stored, affine=np.diag([2.0, 2.0, 3.0, 1.0])), **fields))
    image = read_nifti(path)
    labels = (image.array % 3).astype(np.uint8)  # display order, as a reviewer painted it
    out = tmp_path / "lab.nii.gz"
    nib.save(label_image_like(labels, path, Geometry.from_image(image)), str(out))
    assert np.array_equal(np.asarray(nib.load(out).dataobj), stored % 3)  # voxel for voxel on the image's
