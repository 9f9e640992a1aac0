"""DICOM reading on pydicom's real test files and on series written from them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder

from medseg.errors import ReadError
from medseg.io.dicom import (
    CT_PRESETS,
    is_dicom_file,
    read_dicom,
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
