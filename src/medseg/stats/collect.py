"""What one sample contributes to the dataset overview: its image's facts and its mask's numbers per class.

An image is described from its header where the header says all (a PNG, JPEG,
BMP: size, mode, bit depth; a volume: the grid its sample was indexed with),
and decoded only when its intensities are wanted (a spread subset of the
dataset, see :mod:`medseg.stats.run`) or when only the pixels' reader knows
its spacing or modality (DICOM, TIFF, one-slice NIfTI). Masks are always
decoded: class balance needs every pixel.

Objects are connected components per class, 8-connected in 2-D and
26-connected in a volume (a full 3x3 / 3x3x3 neighbourhood), as QC counts them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classmap import ClassMap

# Pixels of each channel an image gives to the pooled intensity histogram: enough for percentiles within
# a grey level on 8-bit data, small enough that 1,000 images pool 4 M values per channel.
PIXELS_PER_IMAGE = 4096
_HEADER_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp"}
_MODE_CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "LA": 2, "PA": 2, "RGB": 3, "RGBA": 4}
_MODE_BITS = {"1": 1, "I": 32, "F": 32}


@dataclass
class ImageFacts:
    """Shape (spatial axes: (row, col) or (slice, row, col)), channels, spacing, how the file stores it."""

    shape: tuple[int, ...]
    channels: int
    spacing: tuple[float, ...]
    spacing_known: bool
    format: str
    modality: str | None
    bits: int | None
    dtype: str
    decoded: bool
    # channel name -> a strided subsample of its values (decoded images only)
    pixels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # channel name -> (min, max, sum, count) of every value, not only the subsample
    ranges: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The intensity group this image pools into: its modality, else its format and colour."""
        if self.modality:
            return str(self.modality)
        colour = {3: " RGB", 4: " RGBA", 2: " grey+alpha"}.get(self.channels, " grey")
        return self.format.upper() + colour


@dataclass
class MaskFacts:
    """Per class id: pixels (voxels) and connected objects; the mask's total pixels."""

    total: int
    pixels: dict[int, int]
    objects: dict[int, int]
    voxel_mm3: float | None = None  # a volume's voxel size when its spacing is known: class volumes in mL


def image_facts(sample, *, decode: bool) -> ImageFacts:
    """The facts of ``sample``'s image; ``decode`` reads its pixels for the intensity histograms."""
    path = Path(sample.image_path)
    if not decode:
        if sample.is_volume and sample.geometry is not None:
            return _volume_header(sample, path)
        fmt = _HEADER_FORMATS.get(path.suffix.lower())
        if fmt is not None:
            return _raster_header(path, fmt)
    return _decoded(sample.load_image())


def _volume_header(sample, path: Path) -> ImageFacts:
    g = sample.geometry
    fmt = "nifti" if path.name.lower().endswith((".nii", ".nii.gz")) else "dicom"
    return ImageFacts(
        tuple(int(v) for v in g.shape), 1, tuple(float(v) for v in g.spacing), True, fmt, None, None, "", False
    )


def _raster_header(path: Path, fmt: str) -> ImageFacts:
    from medseg.io.limits import open_image
    from medseg.io.uwmadison import parse_uw_slice_name

    ihdr = _png_ihdr(path) if fmt == "png" else None
    if ihdr is not None:
        width, height, bits, mode = ihdr
    else:
        with open_image(path) as im:
            width, height = im.size
            mode = im.mode
        bits = _MODE_BITS.get(mode, 16 if mode.startswith("I;16") else 8)
        if fmt == "png":
            with open(path, "rb") as f:
                head = f.read(26)
            if len(head) >= 25:
                bits = int(head[24])  # IHDR bit depth: a 16-bit PNG says so before Pillow maps its mode
    spacing, known = (1.0, 1.0), False
    uw = parse_uw_slice_name(path.name)
    if uw is not None:
        spacing, known = (uw.spacing_row, uw.spacing_col), True
    channels = _MODE_CHANNELS.get(mode, 1)
    dtype = "uint8" if bits <= 8 else ("uint16" if bits == 16 else "int32")
    return ImageFacts((int(height), int(width)), channels, spacing, known, fmt, None, bits, dtype, False)


