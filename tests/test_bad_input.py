"""Damaged, empty, mislabelled and non-finite inputs: a ReadError naming the file and the cause, never a raw
library exception, never a hang."""

from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.loader import load
from medseg.io.nifti import read_nifti
from medseg.io.raster import read_raster

RNG = np.random.default_rng(2)


def _noise(h=64, w=64, c=None, dtype=np.uint8):
    shape = (h, w) if c is None else (h, w, c)
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


def _write_good(tmp_path, suffix):
    p = tmp_path / f"good{suffix}"
    if suffix in (".png", ".jpg", ".bmp"):
        Image.fromarray(_noise(c=3)).save(p, **({"quality": 95} if suffix == ".jpg" else {}))
    elif suffix == ".tif":
        tifffile.imwrite(p, _noise(dtype=np.uint16))
    else:
        nib.save(nib.Nifti1Image(_noise(16, 16, 16, np.int16), np.eye(4)), p)
    return p


def _truncate(src, dst, keep):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    return dst


def _raises_read_error(fn, path, *words):
    """fn(path) raises ReadError whose text names the file and contains every word (case-insensitive)."""
    with pytest.raises(ReadError) as info:
        fn(path)
    text = str(info.value)
    assert path.name in text, text
    for w in words:
        assert w.lower() in text.lower(), f"{w!r} not in {text!r}"
    return info.value


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".nii", ".nii.gz"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, suffix, keep):
    good = _write_good(tmp_path, suffix)
    bad = _truncate(good, tmp_path / f"cut{suffix}", keep)
    reader = read_nifti if suffix.startswith(".nii") else read_raster
    for fn in (load, reader):
        _raises_read_error(fn, bad, "truncated")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".nii", ".nii.gz"])
def test_files_cut_inside_the_header(tmp_path, suffix):
    bad = _truncate(_write_good(tmp_path, suffix), tmp_path / f"stub{suffix}", 40)
    _raises_read_error(load, bad, "truncated")


def test_corrupt_png_checksum(tmp_path):
    good = _write_good(tmp_path, ".png")
    data = bytearray(good.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # damage the compressed pixel stream
    bad = tmp_path / "crc.png"
    bad.write_bytes(bytes(data))
    _raises_read_error(load, bad, "PNG")


@pytest.mark.parametrize(
    "suffix", [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm", ".xyz"]
)
def test_zero_byte_files(tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    _raises_read_error(load, empty, "empty (0 bytes)")
    if suffix in (".png", ".tif"):
        _raises_read_error(read_raster, empty, "empty (0 bytes)")
    if suffix.startswith(".nii"):
        _raises_read_error(read_nifti, empty, "empty (0 bytes)")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".nii", ".nii.gz", ".tif", ".dcm"])
def test_text_file_with_an_image_suffix(tmp_path, suffix):
    p = tmp_path / f"readme{suffix}"
    p.write_text("Patient list\nid,age\n1,54\n2,61\n" * 20)
    err = _raises_read_error(load, p, "text file", "Patient list")
    assert isinstance(err, UnsupportedFormatError)


def test_html_error_page_saved_as_png(tmp_path):
    p = tmp_path / "download.png"
    p.write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>")
    _raises_read_error(load, p, "HTML page")


def test_other_formats_are_named(tmp_path):
    gif = tmp_path / "anim.gif"
    Image.fromarray(_noise()).save(gif)
    _raises_read_error(load, gif, "GIF image")
    npy = tmp_path / "arr.png"
    np.save(tmp_path / "arr.npy", np.zeros(3))
    npy.write_bytes((tmp_path / "arr.npy").read_bytes())
    _raises_read_error(load, npy, "NumPy")
    gz = tmp_path / "notes.nii.gz"
    gz.write_bytes(gzip.compress(b"just some text, not a NIfTI header" * 20))
    _raises_read_error(load, gz, "gzip")


def test_empty_folder(tmp_path):
    d = tmp_path / "empty_study"
    d.mkdir()
    _raises_read_error(load, d, "folder", "empty")


def test_folder_of_junk_says_what_it_holds(tmp_path):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "a.txt").write_text("a")
    (d / "b.txt").write_text("b")
    (d / "c.csv").write_text("c")
    (d / "sub").mkdir()
    err = _raises_read_error(load, d, "no DICOM", "3 files", "2 .txt", "1 .csv", "1 subfolder")
    assert isinstance(err, UnsupportedFormatError)


def test_nan_and_inf_in_float_tiff(tmp_path):
    a = RNG.random((20, 20)).astype(np.float32)
    a[1, 2] = np.nan
    a[3, 4] = np.inf
    a[5, 6] = -np.inf
    p = tmp_path / "dose.tif"
    tifffile.imwrite(p, a)
    for fn in (load, read_raster):
        _raises_read_error(fn, p, "contains 3 NaN/inf pixels", "1 NaN", "2 inf")
    img = load(p, allow_nonfinite=True)
    assert np.isnan(img.array[1, 2]) and img.array.dtype == np.float32


def test_nan_in_float_nifti(tmp_path):
    v = np.zeros((4, 4, 4), np.float32)
    v[0, 0, 0] = np.nan
    p = tmp_path / "map.nii.gz"
    nib.save(nib.Nifti1Image(v, np.eye(4)), p)
    _raises_read_error(load, p, "contains 1 NaN/inf pixels")
    assert np.isnan(load(p, allow_nonfinite=True).array).sum() == 1


def test_missing_file_and_fifo(tmp_path):
    _raises_read_error(load, tmp_path / "nowhere.png", "does not exist")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block forever
    _raises_read_error(load, fifo, "not a regular file")


def test_unsupported_tiff_layout_is_an_unsupported_format_error(tmp_path):
    p = tmp_path / "cmyk.tif"
    tifffile.imwrite(p, _noise(c=4), photometric="separated")
    err = _raises_read_error(load, p, "SEPARATED")
    assert isinstance(err, UnsupportedFormatError)


def test_uw_madison_name_lies_about_size(tmp_path):
    p = tmp_path / "slice_0001_266_266_1.50_1.50.png"
    Image.fromarray(_noise(dtype=np.uint16)).save(p)
    _raises_read_error(load, p, "266x266", "64x64")
