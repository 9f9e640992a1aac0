"""TIFF (single and multi-page, ImageJ and OME stacks) as ``ImageData``, for :func:`medseg.io.raster.read_raster`.

tifffile decodes; Pillow takes over for compressions tifffile needs ``imagecodecs`` for (LZW, JPEG).
Pages of one shape stack to (slice, row, col[, channel]); spacing comes from resolution tags or ImageJ
metadata only when they are physical (editors' default 72/96 dpi say nothing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import ReadError, UnsupportedFormatError
from medseg.io.limits import check_size, open_image
from medseg.io.raster_pixels import base_metadata, pil_to_array
from medseg.io.types import ImageData

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


def read_tiff(path: Path) -> ImageData:
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
    meta = base_metadata(path, "tiff", photometric_name, array.dtype, bits)
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
            frames = [pil_to_array(f) for f in ImageSequence.Iterator(im)]
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
