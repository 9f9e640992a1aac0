"""load / can_load: reader choice by content then suffix, folders, re-exports, real files."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

import medseg.io
from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.loader import IMAGE_SUFFIXES, can_load, detect_format, load, suffix_of

RNG = np.random.default_rng(1)


def test_package_re_exports():
    assert medseg.io.load is load and medseg.io.can_load is can_load
    assert medseg.io.ImageData.__name__ == "ImageData"


def test_suffixes():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() for s in IMAGE_SUFFIXES)
    assert suffix_of("/a/B.NII.GZ") == ".nii.gz" and suffix_of("x.Tif") == ".tif" and suffix_of("IM0001") == ""


def _write_all(tmp_path):
    grey = RNG.integers(0, 256, (12, 14), dtype=np.uint8)
    files = {}
    for suffix in (".png", ".bmp", ".tif"):
        files[suffix] = tmp_path / f"img{suffix}"
        Image.fromarray(grey).save(files[suffix]) if suffix != ".tif" else tifffile.imwrite(files[suffix], grey)
    files[".jpg"] = tmp_path / "img.jpg"
    Image.fromarray(grey).save(files[".jpg"], quality=100)
    vol = RNG.integers(0, 1000, (3, 4, 5), dtype=np.int16)
    for suffix in (".nii", ".nii.gz"):
        files[suffix] = tmp_path / f"vol{suffix}"
        nib.save(nib.Nifti1Image(vol, np.eye(4)), files[suffix])
    return grey, vol, files


def test_load_picks_the_right_reader_for_each_format(tmp_path):
    grey, vol, files = _write_all(tmp_path)
    expected_format = {
        ".png": "png",
        ".bmp": "bmp",
        ".tif": "tiff",
        ".jpg": "jpeg",
        ".nii": "nifti",
        ".nii.gz": "nifti",
    }
    for suffix, path in files.items():
        img = load(path)
        assert img.metadata["format"] == expected_format[suffix], suffix
        assert img.metadata["source"] == str(path)
        assert can_load(path)
        if suffix in (".png", ".bmp", ".tif"):
            np.testing.assert_array_equal(img.array, grey)
        elif suffix != ".jpg":
            assert img.array.shape == (5, 4, 3) and sorted(img.array.ravel()) == sorted(vol.ravel())


def test_content_beats_suffix(tmp_path):
    rgb = RNG.integers(0, 256, (10, 11, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "really_png.jpg", format="PNG")
    img = load(tmp_path / "really_png.jpg")
    assert img.metadata["format"] == "png"
    np.testing.assert_array_equal(img.array, rgb)  # lossless: it was never JPEG
    assert "PNG" in img.metadata["suffix_mismatch"]
    # a TIFF named .png, and a gzipped NIfTI with no suffix at all
    tifffile.imwrite(tmp_path / "really_tiff.png", rgb, photometric="rgb")
    assert load(tmp_path / "really_tiff.png").metadata["format"] == "tiff"
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.uint8), np.eye(4)), tmp_path / "v.nii.gz")
    shutil.copy(tmp_path / "v.nii.gz", tmp_path / "volume_download")
    assert load(tmp_path / "volume_download").array.shape == (4, 3, 2)
    assert can_load(tmp_path / "volume_download")


def test_dicom_by_suffix_and_without_suffix(tmp_path, ct_small):
    img = load(ct_small)
    assert img.metadata["format"] == "dicom" and img.metadata["modality"] == "CT"
    assert img.array.shape == (128, 128)
    bare = tmp_path / "IM0001"
    shutil.copy(ct_small, bare)
    assert detect_format(bare).name == "dicom"
    assert can_load(bare)
    np.testing.assert_array_equal(load(bare).array, img.array)


def test_dicom_series_folder(tmp_path, ct_small):
    import pydicom
    from pydicom.uid import generate_uid

    series = tmp_path / "series"
    series.mkdir()
    ds = pydicom.dcmread(ct_small)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    for k in range(3):
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [x, y, z + 2.5 * k]
        ds.InstanceNumber = k + 1
        ds.save_as(series / f"slice{2 - k}.dcm")
    assert can_load(series)
    img = load(series)
    assert img.array.shape == (3, 128, 128)
    assert img.spacing[0] == pytest.approx(2.5)


def test_can_load_is_false_and_quiet_for_what_load_refuses(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty_dir").mkdir()
    junk = tmp_path / "junk_dir"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    assert not can_load(tmp_path / "notes.txt")
    assert not can_load(tmp_path / "does_not_exist.png")
    assert not can_load(tmp_path / "empty_dir")
    assert not can_load(junk)
    assert not can_load("bad\0path.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    assert not can_load(tmp_path / "dangling.png")


@pytest.mark.realdata
def test_load_real_cvc_and_tiff(cvc_dir, noisy_mask_dir):
    for name in ("2.png", "150.png"):
        img = load(cvc_dir / "images" / name)
        assert img.array.shape == (288, 384, 3) and img.rgb and img.array.dtype == np.uint8
    tif = load(noisy_mask_dir / "1.tif")
    assert tif.metadata["format"] == "tiff" and tif.rgb


def test_load_anatomical_nii(anatomical_nii):
    img = load(anatomical_nii)
    assert img.metadata["format"] == "nifti" and img.array.shape == (25, 41, 33)


def test_errors_are_read_errors_with_the_path(tmp_path):
    with pytest.raises(ReadError, match="does not exist") as e:
        load(tmp_path / "missing.png")
    assert e.value.path == tmp_path / "missing.png"
    (tmp_path / "data.xyz").write_bytes(bytes(range(256)))
    with pytest.raises(UnsupportedFormatError, match=r"data\.xyz.*unrecognised binary data"):
        load(tmp_path / "data.xyz")


def test_a_png_is_opened_once_for_its_head_and_once_to_decode(tmp_path, monkeypatch):
    """The head read to tell the format is handed to the DICOM sniffer and the reader, which opened the file
    again each (100,000 small files are created into a workspace in one go: an open per file each)."""
    import builtins
    import io
    import os

    path = tmp_path / "a.png"
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(path)
    opened = []
    real = builtins.open

    def counting(file, *args, **kwargs):
        if str(file) == str(path):
            opened.append(file)
        return real(file, *args, **kwargs)

    real_os_open = os.open

    def counting_os(file, *args, **kwargs):
        if str(file) == str(path):
            opened.append(file)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    monkeypatch.setattr(io, "open", counting)  # pathlib's read_bytes opens through io.open
    monkeypatch.setattr(os, "open", counting_os)  # small files are read with one system call
    assert load(path).array.shape == (40, 60, 3)
    assert len(opened) == 2
