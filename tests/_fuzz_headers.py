"""The fuzz corpus's DICOM and NIfTI families, and files under a foreign suffix."""

from __future__ import annotations

import gzip
import io
import struct
import warnings
from typing import TYPE_CHECKING

import numpy as np
from _fuzz_bytes import (
    _dicom_bytes,
    _nifti_bytes,
    _patch_nifti,
    _pil_bytes,
    _tiff_bytes,
)
from _fuzz_sources import _dicom_sources, _nifti_sources

if TYPE_CHECKING:
    from _fuzz_corpus import _Builder


def _dicoms(b: _Builder, rounds: int) -> None:
    import pydicom

    sources = _dicom_sources()
    for k, (name, data) in enumerate(sources):
        b.damage("dicom", "dicom", name, data, ".dcm", "image", None, ".png", rounds if k < 4 else 0)
        _swap_tag_bytes(b, name, data, 3 if k < 4 else 1)
    name, data = sources[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = pydicom.dcmread(io.BytesIO(data), force=True)

    def variant(case: str, change) -> None:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        change(ds)
        b.add("dicom", "dicom", f"{name} {case}", _dicom_bytes(ds), ".dcm")

    def set_(keyword, value):
        if isinstance(value, int) or keyword == "PixelData":
            return lambda ds: setattr(ds, keyword, value)
        return lambda ds: _set_raw(ds, keyword, "\\".join(value) if isinstance(value, list) else value)

    def meta(keyword, value):
        return lambda ds: setattr(ds.file_meta, keyword, value)

    variant("without pixel data", lambda ds: delattr(ds, "PixelData"))
    variant("without pixel data or SOP class", lambda ds: (delattr(ds, "PixelData"), delattr(ds, "SOPClassUID")))
    variant(
        "without pixel data, SOP class UID of two values",
        lambda ds: (delattr(ds, "PixelData"), _set_raw(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2\\1.2.3")),
    )
    variant("unknown transfer syntax", meta("TransferSyntaxUID", "1.2.3.4.5.6.7"))
    variant("transfer syntax is a SOP class UID", meta("TransferSyntaxUID", "1.2.840.10008.5.1.4.1.1.2"))
    explicit_le = b"1.2.840.10008.1.2.1\x00"
    if explicit_le in data:  # same length, so no length field changes: RLE Lossless said of raw pixels
        b.add(
            "dicom",
            "dicom",
            f"{name} RLE transfer syntax on raw pixels",
            data.replace(explicit_le, b"1.2.840.10008.1.2.5\x00", 1),
            ".dcm",
        )
    variant("without transfer syntax", lambda ds: delattr(ds.file_meta, "TransferSyntaxUID"))
    for spacing in (["0", "0"], ["-1", "-1"], ["nan", "nan"], ["inf", "1"], ["abc", "1"], ["1"]):
        variant(f"PixelSpacing {'/'.join(spacing)}", set_("PixelSpacing", spacing))
    variant("SliceThickness NaN", set_("SliceThickness", "nan"))
    for kw, value in (
        ("Rows", 0),
        ("Rows", 65535),
        ("Columns", 1),
        ("BitsAllocated", 0),
        ("BitsAllocated", 7),
        ("BitsAllocated", 64),
        ("BitsStored", 40),
        ("SamplesPerPixel", 0),
        ("SamplesPerPixel", 3),
        ("PhotometricInterpretation", "FOO"),
        ("PhotometricInterpretation", "PALETTE COLOR"),
        ("PixelRepresentation", 7),
        ("NumberOfFrames", "1000000"),
        ("NumberOfFrames", "-1"),
        ("NumberOfFrames", "abc"),
        ("RescaleSlope", "nan"),
        ("RescaleSlope", "inf"),
        ("RescaleSlope", "0"),
        ("RescaleIntercept", "1e300"),
        ("WindowCenter", "x"),
        ("WindowWidth", "0"),
        ("ImageOrientationPatient", ["1", "0", "0", "1", "0"]),
        ("SOPClassUID", "1.2.3"),
        ("Modality", "\\".join(["CT"] * 3)),
    ):
        variant(f"{kw} {value}", set_(kw, value))
    variant("pixel data one byte short", lambda ds: setattr(ds, "PixelData", ds.PixelData[:-1]))
    variant("pixel data empty", set_("PixelData", b""))
    del base


def _set_raw(ds, keyword: str, text: str) -> None:
    """Store ``text`` as the element's bytes, unchecked: pydicom refuses 'abc' for a decimal string on assignment."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    value = text.encode("ascii")
    if len(value) % 2:
        value += b" "
    ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _swap_tag_bytes(b: _Builder, name: str, data: bytes, variants: int) -> None:
    """Swap the bytes of element tags (group 0x0028 -> 0x2800 ...) and VRs, as a byte-order mix-up would."""
    tags = [
        struct.pack("<HH", g, e)
        for g, e in (
            (0x0028, 0x0010),
            (0x0028, 0x0011),
            (0x0028, 0x0100),
            (0x0028, 0x0030),
            (0x0008, 0x0016),
            (0x0028, 0x0004),
            (0x0028, 0x0002),
            (0x0008, 0x0060),
            (0x7FE0, 0x0010),
        )
    ]
    present = [t for t in tags if data.find(t, 132) >= 0]
    for v in range(variants):
        d = bytearray(data)
        picks = b.rng.choice(len(present), size=min(len(present), 2 + v), replace=False) if present else []
        for i in picks:
            at = d.find(present[int(i)], 132)
            d[at : at + 4] = bytes([d[at + 1], d[at], d[at + 3], d[at + 2]])
            if v % 2 and d[at + 4 : at + 6].isalpha():  # and the VR's two letters
                d[at + 4], d[at + 5] = d[at + 5], d[at + 4]
        b.add("dicom", "dicom", f"{name} tag bytes swapped v{v}", bytes(d), ".dcm")
    # the SOP Class UID made multi-valued, as a flipped byte turning '.' into '\\' does
    at = data.find(b"1.2.840.10008.5.1.4.1.1", 132)
    if at >= 0:
        d = bytearray(data)
        d[at + 5] = ord("\\")
        b.add("dicom", "dicom", f"{name} UID with a backslash", bytes(d), ".dcm")


def _niftis(b: _Builder, rng: np.random.Generator, rounds: int) -> None:
    sources = _nifti_sources(rng)
    for name, data, role in sources:
        suffix = ".nii.gz" if data[:2] == b"\x1f\x8b" else ".nii"
        b.damage("nifti", "nifti", name, data, suffix, role, None, ".png", rounds)
    name, data, _ = sources[0]
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    vol = rng.integers(0, 1000, (12, 10, 6)).astype(np.int16)

    def put(case: str, payload: bytes, suffix: str = ".nii") -> None:
        b.add("nifti", "nifti", case, payload, suffix)

    put("4-D NIfTI 3 volumes", _nifti_bytes(np.stack([vol] * 3, -1)))
    put("4-D NIfTI 1 volume", _nifti_bytes(vol[..., None]))
    put("5-D NIfTI", _nifti_bytes(vol[..., None, None].repeat(2, -1)))
    put("2-D NIfTI", _nifti_bytes(vol[..., 0]))
    put("1x1x1 NIfTI", _nifti_bytes(vol[:1, :1, :1]))
    put("1xNx1 NIfTI", _nifti_bytes(vol[:1, :, :1]))
    put("zero spacing", _nifti_bytes(vol, zooms=(0, 0, 0)))
    put("negative spacing", _nifti_bytes(vol, zooms=(-1, -2, -3)))
    put("NaN spacing", _nifti_bytes(vol, zooms=(np.nan, np.nan, np.nan)))
    put("NaN affine", _patch_nifti(_nifti_bytes(vol), srow=[float("nan")] * 12))
    put("zero affine", _patch_nifti(_nifti_bytes(vol), srow=[0.0] * 12))
    fvol = vol.astype(np.float32)
    fvol[0, 0, 0], fvol[1, 1, 1] = np.nan, np.inf
    put("float NaN/inf voxels", _nifti_bytes(fvol))
    put("complex voxels", _nifti_bytes(vol.astype(np.complex64)))
    put("RGB voxels", _nifti_bytes(np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])))
    put("scl_slope NaN", _patch_nifti(raw, scl_slope=float("nan")))
    put("scl_slope inf", _patch_nifti(raw, scl_slope=float("inf"), scl_inter=1.0))
    put(
        "dims claim 30000^3 (gz)",
        gzip.compress(_patch_nifti(raw, dim=[3, 30000, 30000, 30000, 1, 1, 1, 1]), mtime=0),
        ".nii.gz",
    )
    put("dims claim 30000^3", _patch_nifti(raw, dim=[3, 30000, 30000, 30000, 1, 1, 1, 1]))
    put("dim[0] 0", _patch_nifti(raw, dim=[0, 1, 1, 1, 1, 1, 1, 1]))
    put("dim[0] 9", _patch_nifti(raw, dim=[9, 2, 2, 2, 2, 2, 2, 2]))
    put("negative dims", _patch_nifti(raw, dim=[3, -5, 10, 10, 1, 1, 1, 1]))
    put("unknown datatype 999", _patch_nifti(raw, datatype=999))
    put("pixdim all NaN", _patch_nifti(raw, pixdim=[1.0] + [float("nan")] * 7))
    big = np.zeros((1, 1, 1), np.uint8)
    put(
        "gz bomb claims 2048^3 zeros",
        gzip.compress(
            _patch_nifti(_nifti_bytes(big), dim=[3, 2048, 2048, 2048, 1, 1, 1, 1]) + b"\x00" * (1 << 16), mtime=0
        ),
        ".nii.gz",
    )


def _foreign(b: _Builder, pairs) -> None:
    """Zero-byte and text files under image suffixes; real files under another format's suffix."""
    img_png, msk_png, img, _, name = pairs[0]
    for suffix in (".png", ".jpg", ".tif", ".bmp", ".dcm", ".nii", ".nii.gz"):
        b.add("foreign", "other", f"0-byte {suffix}", b"", suffix, "image", msk_png)
    b.add("foreign", "other", "0-byte mask", b"", ".png", "mask", img_png)
    b.add(
        "foreign",
        "other",
        "HTML page named png",
        b"<!DOCTYPE html><html><body>404</body></html>",
        ".png",
        "image",
        msk_png,
    )
    b.add("foreign", "other", "text named dcm", b"patient,slice\n1,2\n", ".dcm", "image", msk_png)
    b.add(
        "foreign", "other", "gzip of text named nii.gz", gzip.compress(b"hello", mtime=0), ".nii.gz", "image", msk_png
    )
    b.add("foreign", "other", "no suffix", img_png, "", "image", msk_png)
    b.add("foreign", "other", "unknown suffix .dat", img_png, ".dat", "image", msk_png)
    jpeg = _pil_bytes(img, "JPEG")
    tiff = _tiff_bytes(img, photometric="rgb")
    dcm = _dicom_sources()[0][1]
    nii = _nifti_sources(np.random.default_rng(0))[0][1]
    for case, data, suffix, kind in (
        ("PNG named .jpg", img_png, ".jpg", "png"),
        ("PNG named .tif", img_png, ".tif", "png"),
        ("PNG named .dcm", img_png, ".dcm", "png"),
        ("PNG named .nii", img_png, ".nii", "png"),
        ("JPEG named .png", jpeg, ".png", "jpeg"),
        ("TIFF named .png", tiff, ".png", "tiff"),
        ("DICOM named .png", dcm, ".png", "dicom"),
        ("DICOM named .nii", dcm, ".nii", "dicom"),
        ("DICOM named .tif", dcm, ".tif", "dicom"),
        ("NIfTI named .png", nii, ".png", "nifti"),
        ("NIfTI named .dcm", nii, ".dcm", "nifti"),
    ):
        b.add("foreign", kind, case, data, suffix, "image", msk_png)
    b.add("foreign", "png", "mask PNG named .jpg", msk_png, ".jpg", "mask", img_png)
    b.add("foreign", "jpeg", "mask JPEG named .png", _pil_bytes(pairs[0][3], "JPEG"), ".png", "mask", img_png)