def _png_ihdr(path: Path) -> tuple[int, int, int, str] | None:
    """(width, height, bit depth, Pillow's mode) from a PNG's first 33 bytes, the size checked against the
    limits; None when they are not a PNG header Pillow maps (the caller opens the file with Pillow, whose
    errors name what is wrong). Parsing the fixed IHDR chunk ourselves is ten times quicker than
    ``Image.open``, which reads every chunk up to the pixels: a large share of an overview of small frames."""
    from PIL import PngImagePlugin

    from medseg.io.limits import check_size

    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    bits, colour = head[24], head[25]
    modes = getattr(PngImagePlugin, "_MODES", {})  # Pillow's own (bit depth, colour type) -> mode table
    if (bits, colour) not in modes:
        return None
    check_size(path, (height, width))
    return int(width), int(height), int(bits), modes[(bits, colour)][0]


def _decoded(image) -> ImageFacts:
    a = image.array
    meta = image.metadata
    channels = a.shape[-1] if image.rgb else 1
    bits = meta.get("bit_depth") or a.dtype.itemsize * 8
    facts = ImageFacts(
        tuple(int(v) for v in (a.shape[:-1] if image.rgb else a.shape)),
        int(channels),
        tuple(float(s) for s in image.spacing),
        bool(meta.get("spacing_known")),
        str(meta.get("format") or ""),
        meta.get("modality"),
        int(bits),
        str(a.dtype),
        True,
    )
    names = ("R", "G", "B", "A")[:channels] if image.rgb and channels <= 4 else [f"c{k}" for k in range(channels)]
    planes = [a[..., k] for k in range(channels)] if image.rgb else [a]
    for name, plane in zip(names if image.rgb else ["grey"], planes):
        flat = plane.reshape(-1)
        if flat.dtype.kind == "f":
            flat = flat[np.isfinite(flat)]
        if not flat.size:
            continue
        step = max(1, flat.size // PIXELS_PER_IMAGE)
        facts.pixels[name] = np.asarray(flat[::step][:PIXELS_PER_IMAGE], np.float32)
        facts.ranges[name] = (float(flat.min()), float(flat.max()), float(flat.sum(dtype=np.float64)), int(flat.size))
    return facts


def mask_facts(mask: np.ndarray, classmap: ClassMap, *, volume: bool) -> MaskFacts:
    """Pixels and objects per class of ``mask`` (class ids, or (..., C) channels of a multilabel map)."""
    if classmap.task == "multilabel" and mask.ndim >= 2 and mask.shape[-1] == len(classmap.ids) and not volume:
        total = int(np.prod(mask.shape[:-1]))
        pixels, objects = {}, {}
        for k, cid in enumerate(classmap.ids):
            channel = mask[..., k] > 0
            n = int(np.count_nonzero(channel))
            if n:
                pixels[cid], objects[cid] = n, count_objects(channel)
        return MaskFacts(total, pixels, objects)
    ids = np.asarray(mask)
    counts = np.bincount(ids.reshape(-1), minlength=1) if ids.dtype == np.uint8 else _counts(ids)
    pixels = {int(v): int(counts[v]) for v in np.flatnonzero(counts) if v != 0}
    if len(pixels) == 1 and ids.dtype == np.uint8:
        return MaskFacts(int(ids.size), pixels, {cid: count_objects(ids) for cid in pixels})  # its only non-zero
    objects = {cid: count_objects(ids == cid) for cid in pixels}
    return MaskFacts(int(ids.size), pixels, objects)


def binary_facts(raw: np.ndarray, foreground: int) -> MaskFacts:
    """The facts of a 2-D uint8 mask whose non-zero pixels, ``foreground`` of them, are class 1 (a 0/255
    file read as stored: no binarised copy is made)."""
    if not foreground:
        return MaskFacts(int(raw.size), {}, {})
    return MaskFacts(int(raw.size), {1: int(foreground)}, {1: count_objects(raw)})


def _counts(ids: np.ndarray) -> np.ndarray:
    return np.bincount(ids.reshape(-1).astype(np.int64, copy=False), minlength=1)


def count_objects(binary: np.ndarray) -> int:
    """Connected components of the non-zero pixels of a 2-D or 3-D array (full neighbourhood)."""
    if binary.ndim == 2:
        import cv2

        plane = binary if binary.dtype == np.uint8 else (binary != 0).astype(np.uint8)
        n, _ = cv2.connectedComponents(plane, connectivity=8)
        return int(n) - 1  # cv2 counts the background as label 0
    from scipy import ndimage as ndi

    _, n = ndi.label(binary, structure=np.ones((3,) * binary.ndim, bool))
    return int(n)


def summarise(values: list[float] | np.ndarray) -> dict[str, Any] | None:
    """min, median, mean, max of ``values`` (None when empty)."""
    v = np.asarray(values, float)
    if not v.size:
        return None
    return {"min": float(v.min()), "median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max())}
