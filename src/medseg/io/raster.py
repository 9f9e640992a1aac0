"""PNG, JPEG, BMP and TIFF images as ``ImageData``.

Pillow decodes PNG / JPEG / BMP; tifffile decodes TIFF (Pillow takes over for
TIFF compressions tifffile needs ``imagecodecs`` for, such as LZW and JPEG).
Pixels come back as stored: 16-bit stays uint16, RGBA keeps its alpha, EXIF
orientation is not applied (masks drawn on the stored pixels stay aligned).
Palette images become RGB(A) here; masks are read by ``medseg.io.masks``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.limits import bomb_error, check_size, open_image
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
# mm per unit of ImageJ's "unit" field
_UNIT_MM = {
    "nm": 1e-6,
    "nanometer": 1e-6,
    "um": 1e-3,
    "µm": 1e-3,
    "\\u00b5m": 1e-3,
    "micron": 1e-3,
    "micrometer": 1e-3,
    "mm": 1.0,
    "millimeter": 1.0,
    "cm": 10.0,
    "centimeter": 10.0,
    "m": 1000.0,
    "meter": 1000.0,
    "inch": 25.4,
}
# Editors write these resolutions whatever was imaged: they say nothing physical.
_DEFAULT_DPI = {72.0, 96.0}
_SENSIBLE_MM = (1e-6, 100.0)


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
            f"of {array.size}; pass allow_nonfinite=True to load it anyway",
        )


def read_raster(path: str | Path, *, allow_nonfinite: bool = False) -> ImageData:
    """Read a PNG, JPEG, BMP or (multi-page) TIFF file.

    The format is taken from the content, else the suffix. Multi-page TIFF gives
    (slice, row, col[, channel]). Spacing comes from TIFF resolution tags or
    ImageJ metadata when they are physical, from a UW-Madison slice name, else 1.0
    (``metadata['spacing_known']`` False). Float images with NaN/inf raise ReadError
    unless ``allow_nonfinite``.
    """
    path = Path(path)
    head = _head(path)
    fmt = raster_format(head) or _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(path, "is not a PNG, JPEG, BMP or TIFF image")
    if fmt == "tiff":
        image = _read_tiff(path)
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


def _base_metadata(path: Path, fmt: str, photometric: str, dtype: np.dtype, bits: int | None) -> dict:
    return {
        "source": str(path),
        "format": fmt,
        "modality": None,
        "photometric": photometric,
        "dtype": str(np.dtype(dtype)),
        "bit_depth": bits,
        "spacing_known": False,
    }


# ---------------------------------------------------------------- Pillow formats


def _read_pillow(path: Path, fmt: str, head: bytes) -> ImageData:
    if fmt == "png" and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6):
        return _read_png_colour16(path)
    from PIL import Image

    try:
        with open_image(path) as im:  # the size is checked before decoding
            im.load()
            mode = im.mode
            array, photometric = _pil_to_array(im)
            orientation = im.getexif().get(0x0112, 1) if fmt == "jpeg" else 1
    except Image.DecompressionBombError as e:  # a frame past the first claiming more than its header
        raise bomb_error(path, e) from None
    except ReadError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise ReadError(path, f"cannot decode {fmt.upper()} data (truncated or corrupt file): {e}") from e
    bits = head[24] if fmt == "png" and len(head) >= 25 else _MODE_BITS.get(mode)
    meta = _base_metadata(path, fmt, photometric, array.dtype, bits)
    meta["mode"] = mode
    if mode in ("P", "PA", "LA"):
        meta["original_photometric"] = {"LA": "MONOCHROME2+ALPHA"}.get(mode, "PALETTE")
    if orientation != 1:
        meta["exif_orientation"] = int(orientation)  # recorded, not applied
    return ImageData(array, (1.0, 1.0), meta, rgb=array.ndim == 3)


def _pil_to_array(im) -> tuple[np.ndarray, str]:
    """Pixels of an open Pillow image, keeping 16-bit and alpha; palette -> RGB(A)."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255), "MONOCHROME2"
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB")), "RGBA" if has_alpha else "RGB"
    if mode == "LA":
        return np.asarray(im.convert("RGBA")), "RGBA"
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), "MONOCHROME2"
    if mode == "I":
        a = np.asarray(im)
        # Pillow gives 32-bit 'I' for some 16-bit files: keep 16 bits when the values fit
        if a.size and a.min() >= 0 and a.max() <= 65535:
            a = a.astype(np.uint16)
        return a, "MONOCHROME2"
    if mode in ("L", "F"):
        return np.asarray(im), "MONOCHROME2"
    if mode in ("RGB", "RGBA"):
        return np.asarray(im), mode
    if mode == "RGBX":
        return np.asarray(im.convert("RGB")), "RGB"
    # CMYK, YCbCr, LAB, HSV
    return np.asarray(im.convert("RGB")), "RGB"


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
    meta = _base_metadata(path, "png", photometric, a.dtype, 16)
    return ImageData(a, (1.0, 1.0), meta, rgb=True)


