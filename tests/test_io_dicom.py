"""DICOM reading on pydicom's real test files and on series written from them."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _volume_data import monochrome1_series
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import generate_uid

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.dicom import (
    CT_PRESETS,
    is_dicom_file,
    is_dicom_series_folder,
    read_dicom,
    read_dicom_series,
    window_presets,
)
from medseg.io.types import ImageData


def _testfile(name: str) -> Path:
    p = get_testdata_file(name)
    assert p is not None, f"pydicom-data no longer ships {name}"
    return Path(p)


@pytest.fixture(scope="module")
def chest(chest_xray: Path) -> tuple[ImageData, pydicom.Dataset]:
    return read_dicom(chest_xray), pydicom.dcmread(chest_xray)


# ---------------------------------------------------------------- single files


def test_ct_small_in_hounsfield_units(ct_small: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    img = read_dicom(ct_small)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    assert (slope, intercept) == (1.0, -1024.0)
    assert img.array.dtype == np.int16
    np.testing.assert_array_equal(img.array, ds.pixel_array.astype(np.int32) * int(slope) + int(intercept))
    # plausible HU: nothing below air, both soft tissue/fat (<0) and denser tissue (>100)
    assert img.array.min() >= -1024 and img.array.max() <= 3071
    assert (img.array < 0).any() and (img.array > 100).any()
    m = img.metadata
    assert img.spacing == tuple(float(v) for v in ds.PixelSpacing) == (0.661468, 0.661468)
    assert m["spacing_known"] is True and m["pixel_spacing_source"] == "PixelSpacing"
    assert m["format"] == "dicom" and m["modality"] == "CT" and m["photometric"] == "MONOCHROME2"
    assert m["rescale"] == {"slope": 1.0, "intercept": -1024.0}
    assert m["study_uid"] == ds.StudyInstanceUID and m["series_uid"] == ds.SeriesInstanceUID
    assert m["sop_uids"] == [ds.SOPInstanceUID]
    assert m["bits_stored"] == 16 and m["transfer_syntax"] == "Explicit VR Little Endian"
    assert m["dtype"] == str(ds.pixel_array.dtype)
    for name, cw in CT_PRESETS.items():
        assert tuple(m["window_presets"][name]) == cw
    json.dumps(m)


def test_ct_presets_are_the_published_values() -> None:
    assert CT_PRESETS["lung"] == (-600.0, 1500.0)
    assert CT_PRESETS["soft_tissue"] == (40.0, 400.0)
    assert CT_PRESETS["brain"] == (40.0, 80.0)
    assert CT_PRESETS["bone"] == (400.0, 1800.0)
    assert {"mediastinum", "abdomen", "liver"} <= set(CT_PRESETS)


def test_metadata_is_patient_free(ct_small: Path, chest_xray: Path) -> None:
    for path in (ct_small, chest_xray):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        text = json.dumps(read_dicom(path).metadata)
        identifying = [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate")]
        identifying = [v for v in identifying if v]
        assert identifying, f"{path.name} should carry patient fields for this test to mean anything"
        for value in identifying:
            assert value not in text


def test_mr_small_keeps_integers_and_file_window(mr_small: Path) -> None:
    ds = pydicom.dcmread(mr_small)
    img = read_dicom(mr_small)
    np.testing.assert_array_equal(img.array, ds.pixel_array)
    assert img.array.dtype == ds.pixel_array.dtype
    assert img.metadata["modality"] == "MR" and img.metadata["rescale"] is None
    assert img.spacing == (0.3125, 0.3125)
    presets = window_presets(img)
    assert presets == {"file": (float(ds.WindowCenter), float(ds.WindowWidth))}
    assert "lung" not in presets  # CT presets only for CT


def test_chest_xray_monochrome1_is_inverted_exactly(chest, chest_xray: Path) -> None:
    img, ds = chest
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.PixelRepresentation == 0
    top = 2 ** int(ds.BitsStored) - 1
    raw = ds.pixel_array
    assert img.array.dtype == raw.dtype
    np.testing.assert_array_equal(img.array, (top + 0) - raw.astype(np.int64))
    m = img.metadata
    assert m["inverted"] is True and m["photometric"] == "MONOCHROME2"
    assert m["original_photometric"] == "MONOCHROME1" and m["inversion_range"] == [0.0, float(top)]
    assert m["modality"] == "CR"
    # the file's window centre moves with the pixels; the width does not
    assert window_presets(img)["file"] == (top - float(ds.WindowCenter), float(ds.WindowWidth))
    assert window_presets(ds) == window_presets(img)
    assert window_presets(chest_xray) == window_presets(img)


def test_chest_xray_looks_conventional_after_inversion(chest) -> None:
    img, _ = chest
    a = img.array.astype(float)
    h, w = a.shape

    def mean(r0, r1, c0, c1):
        return a[int(r0 * h) : int(r1 * h), int(c0 * w) : int(c1 * w)].mean()

    right_lung, left_lung = mean(0.15, 0.4, 0.2, 0.35), mean(0.15, 0.4, 0.62, 0.78)
    spine = mean(0.15, 0.4, 0.46, 0.54)
    assert right_lung < spine and left_lung < spine
    assert spine - max(left_lung, right_lung) > 0.1 * (a.max() - a.min())


def test_chest_xray_zero_pixel_spacing_is_unknown(chest) -> None:
    img, ds = chest
    assert [float(v) for v in ds.PixelSpacing] == [0.0, 0.0]  # the header really says 0
    assert img.spacing == (1.0, 1.0)
    assert img.metadata["spacing_known"] is False and img.metadata["pixel_spacing_source"] is None
    assert "PixelSpacing" in img.metadata["spacing_notes"][0]


def test_imager_pixel_spacing_used_when_no_pixel_spacing(mr_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(mr_small)
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.139, 0.143]
    out = tmp_path / "cr_like.dcm"
    ds.save_as(out)
    img = read_dicom(out)
    assert img.spacing == (0.139, 0.143)
    assert img.metadata["pixel_spacing_source"] == "ImagerPixelSpacing" and img.metadata["spacing_known"]


def test_multiframe_emri_small() -> None:
    path = _testfile("emri_small.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom(path)
    assert int(ds.NumberOfFrames) == 10
    assert img.array.shape == (10, 64, 64)
    np.testing.assert_array_equal(img.array, ds.pixel_array)
    assert img.spacing[0] == float(ds.SpacingBetweenSlices)
    assert img.metadata["slice_spacing_source"] == "SpacingBetweenSlices"
    assert img.metadata["n_frames"] == 10
    assert img.metadata["spacing_known"] is False  # no in-plane spacing in this file


def test_enhanced_ct_uses_functional_groups() -> None:
    path = _testfile("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    img = read_dicom(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    pix = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    assert img.array.shape == (2, 512, 512)
    assert img.spacing == pytest.approx((abs(z[1] - z[0]), *pix))
    assert img.metadata["slice_spacing_source"].endswith("ImagePositionPatient")
    intercept = float(shared.PixelValueTransformationSequence[0].RescaleIntercept)
    np.testing.assert_array_equal(img.array, ds.pixel_array.astype(np.int32) + int(intercept))
    assert img.array.dtype == np.int16 and img.metadata["spacing_known"] is True
    assert "file" in img.metadata["window_presets"] and "lung" in img.metadata["window_presets"]


def test_ybr_becomes_rgb() -> None:
    ybr = read_dicom(_testfile("SC_ybr_full_422_uncompressed.dcm"))
    rgb = read_dicom(_testfile("SC_rgb.dcm"))
    assert ybr.rgb and ybr.array.shape == (100, 100, 3) == rgb.array.shape
    assert ybr.metadata["photometric"] == "RGB" and ybr.metadata["original_photometric"] == "YBR_FULL_422"
    # the same picture; YCbCr 4:2:2 rounding costs a few levels
    assert np.abs(ybr.array.astype(int) - rgb.array.astype(int)).max() <= 8
    assert tuple(ybr.array[0, 0]) == pytest.approx((255, 0, 0), abs=2)


def test_palette_colour_becomes_rgb() -> None:
    path = _testfile("OBXXXX1A.dcm")
    img = read_dicom(path)
    assert img.rgb and img.array.shape == (600, 800, 3)
    assert img.metadata["original_photometric"] == "PALETTE COLOR"
    assert (img.array[..., 0] != img.array[..., 2]).any()  # real colour, not grey copied thrice


def test_preamble_less_file(ct_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    ds.preamble = None
    del ds.file_meta
    out = tmp_path / "bare.dcm"
    pydicom.dcmwrite(out, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    assert out.read_bytes()[128:132] != b"DICM"
    assert is_dicom_file(out)
    np.testing.assert_array_equal(read_dicom(out).array, read_dicom(ct_small).array)


def test_reading_never_modifies_the_source(ct_small: Path) -> None:
    before = hashlib.sha256(ct_small.read_bytes()).hexdigest()
    read_dicom(ct_small)
    assert hashlib.sha256(ct_small.read_bytes()).hexdigest() == before


# ---------------------------------------------------------------- compression


def test_rle_decodes_to_the_uncompressed_pixels(mr_small: Path) -> None:
    rle = read_dicom(_testfile("MR_small_RLE.dcm"))
    assert rle.metadata["transfer_syntax"] == "RLE Lossless"
    np.testing.assert_array_equal(rle.array, read_dicom(mr_small).array)


@pytest.mark.parametrize(
    "name, reference",
    [
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("JPEG-LL.dcm", None),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
    ],
)
def test_jpeg_family_decodes_or_names_the_missing_package(name: str, reference: str | None) -> None:
    path = _testfile(name)
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if get_decoder(ts).is_available:
        img = read_dicom(path)
        if reference is not None:
            np.testing.assert_array_equal(img.array, read_dicom(_testfile(reference)).array)
        else:
            assert img.array.ndim == 2 and img.array.std() > 0
        assert img.metadata["transfer_syntax"] == ts.name
    else:
        with pytest.raises(ReadError) as err:
            read_dicom(path)
        msg = str(err.value)
        assert name in msg and ts.name in msg and str(ts) in msg
        assert "install one of" in msg and ("pylibjpeg" in msg or "gdcm" in msg)
        assert err.value.path == path


# ---------------------------------------------------------------- bad input


def test_truncated_pixel_data(ct_small: Path, tmp_path: Path) -> None:
    data = ct_small.read_bytes()
    half = tmp_path / "half.dcm"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError) as err:
        read_dicom(half)
    assert "half.dcm" in str(err.value) and "pixel data" in str(err.value)


def test_truncated_header(ct_small: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(ct_small.read_bytes()[:400])
    with pytest.raises(ReadError) as err:
        read_dicom(cut)
    assert "cut.dcm" in str(err.value) and ("truncated" in str(err.value) or "damaged" in str(err.value))


def test_text_file_renamed_dcm(tmp_path: Path) -> None:
    fake = tmp_path / "notes.dcm"
    fake.write_text("patient list\nnot an image\n" * 20)
    assert not is_dicom_file(fake)
    with pytest.raises(UnsupportedFormatError) as err:
        read_dicom(fake)
    assert "notes.dcm" in str(err.value) and "not a DICOM file" in str(err.value)


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert not is_dicom_file(empty)
    with pytest.raises(ReadError, match=r"empty\.dcm: empty file"):
        read_dicom(empty)


def test_dicom_without_pixel_data(ct_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    del ds.PixelData
    out = tmp_path / "nopixels.dcm"
    ds.save_as(out)
    with pytest.raises(ReadError, match=r"nopixels\.dcm: holds no pixel data \(CT Image Storage\)"):
        read_dicom(out)
    report = _testfile("reportsi.dcm")
    with pytest.raises(ReadError) as err:
        read_dicom(report)
    assert "reportsi.dcm" in str(err.value) and "no pixel data" in str(err.value)


def _set_text(ds: pydicom.Dataset, keyword: str, text: str) -> None:
    """Store ``text`` as the element's raw bytes, unchecked, as a damaged file holds it."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    value = text.encode("ascii") + (b" " if len(text) % 2 else b"")
    ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _write_forced(ds: pydicom.Dataset, out: Path) -> Path:
    """Write with the encoding given, so a file meta naming no transfer syntax can be written."""
    pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=True, enforce_file_format=False, force_encoding=True)
    return out


