"""A decoded volume turned to display order in its own memory (``DisplayGrid.to_display(in_place=True)``) holds
exactly what the copying turn gives, for every axis order and direction a NIfTI can store."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _volume_data import rotated_affine, save_nifti

from medseg.io.nifti import read_nifti
from medseg.io.volume_orient import display_grid

SHAPE = (5, 4, 3)  # odd and even lengths: the middle slice of an odd axis stays where it is


def _affines():
    """(affine, axial) for each of the 48 axis-aligned frames: a permutation of the axes and a sign for each;
    axial when the stored axes are the world's in order (display slices are the stored k)."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            a = np.zeros((4, 4))
            for stored, (world, sign) in enumerate(zip(perm, signs, strict=True)):
                a[world, stored] = sign * (0.5 + stored)
            a[:3, 3] = (10.0, -20.0, 30.0)
            a[3, 3] = 1.0
            yield a, perm == (0, 1, 2)


@pytest.mark.parametrize("step_bytes", [None, 1, 2 * 4 * 3 * 2], ids=["whole", "slice by slice", "2 slices"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_every_frame_turns_in_place_as_the_copy_does(order, step_bytes, monkeypatch):
    """Also with the in-place turn stepping over 1 or 2 slices at a time (a CT's steps are 8 MiB)."""
    if step_bytes is not None:
        from medseg.io import volume_orient

        monkeypatch.setattr(volume_orient, "_IN_PLACE_BYTES", step_bytes)
    stored = np.asarray(np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE), order=order)
    shared = 0
    for affine, axial in _affines():
        grid = display_grid(affine, SHAPE, (1.0, 1.0, 1.0))
        expected = grid.to_display(stored)
        given = stored.copy(order=order)
        turned = grid.to_display(given, in_place=True)
        np.testing.assert_array_equal(turned, expected)
        assert turned.flags.c_contiguous and turned.shape == grid.geometry.shape
        if order == "F" and axial:  # nibabel's order: the display order is the decoded memory's, turned in it
            assert np.shares_memory(turned, given)
            shared += 1
    assert shared == (8 if order == "F" else 0)


def test_a_read_only_or_mapped_array_is_copied_not_written(tmp_path):
    stored = np.arange(60, dtype=np.int16).reshape(SHAPE, order="F")
    grid = display_grid(np.eye(4), SHAPE, (1.0, 1.0, 1.0))  # RAS: rows and columns reversed for display
    expected = grid.to_display(stored)
    frozen = stored.copy(order="F")
    frozen.flags.writeable = False
    mapped = np.memmap(tmp_path / "v.raw", dtype=np.int16, mode="w+", shape=SHAPE, order="F")
    mapped[:] = stored
    for given in (frozen, mapped):
        np.testing.assert_array_equal(grid.to_display(given, in_place=True), expected)
        np.testing.assert_array_equal(given, stored)  # not written


def test_read_nifti_of_a_gzipped_rotated_volume_is_unchanged(tmp_path):
    """read_nifti turns nibabel's freshly decoded array in place: the values are the stored voxels in display order."""
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 1000, (12, 10, 7)).astype(np.int16)
    path = save_nifti(tmp_path / "ct.nii.gz", data, rotated_affine(angle_deg=10.0))
    image = read_nifti(path)
    grid = display_grid(rotated_affine(angle_deg=10.0), data.shape, (0.8, 0.8, 2.5))
    np.testing.assert_array_equal(image.array, grid.to_display(data))
    assert image.array.flags.c_contiguous and image.array.flags.writeable
