"""A volume as a 2-D network sees it: slice by slice, with one intensity mapping for the whole scan.

Training (``medseg.training.slices``) and inference (``Predictor.predict_slice``,
``iter_predict_volume``) both go through these functions, so a checkpoint's
``Preprocessing`` means the same input on both sides:

* ``window`` [center, width]: a fixed window in the image's units (a CT window
  in HU, e.g. [40, 400] soft tissue), the same HU giving the same input in
  every scan; "percentile" (MR, whose intensities have no fixed unit) spans the
  volume's 1st..99th percentile, None its min..max (uint8 and bool: their type
  range); "dicom": the series' first window preset, else "percentile". With
  ``scope`` "volume" the statistics come from up to ``STAT_SLICES`` evenly
  spaced slices of the volume (the same ones at training and at inference),
  so a lazily read volume is not decoded whole to predict one slice and every
  slice of a scan gets one mapping. With ``scope`` "image" (a model trained on
  2-D images) each slice is prepared on its own, as a 2-D image would be.
* ``slices`` k > 1 (2.5-D): slice z and its neighbours z - k//2 .. z + k//2 are
  the k input channels, clamped at the ends (the first slice's missing
  neighbours are copies of it). A 2-D image given to such a model is a volume
  of one slice.
* ``equalize``: each windowed slice on its own (``equalize_channels``), at its
  own size, before the neighbours become channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import InferenceError
from medseg.inference.preprocess import equalize_channels, model_input, resolve_window
from medseg.io.normalise import apply_window, percentile_window
from medseg.io.types import ImageData
from medseg.io.volume_geometry import Geometry
from medseg.models.spec import Preprocessing

STAT_SLICES = 16  # percentile / min..max windows are read from at most this many evenly spaced slices

Window = tuple[float, float]


class SliceReader:
    """Slices of a volume (Z, Y, X): a numpy array, a 3-D ``ImageData`` or a lazy volume with ``shape`` and
    ``slice(z)`` (``medseg.io.volume_source.VolumeSource``); reading one slice decodes no other."""

    def __init__(self, volume: Any):
        self.metadata: dict[str, Any] = {}
        self.spacing: tuple[float, ...] | None = None
        self.geometry: Geometry | None = None  # where the voxels lie, when the source says (NIfTI, DICOM)
        self.source = volume
        if isinstance(volume, SliceReader):
            self.source, self.metadata, self.spacing = volume.source, volume.metadata, volume.spacing
            self.geometry = volume.geometry
        elif isinstance(volume, ImageData):
            if volume.spatial_ndim != 3 or volume.rgb:
                raise InferenceError(
                    f"{volume.source or 'image'}: a volume is (slice, row, col) grey values; "
                    f"got shape {volume.array.shape}{' (colour)' if volume.rgb else ''}"
                )
            self.metadata, self.spacing = dict(volume.metadata), volume.spacing
            self.geometry = Geometry.from_image(volume) if "affine" in volume.metadata else None
            self.source = volume.array
        elif not isinstance(volume, np.ndarray) and hasattr(volume, "slice") and hasattr(volume, "shape"):
            self.metadata = dict(getattr(volume, "metadata", None) or {})
            self.geometry = getattr(volume, "geometry", None)
            self.spacing = tuple(self.geometry.spacing) if self.geometry is not None else None
        else:
            self.source = np.asarray(volume)
        self.path = self.metadata.get("source") or getattr(volume, "path", None)  # a label written beside it
        shape = tuple(int(n) for n in self.source.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InferenceError(f"a volume is (slice, row, col); got shape {shape}")
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]

    def __len__(self) -> int:
        return self.shape[0]

    def slice(self, z: int) -> np.ndarray:
        if not 0 <= z < self.shape[0]:
            raise InferenceError(f"slice {z} is outside the volume's {self.shape[0]} slices")
        s = self.source
        return np.asarray(s[z] if isinstance(s, np.ndarray) else s.slice(z))

    def slice_image(self, z: int) -> ImageData:
        """Slice ``z`` as a 2-D ``ImageData`` (its metadata, e.g. DICOM window presets, kept)."""
        spacing = self.spacing[1:] if self.spacing else (1.0, 1.0)
        return ImageData(self.slice(z), spacing, dict(self.metadata))


def neighbours(z: int, n: int, k: int) -> list[int]:
    """The ``k`` slice indices centred on ``z`` in a volume of ``n`` slices, clamped to 0..n-1."""
    r = k // 2
    return [min(max(z + d, 0), n - 1) for d in range(-r, r + 1)]


def stat_slices(n: int) -> list[int]:
    """The slices a volume's window statistics are read from: all, or ``STAT_SLICES`` evenly spaced."""
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, min(n, STAT_SLICES))})