# ---------------------------------------------------------------- TIFF


def _read_tiff(path: Path) -> ImageData:
    import tifffile

    decoded_by_pillow = None
    try:
        with tifffile.TiffFile(path) as tif:
            _check_tiff_complete(path, tif)
            page = tif.pages.first
            series = _stackable_series(tif)
            photometric = int(page.photometric)
            bits = int(page.bitspersample)
            samples = int(page.samplesperpixel)
            colormap = page.colormap if photometric == 3 else None
            spacing_yx, spacing_z, unit_meta = _tiff_spacing(tif, page)
            check_tiff_size(path, series)
            try:
                array = _tiff_axes_to_standard(path, _tiff_arrays(path, series), series[0].axes)
            except ValueError as e:
                if "imagecodecs" not in str(e):
                    raise
                decoded_by_pillow = _pillow_tiff_frames(path, e)
    except ReadError:
        raise
    except Exception as e:  # tifffile raises TiffFileError, ValueError, struct.error ...
        raise ReadError(path, f"cannot decode TIFF data (truncated or corrupt file): {e}") from e

    if decoded_by_pillow is None:
        array, photometric_name, inverted = _tiff_colour(path, array, photometric, bits, samples, colormap)
    else:  # Pillow has already expanded palettes and inverted MINISWHITE
        array, photometric_name = decoded_by_pillow
        inverted = photometric == 0
        if bits > array.dtype.itemsize * 8 and array.dtype != bool:  # Pillow reduces 16-bit RGB to 8
            raise ReadError(
                path,
                f"{bits}-bit TIFF with this compression would lose bits without the "
                "imagecodecs package (pip install imagecodecs)",
            )
    rgb = photometric_name in ("RGB", "RGBA")
    meta = _base_metadata(path, "tiff", photometric_name, array.dtype, bits)
    meta.update(unit_meta)
    meta["original_photometric"] = tiff_photometric_name(photometric)
    if inverted:  # as DICOM MONOCHROME1: returned with the usual dark-is-low look
        meta["inverted"] = True
    if array.dtype == bool:
        array = array.astype(np.uint8) * np.uint8(255)
    spatial = array.ndim - (1 if rgb else 0)
    if spatial == 2:
        spacing = spacing_yx or (1.0, 1.0)
        meta["spacing_known"] = spacing_yx is not None
    elif spatial == 3:
        spacing = (spacing_z or 1.0, *(spacing_yx or (1.0, 1.0)))
        meta["spacing_known"] = spacing_yx is not None and spacing_z is not None
    else:
        raise UnsupportedFormatError(path, f"TIFF pixel array of shape {array.shape} is not an image or a stack")
    return ImageData(array, spacing, meta, rgb=rgb)


def _check_tiff_complete(path: Path, tif) -> None:
    """A truncated TIFF still parses; its strips then point past the end of the file."""
    size = path.stat().st_size
    for page in tif.pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True) if n]
        if ends and max(ends) > size:
            raise ReadError(path, f"is truncated: pixel data runs to byte {max(ends)} but the file has {size} bytes")


def check_tiff_size(path: Path, series: list) -> None:
    """The pages' claimed size against the limits, before tifffile allocates and decodes them."""
    axes, shape = series[0].axes, series[0].shape
    rows = shape[axes.index("Y")] if "Y" in axes else 1
    cols = shape[axes.index("X")] if "X" in axes else 1
    frames = len(series) * int(np.prod([n for n, ax in zip(shape, axes) if ax not in "YXS"], dtype=np.int64))
    check_size(path, (frames, rows, cols) if frames > 1 else (rows, cols))


def _tiff_arrays(path: Path, series: list) -> list[np.ndarray]:
    """Each series' pixels, which must have the shape the tags declare: tifffile only logs a failed
    reshape of damaged strips and returns what it has (an empty array)."""
    arrays = []
    for s in series:
        a = s.asarray()
        if a.shape != tuple(s.shape):
            raise ReadError(path, f"pixel data decodes to shape {a.shape}, not the {tuple(s.shape)} the tags declare")
        arrays.append(a)
    return arrays


def _stackable_series(tif) -> list:
    """Series with the first one's shape and dtype (pages written one by one form one series each)."""
    first = tif.series[0]
    same = [s for s in tif.series if s.shape == first.shape and s.dtype == first.dtype and s.axes == first.axes]
    return same if len(same) == len(tif.series) else [first]


def _pillow_tiff_frames(path: Path, why: Exception) -> tuple[np.ndarray, str]:
    """Pixels and photometric name of every page, for compressions tifffile cannot decode alone."""
    from PIL import ImageSequence

    try:
        with open_image(path) as im:
            frames = [_pil_to_array(f) for f in ImageSequence.Iterator(im)]
    except Exception as e:
        raise ReadError(path, f"TIFF compression not readable: {why}; Pillow failed too: {e}") from e
    arrays = [f[0] for f in frames]
    if any(a.shape != arrays[0].shape or a.dtype != arrays[0].dtype for a in arrays):
        raise ReadError(path, f"TIFF pages differ in size or type and {why}")
    return (arrays[0] if len(arrays) == 1 else np.stack(arrays)), frames[0][1]


