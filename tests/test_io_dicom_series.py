"""DICOM series: files of one series sorted into a volume, written from pydicom's CT_small."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _volume_data import monochrome1_series
from pydicom.uid import generate_uid

from medseg.errors import ReadError
from medseg.io.dicom import (
    is_dicom_series_folder,
    read_dicom,
    read_dicom_series,
)


def _write_series(
    folder: Path,
    ct_small: Path,
    z: list[float],
    shuffle_seed: int = 3,
    series_uid: str | None = None,
    prefix: str = "img",
) -> list[Path]:
    """One file per z from CT_small; slice k's stored pixels are CT_small's + 10*k."""
    base = pydicom.dcmread(ct_small)
    series_uid = series_uid or generate_uid()
    order = list(range(len(z)))
    random.Random(shuffle_seed).shuffle(order)
    paths = []
    for k, zk in enumerate(z):
        ds = pydicom.dcmread(ct_small)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = len(z) - k  # reversed on purpose: position must win
        ds.ImagePositionPatient = [base.ImagePositionPatient[0], base.ImagePositionPatient[1], zk]
        ds.PixelData = (base.pixel_array + 10 * k).astype(base.pixel_array.dtype).tobytes()
        p = folder / f"{prefix}_{order[k]:03d}.dcm"
        ds.save_as(p)
        paths.append(p)
    return paths


def test_series_sorted_by_position(ct_small: Path, tmp_path: Path) -> None:
    z = [-10.0, -7.5, -5.0, -2.5, 0.0]
    paths = _write_series(tmp_path, ct_small, z[::-1])  # path k holds z[4-k]
    (tmp_path / "readme.txt").write_text("not dicom")
    assert is_dicom_series_folder(tmp_path)
    vol = read_dicom_series(tmp_path)
    hu = read_dicom(ct_small).array.astype(np.int32)
    assert vol.array.shape == (5, 128, 128) and vol.array.dtype == np.int16
    for i in range(5):  # ascending z: slice i came from path 4 - i, stored + 10*(4 - i)
        np.testing.assert_array_equal(vol.array[i], hu + 10 * (4 - i))
    assert vol.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    m = vol.metadata
    assert m["slice_spacing_uniform"] is True and m["slice_order"] == "ImagePositionPatient"
    assert m["files"] == [str(p) for p in paths[::-1]]
    assert len(set(m["sop_uids"])) == 5
    assert m["skipped_files"] == [str(tmp_path / "readme.txt")]
    assert m["other_series"] == [] and m["spacing_known"] is True and m["source"] == str(tmp_path)
    assert m["slice_positions"] == pytest.approx(z)


def test_series_non_uniform_spacing_is_reported(ct_small: Path, tmp_path: Path) -> None:
    _write_series(tmp_path, ct_small, [0.0, 2.5, 5.0, 10.0, 12.5])
    vol = read_dicom_series(tmp_path)
    assert vol.metadata["slice_spacing_uniform"] is False
    assert vol.spacing[0] == pytest.approx(2.5)


def test_series_without_positions_uses_instance_number(ct_small: Path, tmp_path: Path) -> None:
    paths = _write_series(tmp_path, ct_small, [0.0, 5.0, 10.0])
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    vol = read_dicom_series(tmp_path)
    assert vol.metadata["slice_order"] == "InstanceNumber"
    assert vol.metadata["files"] == [str(p) for p in paths[::-1]]  # InstanceNumber = 3 - k
    assert vol.spacing[0] == float(pydicom.dcmread(ct_small).SpacingBetweenSlices)
    assert vol.metadata["slice_spacing_source"] == "SpacingBetweenSlices"
    for p in paths:  # without SpacingBetweenSlices, SliceThickness is the next best guess
        ds = pydicom.dcmread(p)
        del ds.SpacingBetweenSlices
        ds.SliceThickness = 3.0
        ds.save_as(p)
    vol = read_dicom_series(tmp_path)
    assert vol.spacing[0] == 3.0 and vol.metadata["slice_spacing_source"] == "SliceThickness"


def test_series_picks_largest_and_lists_others(ct_small: Path, tmp_path: Path) -> None:
    _write_series(tmp_path, ct_small, [0.0, 2.0, 4.0], prefix="main")
    small_uid = generate_uid()
    _write_series(tmp_path, ct_small, [0.0, 3.0], series_uid=small_uid, prefix="other")
    vol = read_dicom_series(tmp_path)
    assert vol.array.shape[0] == 3
    (other,) = vol.metadata["other_series"]
    assert other["series_uid"] == small_uid and other["n_files"] == 2 and other["modality"] == "CT"


def test_series_with_odd_slice_size_names_it(ct_small: Path, tmp_path: Path) -> None:
    paths = _write_series(tmp_path, ct_small, [0.0, 2.5, 5.0, 7.5])
    odd = paths[2]
    ds = pydicom.dcmread(odd)
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[:64, :64]).tobytes()
    ds.Rows, ds.Columns = 64, 64
    ds.save_as(odd)
    with pytest.raises(ReadError) as err:
        read_dicom_series(tmp_path)
    assert err.value.path == odd and odd.name in str(err.value)
    assert "64x64" in str(err.value) and "128x128" in str(err.value)


def test_monochrome1_series_is_inverted_as_one_volume(mr_small: Path, tmp_path: Path) -> None:
    base = monochrome1_series(mr_small, tmp_path, 3)
    assert base.PixelRepresentation == 1 and base.BitsStored == 16  # signed: min + max = -1
    vol = read_dicom_series(tmp_path)
    expected = np.stack([-1 - (base.pixel_array.astype(np.int32) + 100 * k) for k in range(3)])
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.metadata["inverted"] is True and vol.metadata["original_photometric"] == "MONOCHROME1"
    assert vol.metadata["window_presets"]["file"] == [-1 - float(base.WindowCenter), float(base.WindowWidth)]
    assert vol.spacing == (4.0, 0.3125, 0.3125)


def test_series_with_two_images_at_one_position(ct_small: Path, tmp_path: Path) -> None:
    _write_series(tmp_path, ct_small, [0.0, 2.5, 2.5])
    with pytest.raises(ReadError, match="same position"):
        read_dicom_series(tmp_path)


def test_series_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    assert not is_dicom_series_folder(tmp_path)
    with pytest.raises(ReadError, match="no DICOM image files"):
        read_dicom_series(tmp_path)