def volume_window(volume: Any, prep: Preprocessing) -> tuple[Window, str]:
    """(center, width) mapping this volume's intensities to [0, 1] as ``prep`` says, and its description."""
    reader = volume if isinstance(volume, SliceReader) else SliceReader(volume)
    window, described = resolve_window(prep.window, reader.metadata)
    if isinstance(window, tuple):
        return window, described
    zs = stat_slices(len(reader))
    values = np.stack([reader.slice(z) for z in zs])
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        raise InferenceError(f"{reader.metadata.get('source') or 'volume'} holds NaN/inf values; replace them first")
    if window == "percentile":
        center, width = percentile_window(values)
        return (center, width), f"percentile 1..99 of the volume [{center:g}, {width:g}]"
    if values.dtype in (np.uint8, np.bool_):
        lo, hi = 0.0, 1.0 if values.dtype == np.bool_ else 255.0
    else:
        lo, hi = float(values.min()), float(values.max())
    width = hi - lo if hi > lo else 1.0
    return (lo + width / 2, width), f"volume range [{lo:g}, {hi:g}]"


def unit_slices(slices: np.ndarray, window: Window) -> np.ndarray:
    """Raw slices (..., H, W) through ``window`` to float32 in [0, 1]."""
    return apply_window(slices, *window)


def as_channels(stack: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(k, H, W) [0, 1] slices -> the (C, H, W) the model takes: one slice repeated for a 3-channel model."""
    if prep.slices == 1 and prep.channels == 3:
        return np.repeat(stack[:1], 3, axis=0)
    if stack.shape[0] != prep.channels:
        raise InferenceError(f"{stack.shape[0]} slices cannot make the model's {prep.channels} input channels")
    return stack


def standardise(x: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(C, H, W) with the preprocessing's per-channel mean / std applied, float32."""
    if prep.mean is not None or prep.std is not None:
        c = x.shape[0]
        m = np.broadcast_to(np.asarray(0.0 if prep.mean is None else prep.mean, np.float32), (c,))
        s = np.broadcast_to(np.asarray(1.0 if prep.std is None else prep.std, np.float32), (c,))
        x = (x - m[:, None, None]) / s[:, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


class VolumeInput:
    """One volume prepared for one or more preprocessings (an ensemble's members): each window resolved
    once, then any slice's model input on demand. Hold on to it to predict many slices of one scan."""

    def __init__(self, volume: Any, preps: Sequence[Preprocessing]):
        self.reader = volume if isinstance(volume, SliceReader) else SliceReader(volume)
        self.preps = list(preps)
        self._windows: dict[int, tuple[Window, str]] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.reader.shape

    def window(self, index: int) -> tuple[Window, str]:
        if index not in self._windows:
            self._windows[index] = volume_window(self.reader, self.preps[index])
        return self._windows[index]

    def described(self) -> list[str]:
        return [self._describe(i) for i in range(len(self.preps))]

    def _describe(self, i: int) -> str:
        prep = self.preps[i]
        if prep.scope == "volume" or prep.slices > 1:
            return self.window(i)[1]
        return str(resolve_window(prep.window, self.reader.metadata)[1])

    def model_input(self, z: int, index: int = 0) -> np.ndarray:
        """(C, H, W) float32: slice ``z`` (with its neighbours for 2.5-D) as preprocessing ``index`` wants it."""
        prep = self.preps[index]
        if prep.scope == "image" and prep.slices == 1:
            return model_input(self.reader.slice_image(z), prep)[0]
        window = self.window(index)[0]
        zs = neighbours(z, len(self.reader), prep.slices)
        raw = {zz: self.reader.slice(zz) for zz in dict.fromkeys(zs)}
        stack = equalize_channels(unit_slices(np.stack([raw[zz] for zz in zs]), window), prep.equalize)
        return standardise(as_channels(stack, prep), prep)

    def batch(self, zs: Sequence[int]) -> np.ndarray:
        """(len(zs), sum of the preprocessings' channels, H, W) float32: every member's input for each slice."""
        return np.stack([np.concatenate([self.model_input(z, i) for i in range(len(self.preps))]) for z in zs])
