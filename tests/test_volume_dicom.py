"""DICOM series as volumes: the affine from the headers, the display orientation NIfTI volumes share, and
the series a dataset index must refuse (missing or duplicated positions, mixed series, no spacing)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _volume_data import (
    oblique_display_affine,
    rotated_affine,
    save_nifti,
    synthetic_case,
    write_dicom_series,
)
from pydicom.uid import generate_uid

from medseg.errors import ReadError
from medseg.io import load
from medseg.io.dicom import read_dicom_series
from medseg.io.dicom_series import scan_series
from medseg.io.nifti import read_nifti
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_labels import read_label_volume

SHAPE = (10, 36, 40)  # stored (slice, row, col)


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    image, labels = synthetic_case(SHAPE[::-1], seed=seed)
    return image.transpose(2, 1, 0), labels.transpose(2, 1, 0)


@pytest.fixture
def oblique(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, list[Path]]:
    volume, _ = _case()
    affine = oblique_display_affine()
    files = write_dicom_series(tmp_path / "series", volume, affine, shuffle_seed=5)
    return tmp_path / "series", volume, affine, files


def test_oblique_series_reads_back_on_its_source_affine(oblique) -> None:
    folder, volume, affine, files = oblique
    assert sorted(p.name for p in folder.iterdir()) != [p.name for p in files]  # names do not give the order
    image = read_dicom_series(folder)
    np.testing.assert_array_equal(image.array, volume)
    assert image.array.dtype == np.int16
    grid = Geometry.from_image(image)
    source = Geometry(SHAPE, (2.5, 0.8, 0.7), affine)
    assert grid.mismatch(source) is None
    np.testing.assert_allclose(grid.matrix, affine, atol=1e-4)
    assert grid.spacing == pytest.approx((2.5, 0.8, 0.7))
    m = image.metadata
    assert m["files"] == [str(p) for p in files] and m["orientation"] == "SPL" and m["spacing_known"] is True
    assert m["original_orientation"] == "SPL"  # stored already as displayed: nothing turned
    assert load(folder).metadata["affine"] == m["affine"]


def test_affine_agrees_with_nibabels_dicom_wrapper(oblique) -> None:
    """nibabel's own reading of each file (voxel (row, col) of that slice -> LPS mm) is the oracle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental (for Siemens mosaics)
        from nibabel.nicom.dicomwrappers import wrapper_from_file

    folder, _, _, files = oblique
    grid = Geometry.from_image(read_dicom_series(folder))
    to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    for k in (0, 4, 9):
        slice_affine = wrapper_from_file(str(files[k])).affine
        for r, c in ((0, 0), (35, 0), (0, 39), (17, 23)):
            expected = slice_affine @ [r, c, 0, 1]
            np.testing.assert_allclose(to_lps @ grid.matrix @ [k, r, c, 1], expected, atol=1e-4)


def test_sagittal_series_reads_like_the_nifti_it_was_cut_from(tmp_path: Path) -> None:
    """A series stacked along another axis (sagittal slices, rows along z) comes back in the display order
    and on the grid read_nifti gives the same voxels: a NIfTI label of it lies on its grid."""
    image, labels = synthetic_case((40, 36, 10), seed=2)  # NIfTI (i, j, k)
    affine = rotated_affine(angle_deg=-11.0)
    save_nifti(tmp_path / "ref.nii.gz", image, affine)
    save_nifti(tmp_path / "labels.nii.gz", labels, affine)
    # slices along i, rows along k, columns along j
    write_dicom_series(tmp_path / "sag", image.transpose(0, 2, 1), affine[:, [0, 2, 1, 3]], shuffle_seed=1)
    series, ref = read_dicom_series(tmp_path / "sag"), read_nifti(tmp_path / "ref.nii.gz")
    assert series.metadata["original_orientation"] != "SPL" and series.metadata["orientation"] == "SPL"
    np.testing.assert_array_equal(series.array, ref.array)
    assert Geometry.from_image(series).mismatch(Geometry.from_image(ref)) is None
    _, label_grid = read_label_volume(tmp_path / "labels.nii.gz")
    assert Geometry.from_image(series).mismatch(label_grid) is None
    assert series.spacing == pytest.approx(ref.spacing)


