"""PNG, JPEG, BMP and TIFF images as ``ImageData``.

Pillow decodes PNG / JPEG / BMP; tifffile decodes TIFF (Pillow takes over for
TIFF compressions tifffile needs ``imagecodecs`` for, such as LZW and JPEG).
Pixels come back as stored: 16-bit stays uint16, RGBA keeps its alpha, EXIF
orientation is not applied (masks drawn on the stored pixels stay aligned).
Palette images become RGB(A) here; masks are read by ``medseg.io.masks``. TIFF lives in
:mod:`medseg.io.tiff`, the pixel conversions both share in :mod:`medseg.io.raster_pixels`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.limits import bomb_error, check_size, open_image
from medseg.io.raster_pixels import base_metadata, pil_to_array
from medseg.io.tiff import read_tiff
from medseg.io.types import ImageData
from medseg.io.uwmadison import parse_uw_slice_name

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}

_PIL_FORMATS = {"png", "jpeg", "bmp"}
_SUFFIX_FORMAT = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_MODE_BITS = {
    "1": 1,
    "L": 8,
    "P": 8,
    "LA": 8,
    "PA": 8,
    "RGB": 8,
    "RGBA": 8,
    "I;16": 16,
    "I;16L": 16,
    "I;16B": 16,
    "I;16N": 16,
    "I": 32,
    "F": 32,
}


def raster_format(head: bytes) -> str | None:
    """ "png", "jpeg", "bmp" or "tiff" from a file's first bytes (at least 32), else None."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(TIFF_MAGICS):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    return None


def reject_nonfinite(path: str | Path, array: np.ndarray) -> None:
    """Raise ReadError when a float array holds NaN or infinity (they break display and training)."""
    if array.dtype.kind not in "fc":
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        n_nan = int(np.count_nonzero(np.isnan(array)))
        raise ReadError(
            path,
            f"contains {bad} NaN/inf pixels ({n_nan} NaN, {bad - n_nan} inf) "
            f"of {array.size}: they can be neither shown nor trained on; replace them with numbers in the file "
            "(from Python, medseg.io.load(path, allow_nonfinite=True) reads it as it is)",
        )


def read_raster(path: str | Path, *, allow_nonfinite: bool = False, head: bytes | None = None) -> ImageData:
    """Read a PNG, JPEG, BMP or (multi-page) TIFF file.

    The format is taken from the content, else the suffix. Multi-page TIFF gives
    (slice, row, col[, channel]). Spacing comes from TIFF resolution tags or
    ImageJ metadata when they are physical, from a UW-Madison slice name, else 1.0
    (``metadata['spacing_known']`` False). Float images with NaN/inf raise ReadError
    unless ``allow_nonfinite``. ``head``: the file's first bytes (at least 64, or the whole
    file) when the caller has read them: the file is then opened once more, to decode.
    """
    path = Path(path)
    head = _head(path) if head is None else head
    fmt = raster_format(head) or _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(path, "is not a PNG, JPEG, BMP or TIFF image")
    if fmt == "tiff":
        image = read_tiff(path)
    else:
        image = _read_pillow(path, fmt, head)
    if not allow_nonfinite:
        reject_nonfinite(path, image.array)
    return _apply_uw_name(path, image)


def _head(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(n)
    except OSError as e:
        raise ReadError(path, f"cannot open: {e.strerror or e}") from e
    if not head:
        raise ReadError(path, "is empty (0 bytes)")
    return head


# ---------------------------------------------------------------- Pillow formats


def _read_pillow(path: Path, fmt: str, head: bytes) -> ImageData:
    if fmt == "png" and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6):
        return _read_png_colour16(path)
    from PIL import Image

    try:
        with open_image(path) as im:  # the size is checked before decoding
            im.load()
            mode = im.mode
            array, photometric = pil_to_array(im)
            orientation = im.getexif().get(0x0112, 1) if fmt == "jpeg" else 1
    except Image.DecompressionBombError as e:  # a frame past the first claiming more than its header
        raise bomb_error(path, e) from None
    except ReadError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise ReadError(path, f"cannot decode {fmt.upper()} data (truncated or corrupt file): {e}") from e
    bits = head[24] if fmt == "png" and len(head) >= 25 else _MODE_BITS.get(mode)
    meta = base_metadata(path, fmt, photometric, array.dtype, bits)
    meta["mode"] = mode
    if mode in ("P", "PA", "LA"):
        meta["original_photometric"] = {"LA": "MONOCHROME2+ALPHA"}.get(mode, "PALETTE")
    if orientation != 1:
        meta["exif_orientation"] = int(orientation)  # recorded, not applied
    return ImageData(array, (1.0, 1.0), meta, rgb=array.ndim == 3)


def _read_png_colour16(path: Path) -> ImageData:
    """16-bit colour PNG: Pillow would reduce it to 8 bits, OpenCV keeps all 16."""
    try:
        import cv2
    except ImportError as e:
        raise ReadError(
            path,
            "is a 16-bit colour PNG; reading it without losing bits needs "
            "opencv-python-headless (pip install opencv-python-headless)",
        ) from e
    with open(path, "rb") as f:
        width, height = struct.unpack(">II", f.read(24)[16:24])  # IHDR, checked: OpenCV decodes what it is told
    check_size(path, (height, width))
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ReadError(path, "cannot decode 16-bit colour PNG data (truncated or corrupt file)")
    a = np.ascontiguousarray(a[..., [2, 1, 0]] if a.shape[2] == 3 else a[..., [2, 1, 0, 3]])
    photometric = "RGB" if a.shape[2] == 3 else "RGBA"
    meta = base_metadata(path, "png", photometric, a.dtype, 16)
    return ImageData(a, (1.0, 1.0), meta, rgb=True)


# ---------------------------------------------------------------- UW-Madison names


def _apply_uw_name(path: Path, image: ImageData) -> ImageData:
    uw = parse_uw_slice_name(path.name)
    if uw is None or image.spatial_ndim != 2:
        return image
    rows, cols = image.array.shape[:2]
    if (rows, cols) != (uw.height, uw.width):
        raise ReadError(
            path, f"file name says {uw.width}x{uw.height} pixels (width x height) but the image is {cols}x{rows}"
        )
    image.spacing = (uw.spacing_row, uw.spacing_col)
    image.metadata["spacing_known"] = True
    image.metadata["uw_slice"] = uw.to_dict()
    return image
