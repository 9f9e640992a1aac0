"""DICOM files damaged or malformed in the ways met in the wild: each is a clear ReadError naming the file."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.dicom import (
    CT_PRESETS,
    is_dicom_file,
    is_dicom_series_folder,
    read_dicom,
    window_presets,
)


def _testfile(name: str) -> Path:
    p = get_testdata_file(name)
    assert p is not None, f"pydicom-data no longer ships {name}"
    return Path(p)


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
