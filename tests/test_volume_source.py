"""open_volume: the values, dtype and grid medseg.io.load gives, read one slice at a time where the format
allows (a .nii through nibabel's proxy, a DICOM series one file per slice), a .nii.gz decoded once."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from _volume_data import (
    monochrome1_series,
    oblique_display_affine,
    rotated_affine,
    save_nifti,
    synthetic_case,
    write_dicom_series,
)

import medseg.io.dicom_lazy as dicom_lazy
import medseg.io.nifti as nifti
from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io import load
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_source import CACHE_SLICES, IntensityStats, VolumeSource, open_volume

KEYS = [
    3,
    -1,
    np.int64(2),
    slice(2, 5),
    slice(None, None, 3),
    (slice(1, 8, 2), 5),
    (Ellipsis, 4),
    (1, slice(2, 9), slice(None, None, 2)),
    (slice(None), slice(None), slice(3, 4)),
    slice(4, 4),
    (np.array([0, 2, 3]),),
]


def _same_as_load(source: VolumeSource, path: Path) -> None:
    image = load(path)
    assert source.shape == image.array.shape and source.ndim == 3 and len(source) == image.array.shape[0]
    assert source.dtype == image.array.dtype
    assert source.geometry.mismatch(Geometry.from_image(image)) is None
    np.testing.assert_allclose(source.geometry.matrix, Geometry.from_image(image).matrix, atol=1e-9)
    assert source.spacing == pytest.approx(image.spacing)
    for z in range(source.shape[0]):
        np.testing.assert_array_equal(source.slice(z), image.array[z])
    for key in KEYS:
        np.testing.assert_array_equal(source[key], image.array[key], err_msg=str(key))
    np.testing.assert_array_equal(source.array(), image.array)
    np.testing.assert_array_equal(np.asarray(source), image.array)


def _counting(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return calls


# ---------------------------------------------------------------------------------------------- NIfTI


def _affines() -> dict[str, np.ndarray]:
    las = np.diag([-0.9, 0.8, 2.5, 1.0])
    las[:3, 3] = [40.0, -30.0, 12.0]
    sagittal = np.zeros((4, 4))  # voxel i runs up the patient, j to the left, k backwards
    sagittal[:3, :3] = [[0, -0.7, 0], [0, 0, -0.75], [2.0, 0, 0]]
    sagittal[:, 3] = [5.0, 60.0, -80.0, 1.0]
    return {"rotated": rotated_affine(angle_deg=21.0), "las": las, "sagittal": sagittal}


@pytest.mark.parametrize("name", ["rotated", "las", "sagittal"])
def test_nii_slices_are_loads_values_read_through_the_proxy(tmp_path: Path, name: str, monkeypatch) -> None:
    image, _ = synthetic_case((40, 36, 10), seed=1)
    path = save_nifti(tmp_path / f"{name}.nii", image, _affines()[name])
    reads = _counting(monkeypatch, nifti, "read_nifti")
    source = open_volume(path)
    first = source.slice(0)
    assert not reads  # no whole-volume decode behind one slice
    assert first.shape == source.shape[1:]
    monkeypatch.undo()
    _same_as_load(source, path)


def test_nii_with_scaling_gives_float32_as_load(tmp_path: Path) -> None:
    image, _ = synthetic_case((40, 36, 10), seed=3)
    img = nib.Nifti1Image(image, rotated_affine())
    img.header.set_slope_inter(0.5, -100.0)
    nib.save(img, tmp_path / "scaled.nii")
    source = open_volume(tmp_path / "scaled.nii")
    assert source.dtype == np.float32 and source.metadata["rescale"] == {"slope": 0.5, "intercept": -100.0}
    _same_as_load(source, tmp_path / "scaled.nii")


def test_nii_gz_is_decoded_once_on_first_access(tmp_path: Path, monkeypatch) -> None:
    image, _ = synthetic_case((40, 36, 10), seed=4)
    path = save_nifti(tmp_path / "ct.nii.gz", image, rotated_affine())
    reads = _counting(monkeypatch, nifti, "read_nifti")
    source = open_volume(path)
    assert source.geometry.shape == (10, 36, 40) and source.dtype == np.int16 and not reads
    source.slice(4), source[2:6], source.sample_stats()
    assert len(reads) == 1
    monkeypatch.undo()
    _same_as_load(source, path)


def test_real_ct_lazily_as_nii_and_nii_gz(ct_mr_dir: Path, tmp_path: Path) -> None:
    gz = ct_mr_dir / "ct_abdomen.nii.gz"
    raw = tmp_path / "ct_abdomen.nii"
    with gzip.open(gz, "rb") as src, open(raw, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for path in (gz, raw):
        source = open_volume(path)
        assert source.shape == (30, 101, 122)
        _same_as_load(source, path)
    stats = open_volume(raw).sample_stats()
    assert stats.min < -900 and stats.max > 500  # air and bone on the sampled slices: CT in HU


# ---------------------------------------------------------------------------------------------- DICOM


def _series(tmp_path: Path, **kw) -> tuple[Path, list[Path]]:
    image, _ = synthetic_case((40, 36, 12), seed=5)
    files = write_dicom_series(tmp_path / "series", image.transpose(2, 1, 0), oblique_display_affine(), **kw)
    return tmp_path / "series", files


def test_dicom_series_decodes_one_file_per_slice_with_a_cache(tmp_path: Path, monkeypatch) -> None:
    folder, files = _series(tmp_path)
    decoded = _counting(monkeypatch, dicom_lazy, "decode_pixels")
    source = open_volume(folder)
    assert not decoded and source.dtype == np.int16  # headers only at open
    a = source.slice(7)
    assert [Path(c[1]) for c in decoded] == [files[7]]  # the file at position 7, whatever its name
    b = source[7]
    assert len(decoded) == 1 and b is a and not a.flags.writeable  # from the cache
    for z in range(12):
        source.slice(z)
    assert len(decoded) == 12
    monkeypatch.undo()
    _same_as_load(source, folder)
    assert source.metadata["window_presets"] == load(folder).metadata["window_presets"]
    assert source.metadata["affine"] == load(folder).metadata["affine"]


def test_cache_is_bounded(tmp_path: Path, monkeypatch) -> None:
    folder, _ = _series(tmp_path)
    monkeypatch.setattr("medseg.io.volume_source.CACHE_SLICES", 3)
    source = open_volume(folder)
    decoded = _counting(monkeypatch, dicom_lazy, "decode_pixels")
    for z in (0, 1, 2, 3, 0):
        source.slice(z)
    assert len(decoded) == 5 and len(source._cache) == 3  # 0 was dropped for 3, decoded again
    assert CACHE_SLICES >= 8


def test_sideways_series_is_decoded_whole_once_with_loads_values(tmp_path: Path, monkeypatch) -> None:
    image, _ = synthetic_case((40, 36, 10), seed=6)
    affine = rotated_affine(angle_deg=-9.0)
    folder = tmp_path / "sag"
    write_dicom_series(folder, image.transpose(0, 2, 1), affine[:, [0, 2, 1, 3]])  # sagittal slices
    decoded = _counting(monkeypatch, dicom_lazy, "decode_pixels")
    source = open_volume(folder)
    assert source.shape == (10, 36, 40) and not decoded
    source.slice(0), source.slice(5)
    assert len(decoded) == 40  # every file once, for every slice
    monkeypatch.undo()
    _same_as_load(source, folder)


@pytest.mark.parametrize("damage", ["no_positions", "gap"])
def test_series_without_an_affine_is_shown_as_stored_like_load(tmp_path: Path, damage: str) -> None:
    folder, files = _series(tmp_path)
    if damage == "gap":
        files[5].unlink()
    else:
        for f in files:
            ds = pydicom.dcmread(f)
            del ds.ImagePositionPatient
            ds.save_as(f)
    source = open_volume(folder)
    assert "affine" not in source.metadata and source.geometry.matrix[0, 0] == pytest.approx(source.spacing[0])
    _same_as_load(source, folder)


def test_monochrome1_series_has_loads_inverted_values(mr_small: Path, tmp_path: Path) -> None:
    monochrome1_series(mr_small, tmp_path, 4, reverse_names=True)
    source = open_volume(tmp_path)
    assert source.metadata["inverted"] is True
    assert source.metadata["window_presets"]["file"] == load(tmp_path).metadata["window_presets"]["file"]
    _same_as_load(source, tmp_path)


# ---------------------------------------------------------------------------------------------- shared


def test_sample_stats_read_a_few_slices(tmp_path: Path, monkeypatch) -> None:
    folder, _ = _series(tmp_path)
    source = open_volume(folder)
    decoded = _counting(monkeypatch, dicom_lazy, "decode_pixels")
    stats = source.sample_stats(n=4)
    assert isinstance(stats, IntensityStats) and stats.slices == (0, 4, 7, 11) and len(decoded) == 4
    values = load(folder).array[list(stats.slices)].astype(float)
    assert stats.min == values.min() and stats.max == values.max()
    assert stats.percentile(99) == pytest.approx(np.percentile(values, 99))
    assert stats.window() == (pytest.approx(np.percentile(values, 1)), pytest.approx(np.percentile(values, 99)))


def test_napari_takes_it_as_layer_data(tmp_path: Path) -> None:
    napari = pytest.importorskip("napari")
    folder, _ = _series(tmp_path)
    source = open_volume(folder)
    layer = napari.layers.Image(source, contrast_limits=(-1000, 1000), scale=source.spacing)
    assert layer.data is source and layer.ndim == 3
    dims = napari.components.Dims(
        ndim=3, point=(5 * source.spacing[0], 0, 0), range=[(0, n * s, s) for n, s in zip(source.shape, source.spacing)]
    )
    layer._slice_dims(dims)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), source.slice(5))


def test_what_is_no_volume_is_refused_naming_it(tmp_path: Path, ct_small: Path) -> None:
    with pytest.raises(ReadError, match="a DICOM file, not a volume"):
        open_volume(ct_small)
    with pytest.raises(ReadError, match="does not exist"):
        open_volume(tmp_path / "nothing.nii")
    four = nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), np.eye(4))
    nib.save(four, tmp_path / "four.nii")
    with pytest.raises(UnsupportedFormatError, match="4-D NIfTI with 2 volumes") as err:
        open_volume(tmp_path / "four.nii")
    assert err.value.path == tmp_path / "four.nii"
    image, _ = synthetic_case((40, 36, 10))
    path = save_nifti(tmp_path / "cut.nii", image, rotated_affine())
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ReadError, match="is truncated"):
        open_volume(path)
    one = tmp_path / "one"
    write_dicom_series(one, image.transpose(2, 1, 0)[:1], oblique_display_affine())
    with pytest.raises(ReadError, match="one DICOM image"):
        open_volume(one)