def test_label_written_on_the_series_grid_matches_and_an_offset_one_does_not(oblique, tmp_path: Path) -> None:
    folder, volume, affine, _ = oblique
    grid = Geometry.from_image(read_dicom_series(folder))
    _, ids = _case()
    save_nifti(tmp_path / "on.nii.gz", ids, affine)
    shifted = affine.copy()
    shifted[:3, 3] += [0.0, 0.0, 1.25]
    save_nifti(tmp_path / "off.nii.gz", ids, shifted)
    assert grid.mismatch(read_label_volume(tmp_path / "on.nii.gz")[1]) is None
    assert "mm apart" in grid.mismatch(read_label_volume(tmp_path / "off.nii.gz")[1])


def test_scan_reads_headers_only_and_gives_the_same_grid(oblique, monkeypatch) -> None:
    folder, _, affine, files = oblique
    import medseg.io.dicom_series as series_mod

    def no_decoding(*a, **k):
        raise AssertionError("a header scan decoded pixels")

    monkeypatch.setattr(series_mod, "decode_pixels", no_decoding)
    scan = scan_series(folder, strict=True)
    assert scan.files == files
    np.testing.assert_allclose(scan.grid().geometry.matrix, affine, atol=1e-4)


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_slice_is_refused_naming_the_file_after_the_gap(oblique) -> None:
    folder, _, _, files = oblique
    files[4].unlink()
    with pytest.raises(ReadError) as err:
        scan_series(folder, strict=True)
    assert err.value.path == files[5] and files[3].name in str(err.value) and "missing" in str(err.value)
    # read for viewing it still opens, as stored, without an affine that would misplace half of it
    image = read_dicom_series(folder)
    assert image.array.shape[0] == 9 and "affine" not in image.metadata
    assert image.metadata["slice_spacing_uniform"] is False
    assert any("not evenly spaced" in n for n in image.metadata["spacing_notes"])


def test_duplicated_position_names_the_file(oblique) -> None:
    folder, _, _, files = oblique
    ds = pydicom.dcmread(files[3])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    copy = folder / "zz_copy.dcm"
    ds.save_as(copy)
    for strict in (True, False):
        with pytest.raises(ReadError, match="same position") as err:
            scan_series(folder, strict=strict)
        assert err.value.path == copy and files[3].name in str(err.value)


def test_slice_without_position_among_slices_with_one_names_it(oblique) -> None:
    folder, _, _, files = oblique
    ds = pydicom.dcmread(files[6])
    del ds.ImagePositionPatient
    ds.save_as(files[6])
    with pytest.raises(ReadError, match="has no ImagePositionPatient while 9 other slices") as err:
        read_dicom_series(folder)
    assert err.value.path == files[6]


def test_series_without_any_position_is_refused_when_strict(oblique) -> None:
    folder, _, _, files = oblique
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    with pytest.raises(ReadError, match="where the slices .* lie in the patient is unknown"):
        scan_series(folder, strict=True)
    assert read_dicom_series(folder).metadata["slice_order"] == "InstanceNumber"  # viewing still works


def test_mixed_series_in_one_folder_names_a_file_of_each(oblique, tmp_path: Path) -> None:
    folder, volume, affine, files = oblique
    other = write_dicom_series(tmp_path / "other", volume[:4], affine, prefix="OT")
    for f in other:
        shutil.move(f, folder / f.name)
    with pytest.raises(ReadError, match="one folder holds one series") as err:
        scan_series(folder, strict=True)
    assert err.value.path.name.startswith("OT") and "(10 files)" not in str(err.value)
    assert "4 files" in str(err.value) and "10" in str(err.value)
    assert read_dicom_series(folder).metadata["other_series"][0]["n_files"] == 4  # viewing: the largest


def test_series_without_spacing_tags_is_refused_naming_the_file(tmp_path: Path) -> None:
    volume, _ = _case()
    files = write_dicom_series(tmp_path / "s", volume, oblique_display_affine(), drop_tags=("PixelSpacing",))
    with pytest.raises(ReadError, match="has no PixelSpacing: the voxel size of the series") as err:
        scan_series(tmp_path / "s", strict=True)
    assert err.value.path == files[0]
    image = read_dicom_series(tmp_path / "s")
    assert image.metadata["spacing_known"] is False and "affine" not in image.metadata


def test_a_lone_slice_is_no_volume_when_strict(tmp_path: Path) -> None:
    volume, _ = _case()
    (f,) = write_dicom_series(tmp_path / "one", volume[:1], oblique_display_affine())
    with pytest.raises(ReadError, match="only slice") as err:
        scan_series(tmp_path / "one", strict=True)
    assert err.value.path == f
