"""Bytes of image files made to order for the fuzz corpus: PNGs with any header, headers that claim
enormous sizes, TIFF/JPEG/NIfTI/DICOM bytes from arrays and datasets, NIfTI header fields patched."""

from __future__ import annotations

import gzip
import io
import struct
import warnings
import zlib

import numpy as np

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_bytes(
    array: np.ndarray | None,
    *,
    bit_depth: int = 8,
    colour_type: int | None = None,
    palette: list[tuple[int, int, int]] | None = None,
    size: tuple[int, int] | None = None,
    idat: bytes | None = None,
) -> bytes:
    """A PNG written chunk by chunk, so the header may say what the pixels do not.

    ``array`` (H, W[, C]) gives the pixels; ``size`` (width, height) overrides what the
    header claims; ``idat`` replaces the compressed data.
    """
    if array is not None:
        a = np.asarray(array)
        h, w = a.shape[:2]
        channels = 1 if a.ndim == 2 else a.shape[2]
        if colour_type is None:
            colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        dtype = ">u2" if bit_depth == 16 else np.uint8
        rows = a.astype(dtype).reshape(h, -1).view(np.uint8).reshape(h, -1)
        raw = b"".join(b"\x00" + r.tobytes() for r in rows)
        data = zlib.compress(raw, 6) if idat is None else idat
    else:
        w, h = size or (1, 1)
        data = idat if idat is not None else zlib.compress(b"\x00" * 16)
        colour_type = 0 if colour_type is None else colour_type
    if size is not None:
        w, h = size

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    out = _PNG_SIG + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    return out + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def png_bomb(side: int) -> bytes:
    """A valid grey PNG of ``side`` x ``side`` zeros: a few hundred kB that decode to side**2 bytes."""
    comp = zlib.compressobj(1)
    row = b"\x00" * (side + 1)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    return png_bytes(None, size=(side, side), idat=b"".join(parts))


def _pil_bytes(array: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _tiff_bytes(array: np.ndarray, **kw) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kw)
    return buf.getvalue()


def tiff_claiming(width: int, height: int) -> bytes:
    """A 16x16 uint8 TIFF whose ImageWidth / ImageLength tags are rewritten to claim ``width`` x ``height``."""
    import tifffile

    data = bytearray(_tiff_bytes(np.zeros((16, 16), np.uint8), photometric="minisblack"))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages.first.tags
        spots = [(tags["ImageWidth"], width), (tags["ImageLength"], height)]
        for tag, value in spots:
            fmt = "<H" if tag.dtype == 3 else "<I"
            struct.pack_into(fmt, data, tag.valueoffset, value)
    return bytes(data)


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its SOF0/SOF2 frame header rewritten to claim ``width`` x ``height``."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            struct.pack_into(">HH", data, at + 5, height, width)
            break
    return bytes(data)


def _nifti_bytes(array: np.ndarray, affine=None, zooms=None, gz: bool = False, **header) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(array, np.eye(4) if affine is None else affine)
    if zooms is not None:
        img.header["pixdim"][1 : 1 + len(zooms)] = zooms
    for key, value in header.items():
        img.header[key] = value
    raw = img.to_bytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def _patch_nifti(raw: bytes, **fields) -> bytes:
    """Rewrite NIfTI-1 header fields in raw (uncompressed) bytes: dim (8 int16), pixdim (8 float32), datatype,
    scl_slope, scl_inter, srow (12 float32)."""
    data = bytearray(raw)
    e = "<" if struct.unpack_from("<i", data, 0)[0] == 348 else ">"  # nibabel's anatomical.nii is big-endian
    if "dim" in fields:
        struct.pack_into(e + "8h", data, 40, *fields["dim"])
    if "datatype" in fields:
        struct.pack_into(e + "h", data, 70, fields["datatype"])
    if "pixdim" in fields:
        struct.pack_into(e + "8f", data, 76, *fields["pixdim"])
    if "srow" in fields:  # sform rows x, y, z; the sform code set so that readers use them
        struct.pack_into(e + "12f", data, 280, *fields["srow"])
        struct.pack_into(e + "hh", data, 252, 0, 1)
    if "scl_slope" in fields:
        struct.pack_into(e + "f", data, 112, fields["scl_slope"])
    if "scl_inter" in fields:
        struct.pack_into(e + "f", data, 116, fields["scl_inter"])
    return bytes(data)


def _dicom_bytes(ds) -> bytes:
    import pydicom

    implicit, little = ds.original_encoding
    implicit = False if implicit is None else implicit
    little = True if little is None else little
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the encoding is forced so that a transfer syntax UID that is no transfer syntax can be written
        pydicom.dcmwrite(
            buf, ds, implicit_vr=implicit, little_endian=little, enforce_file_format=False, force_encoding=True
        )
    return buf.getvalue()


# ------------------------------------------------------------------ real inputs