def _tiff_axes_to_standard(path: Path, arrays: list[np.ndarray], axes: str) -> np.ndarray:
    """tifffile's axes (e.g. 'QYX', 'SYX', 'ZYXS') -> (slice, row, col[, sample])."""
    if len(arrays) > 1:
        arrays, axes = [np.stack(arrays)], "I" + axes
    a = arrays[0]
    keep = [i for i, ax in enumerate(axes) if a.shape[i] > 1 or ax in "YX"]
    a = a.reshape([a.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes:
        a = np.moveaxis(a, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    stack = [ax for ax in axes if ax not in "YXS"]
    if len(stack) > 1 or "C" in stack:
        raise UnsupportedFormatError(
            path,
            f"TIFF with axes {axes} (shape {a.shape}) is not supported: "
            "only one stack axis of grey or RGB(A) images can be read",
        )
    if stack:
        a = np.moveaxis(a, axes.index(stack[0]), 0)
    return a


def _tiff_colour(
    path: Path, a: np.ndarray, photometric: int, bits: int, spp: int, colormap: np.ndarray | None
) -> tuple[np.ndarray, str, bool]:
    """Photometric interpretation -> (pixels, photometric name, inverted)."""
    from tifffile import PHOTOMETRIC as P

    samples = a.shape[-1] if spp > 1 else 1
    if photometric in (P.MINISBLACK, P.MINISWHITE) and samples == 1:
        if photometric == P.MINISWHITE:
            if a.dtype == bool:
                return ~a, "MONOCHROME2", True
            top = 2**bits - 1 if a.dtype.kind == "u" else a.min() + a.max()
            return (top - a).astype(a.dtype), "MONOCHROME2", True
        return a, "MONOCHROME2", False
    if photometric in (P.MINISBLACK, P.MINISWHITE) and samples == 2:  # grey + alpha
        grey = a[..., :1]
        return np.concatenate([grey, grey, grey, a[..., 1:]], axis=-1), "RGBA", False
    # 3/4-sample MINISBLACK files exist (CVC-ClinicDB's original .tif frames are RGB tagged so)
    if photometric in (P.RGB, P.YCBCR, P.MINISBLACK) and samples in (3, 4):
        return a, ("RGB" if samples == 3 else "RGBA"), False
    if photometric == P.PALETTE and colormap is not None:
        cmap = np.asarray(colormap)
        if cmap.max() <= 255 or np.all(cmap % 257 == 0):  # 8-bit colours stored as v * 257
            cmap = (cmap // 257 if cmap.max() > 255 else cmap).astype(np.uint8)
        return np.moveaxis(cmap[:, a], 0, -1), "RGB", False
    raise UnsupportedFormatError(
        path,
        f"TIFF photometric {tiff_photometric_name(photometric)} with {spp} samples "
        "per pixel is not supported (grey, RGB, RGBA or palette only)",
    )


def tiff_photometric_name(code: int) -> str:
    from tifffile import PHOTOMETRIC

    try:
        return PHOTOMETRIC(code).name
    except ValueError:
        return str(code)


def _tiff_spacing(tif, page) -> tuple[tuple[float, float] | None, float | None, dict]:
    """(row, col) mm spacing or None, slice spacing or None, and what the file said."""
    tags = page.tags
    xres, yres = _ratio(tags.get("XResolution")), _ratio(tags.get("YResolution"))
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default: inch
    meta: dict = {}
    if xres and yres:
        meta["tiff_resolution"] = {"x": xres, "y": yres, "unit": {1: "none", 2: "inch", 3: "cm"}.get(unit, str(unit))}
    ij = tif.imagej_metadata or {}
    mm_per_unit = None
    if ij.get("unit"):
        mm_per_unit = _UNIT_MM.get(str(ij["unit"]).strip().lower())  # "pixel" -> None
    elif unit in (2, 3) and not (unit == 2 and xres in _DEFAULT_DPI and yres == xres):
        mm_per_unit = 25.4 if unit == 2 else 10.0
    spacing_yx = None
    if mm_per_unit and xres and yres:
        sy, sx = mm_per_unit / yres, mm_per_unit / xres
        if all(_SENSIBLE_MM[0] <= s <= _SENSIBLE_MM[1] for s in (sy, sx)):
            spacing_yx = (sy, sx)
    spacing_z = None
    if mm_per_unit and ij.get("spacing"):
        z = float(ij["spacing"]) * mm_per_unit
        spacing_z = z if _SENSIBLE_MM[0] <= z <= 1000.0 else None
    return spacing_yx, spacing_z, meta


def _ratio(tag) -> float | None:
    if tag is None:
        return None
    v = tag.value
    num, den = v if isinstance(v, tuple) and len(v) == 2 else (v, 1)
    return float(num) / float(den) if den and num else None


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
