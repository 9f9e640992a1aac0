"""Intensity normalisation for display and for model input.

Windowing follows the CT convention: ``center`` and ``width`` in the image's
units (HU for CT) map ``center - width/2 .. center + width/2`` linearly to 0..1.
Contrast enhancement wraps scikit-image. Arrays whose last axis has 3 or 4
entries are taken as colour unless ``rgb`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.io.types import ImageData

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601-2 luma, as Pillow's convert("L")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def percentile_window(a: np.ndarray, lo: float = 1, hi: float = 99) -> tuple[float, float]:
    """(center, width) spanning the ``lo``..``hi`` percentiles of the finite values.

    A constant image gets width 1 so that ``apply_window`` stays defined.
    """
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got lo={lo}, hi={hi}")
    values = np.asarray(a)
    values = values[np.isfinite(values)] if values.dtype.kind in "fc" else values.ravel()
    if values.size == 0:
        raise ValueError("cannot choose a window: the image has no finite values")
    p_lo, p_hi = (float(v) for v in np.percentile(values, [lo, hi]))
    width = p_hi - p_lo
    return (p_lo + p_hi) / 2, width if width > 0 else 1.0


def apply_window(a: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map ``center - width/2 .. center + width/2`` to 0..1 (clipped), as float32."""
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ValueError(f"window needs a finite center and a positive width, got center={center}, width={width}")
    lower = center - width / 2
    out = (np.asarray(a, dtype=np.float32) - np.float32(lower)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def clahe(
    a: np.ndarray, clip_limit: float = 0.01, kernel_size: int | Sequence[int] | None = None, rgb: bool | None = None
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (skimage), float32 in [0, 1].

    Takes any integer or float grey image (uint16 and HU included) or an RGB(A)
    image; alpha is dropped and colour images are equalised on their value channel.
    A stack (slice, row, col[, channel]) is equalised slice by slice.
    """
    from skimage.exposure import equalize_adapthist

    a, is_rgb = _prepare(a, rgb)
    x = _unit_range(a)
    if x.ndim == (3 if is_rgb else 2):  # skimage spots RGB by its last axis and works on its value
        return equalize_adapthist(x, kernel_size=kernel_size, clip_limit=clip_limit).astype(np.float32)
    # a stack: slice by slice, as the slices are viewed
    return np.stack([equalize_adapthist(s, kernel_size=kernel_size, clip_limit=clip_limit) for s in x]).astype(
        np.float32
    )


def equalize_hist(a: np.ndarray, nbins: int = 256, rgb: bool | None = None) -> np.ndarray:
    """Global histogram equalisation (skimage), float32 in [0, 1]; alpha is dropped."""
    from skimage.exposure import equalize_hist as _equalize_hist

    a, _ = _prepare(a, rgb)
    out = _equalize_hist(_unit_range(a), nbins=nbins)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def to_model_input(
    image: ImageData | np.ndarray,
    channels: int = 3,
    window: tuple[float, float] | str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    rgb: bool | None = None,
) -> np.ndarray:
    """One 2-D image -> float32 (C, H, W) for a network.

    Intensities go to [0, 1]: by ``window`` = (center, width) or "percentile"
    (1st..99th) when given; else uint8 / bool by their type range and every other
    type (uint16, int16, float) by the image's own min..max. Grey is repeated to
    3 channels when ``channels=3``; RGB becomes luma when ``channels=1``; RGBA
    loses its alpha (dropped, not composited). ``mean`` / ``std`` (e.g.
    ``IMAGENET_MEAN`` / ``IMAGENET_STD``) then standardise each channel.
    NaN/inf raise ValueError.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if isinstance(image, ImageData):
        a, rgb = image.array, image.rgb
    else:
        a = np.asarray(image)
    a, is_rgb = _prepare(a, rgb)
    if a.ndim != (3 if is_rgb else 2):
        raise ValueError(f"to_model_input takes one 2-D image; got shape {a.shape}: pick a slice first")
    if window is None:
        x = _unit_range(a)
    elif isinstance(window, str):
        if window != "percentile":
            raise ValueError(f'window must be (center, width), "percentile" or None, got {window!r}')
        x = apply_window(a, *percentile_window(a))
    else:
        center, width = window
        x = apply_window(a, float(center), float(width))
    x = x.astype(np.float32, copy=False)
    if is_rgb and channels == 1:
        x = x @ _LUMA
    if not is_rgb and channels == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    x = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    if mean is not None or std is not None:
        m = np.broadcast_to(np.asarray(0.0 if mean is None else mean, np.float32), (channels,))
        s = np.broadcast_to(np.asarray(1.0 if std is None else std, np.float32), (channels,))
        if np.any(s <= 0):
            raise ValueError(f"std must be positive, got {std}")
        x = (x - m[:, None, None]) / s[:, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


def _prepare(a: np.ndarray, rgb: bool | None) -> tuple[np.ndarray, bool]:
    """Reject NaN/inf, decide colour, drop alpha."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise ValueError(f"complex images are not supported (dtype {a.dtype})")
    if a.dtype.kind == "f":
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise ValueError(f"image contains {bad} NaN/inf values of {a.size}; replace them before normalising")
    if a.size == 0:
        raise ValueError(f"image is empty (shape {a.shape})")
    is_rgb = (a.ndim >= 3 and a.shape[-1] in (3, 4)) if rgb is None else bool(rgb)
    if is_rgb and a.shape[-1] not in (3, 4):
        raise ValueError(f"a colour image needs 3 or 4 channels last, got shape {a.shape}")
    if is_rgb and a.shape[-1] == 4:
        a = a[..., :3]
    return a, is_rgb


def _unit_range(a: np.ndarray) -> np.ndarray:
    """uint8 / bool by their type range, anything else by its own min..max, as float32 in [0, 1]."""
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.float32)
    return ((a.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