def test_multi_valued_sop_class_without_pixels_names_the_file(ct_small: Path, tmp_path: Path) -> None:
    # a flipped byte that turns a '.' into '\' makes the SOP Class UID two values, which have no .name
    ds = pydicom.dcmread(ct_small)
    del ds.PixelData
    _set_text(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2\\1.2.3")
    out = _write_forced(ds, tmp_path / "twouids.dcm")
    with pytest.raises(
        ReadError, match=r"twouids\.dcm: holds no pixel data \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.2\\1\.2\.3\)"
    ):
        read_dicom(out)


@pytest.mark.parametrize("uid, named", [("1.2.3.4.5.6.7", ""), ("1.2.840.10008.5.1.4.1.1.2", " (CT Image Storage)")])
def test_transfer_syntax_uid_that_is_no_transfer_syntax(ct_small: Path, tmp_path: Path, uid: str, named: str) -> None:
    ds = pydicom.dcmread(ct_small)
    ds.file_meta.TransferSyntaxUID = uid
    out = _write_forced(ds, tmp_path / "badts.dcm")
    with pytest.raises(ReadError) as err:
        read_dicom(out)
    assert str(err.value) == (
        f"{out}: TransferSyntaxUID '{uid}'{named} is not a transfer syntax: the file meta is "
        "damaged, so the pixel encoding is unknown"
    )


def test_damaged_rescale_is_a_read_error_and_damaged_orientation_a_note(ct_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    _set_text(ds, "RescaleSlope", "0.p")
    out = _write_forced(ds, tmp_path / "slope.dcm")
    with pytest.raises(
        ReadError, match=r"slope\.dcm: RescaleSlope '0\.p' is not a number: the DICOM header is damaged"
    ):
        read_dicom(out)
    ds = pydicom.dcmread(ct_small)
    _set_text(ds, "ImageOrientationPatient", "1\\0\\0\\0.p\\1\\0")
    image = read_dicom(_write_forced(ds, tmp_path / "iop.dcm"))
    assert "image_orientation_patient" not in image.metadata
    assert any("ImageOrientationPatient" in n and "ignored" in n for n in image.metadata["spacing_notes"])
    assert image.array.shape == (128, 128)


def test_pixel_data_holding_more_frames_than_the_header_says(ct_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    ds.Columns = 1  # the 128 x 128 pixels now read as 128 frames of 128 x 1
    out = _write_forced(ds, tmp_path / "cols.dcm")
    with pytest.raises(
        ReadError,
        match=r"cols\.dcm: pixel data decodes to shape \(128, 128, 1\) but the header "
        r"says 1 frame\(s\) of 128 x 1 pixels",
    ):
        read_dicom(out)


def test_detectors_never_raise(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x08\x00" + bytes(range(256)) * 8)
    for p in (junk, tmp_path, tmp_path / "missing.dcm"):
        assert is_dicom_file(p) is False
    assert is_dicom_series_folder(tmp_path / "missing") is False
    assert is_dicom_series_folder(junk) is False
    with pytest.raises(ReadError, match="no such file"):
        read_dicom(tmp_path / "missing.dcm")


# ---------------------------------------------------------------- windows


def test_multi_valued_windows_with_and_without_names(ct_small: Path) -> None:
    ds = pydicom.dcmread(ct_small, stop_before_pixels=True)
    ds.WindowCenter, ds.WindowWidth = [40, -500], [350, 1400]
    ds.WindowCenterWidthExplanation = ["SOFT", "LUNG WIDE"]
    presets = window_presets(ds)
    assert presets["SOFT"] == (40.0, 350.0) and presets["LUNG WIDE"] == (-500.0, 1400.0)
    assert presets["lung"] == CT_PRESETS["lung"]
    assert list(presets)[:2] == ["SOFT", "LUNG WIDE"]
    del ds.WindowCenterWidthExplanation
    presets = window_presets(ds)
    assert presets["file_1"] == (40.0, 350.0) and presets["file_2"] == (-500.0, 1400.0)


# ---------------------------------------------------------------- series


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


def test_header_claiming_a_huge_frame_is_refused_before_decoding(ct_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(ct_small)
    ds.Rows = ds.Columns = 65535
    out = _write_forced(ds, tmp_path / "huge.dcm")
    with pytest.raises(ReadError, match=r"huge\.dcm: header claims 65535 x 65535 pixels .* more than the 134,217,728"):
        read_dicom(out)


def test_element_with_an_unknown_vr_is_a_read_error(ct_small: Path, tmp_path: Path) -> None:
    # a flipped bit turned Columns' VR 'US' into 'UQ': pydicom raises NotImplementedError when it is used
    data = ct_small.read_bytes()
    tag = b"\x28\x00\x11\x00US"
    assert data.count(tag) == 1
    out = tmp_path / "vr.dcm"
    out.write_bytes(data.replace(tag, b"\x28\x00\x11\x00UQ"))
    with pytest.raises(
        ReadError,
        match=r"vr\.dcm: a DICOM element is damaged \(NotImplementedError: Unknown Value "
        r"Representation 'UQ' in tag \(0028,0011\)\)",
    ):
        read_dicom(out)
