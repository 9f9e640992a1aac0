"""An image as the network saw its training images: the checkpoint's ``Preprocessing`` applied.

``Preprocessing.window`` may be None (uint8 by its range, other types by their
own min..max), "percentile" (1st..99th percentile), [center, width] in the
image's units (HU for CT), or "dicom": the first window preset the file carries
(``metadata['window_presets']``, the file's own VOI window before the CT
presets); a file without one falls back to "percentile" and the result's meta
says so. 16-bit, grey, RGB and RGBA images are taken as ``to_model_input``
takes them (grey repeated to 3 channels, RGB to luma for 1, alpha dropped).

``Preprocessing.equalize`` equalises each [0, 1] channel after the window,
before mean / std, at the image's own size: training decodes its images
through ``model_input`` too (``medseg.training.data.decode_image``, then
resizes), so a model trained with it gets the same input here. It is
skimage.exposure's ``equalize_hist`` / ``equalize_adapthist`` on the float
channel, not albumentations' Equalize / CLAHE: those convert to uint8 and
CLAHE draws its clip limit at random, while skimage keeps 12- and 16-bit
X-ray depth and is a pure function of the image. A colour image is
equalised channel by channel (albumentations' Equalize default); a grey
image repeated to 3 channels is equalised once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg.errors import InferenceError
from medseg.io.normalise import to_model_input
from medseg.io.types import ImageData
from medseg.models.spec import Preprocessing


def as_2d(image: ImageData | np.ndarray) -> tuple[np.ndarray, bool | None, dict[str, Any]]:
    """(pixels, rgb flag, metadata) of one 2-D image; a volume raises naming its shape."""
    if isinstance(image, ImageData):
        if image.spatial_ndim != 2:
            raise InferenceError(
                f"the Predictor takes one 2-D image; {image.source or 'this image'} has "
                f"{image.spatial_ndim} spatial axes (shape {image.array.shape}): pass one slice"
            )
        return image.array, image.rgb, image.metadata
    a = np.asarray(image)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4)):
        return a, None, {}
    raise InferenceError(f"the Predictor takes a 2-D image (H, W) or (H, W, 3|4); got shape {a.shape}")


def resolve_window(window: Any, metadata: dict[str, Any]) -> tuple[Any, str]:
    """The window ``to_model_input`` takes, and a short description of it for the meta."""
    if window is None or (isinstance(window, str) and window == "percentile"):
        return window, str(window)
    if isinstance(window, str):
        if window != "dicom":
            raise InferenceError(
                f'unknown preprocessing window {window!r}; valid: None, "percentile", "dicom" or [center, width]'
            )
        presets = metadata.get("window_presets") or {}
        if not presets:
            return "percentile", "dicom (file has no window preset: percentile)"
        name, (center, width) = next(iter(presets.items()))
        return (float(center), float(width)), f"dicom {name} [{float(center):g}, {float(width):g}]"
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as e:
        raise InferenceError(
            f'preprocessing window must be None, "percentile", "dicom" or [center, width], got {window!r}'
        ) from e
    return (center, width), f"[{center:g}, {width:g}]"


def equalize_channels(x: np.ndarray, settings: dict[str, Any] | None) -> np.ndarray:
    """(C, H, W) [0, 1] float32, each channel (or slice) equalised as ``Preprocessing.equalize`` says (None:
    unchanged)."""
    if not settings:
        return x
    from skimage.exposure import equalize_adapthist, equalize_hist

    def one(c: np.ndarray) -> np.ndarray:
        if settings["method"] == "clahe":
            kernel = settings["kernel_size"]
            return equalize_adapthist(c, kernel_size=kernel, clip_limit=settings["clip_limit"], nbins=settings["nbins"])
        if float(c.max()) <= float(c.min()):  # skimage would divide by a zero range; a flat image stays flat
            return np.zeros_like(c)
        return np.clip(equalize_hist(c, nbins=settings["nbins"]), 0.0, 1.0)

    done: list[np.ndarray] = []
    for i, c in enumerate(x):  # grey repeated to 3 channels (or a volume's repeated edge slices): equalised once
        done.append(done[-1] if i and np.array_equal(x[i - 1], c) else one(c).astype(np.float32, copy=False))
    return np.ascontiguousarray(np.stack(done), dtype=np.float32)


def model_input(image: ImageData | np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, str]:
    """float32 (C, H, W) for a model trained with ``prep``, and the window used (and the equalisation)."""
    a, rgb, meta = as_2d(image)
    window, described = resolve_window(prep.window, meta)
    try:
        if not prep.equalize:
            return to_model_input(a, prep.channels, window, mean=prep.mean, std=prep.std, rgb=rgb), described
        x = equalize_channels(to_model_input(a, prep.channels, window, rgb=rgb), prep.equalize)
        if prep.mean is not None or prep.std is not None:  # the same arithmetic as to_model_input's
            c = x.shape[0]
            m = np.broadcast_to(np.asarray(0.0 if prep.mean is None else prep.mean, np.float32), (c,))
            s = np.broadcast_to(np.asarray(1.0 if prep.std is None else prep.std, np.float32), (c,))
            if np.any(s <= 0):
                raise ValueError(f"std must be positive, got {prep.std}")
            x = np.ascontiguousarray((x - m[:, None, None]) / s[:, None, None], dtype=np.float32)
    except ValueError as e:
        source = meta.get("source")
        raise InferenceError(f"{source + ': ' if source else ''}cannot prepare the image for the model: {e}") from e
    return x, f"{described}, {prep.equalize['method']}"
