"""An image as the network saw its training images: the checkpoint's ``Preprocessing`` applied.

``Preprocessing.window`` may be None (uint8 by its range, other types by their
own min..max), "percentile" (1st..99th percentile), [center, width] in the
image's units (HU for CT), or "dicom": the first window preset the file carries
(``metadata['window_presets']``, the file's own VOI window before the CT
presets); a file without one falls back to "percentile" and the result's meta
says so. 16-bit, grey, RGB and RGBA images are taken as ``to_model_input``
takes them (grey repeated to 3 channels, RGB to luma for 1, alpha dropped).
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


def model_input(image: ImageData | np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, str]:
    """float32 (C, H, W) for a model trained with ``prep``, and the window used."""
    a, rgb, meta = as_2d(image)
    window, described = resolve_window(prep.window, meta)
    try:
        x = to_model_input(a, channels=prep.channels, window=window, mean=prep.mean, std=prep.std, rgb=rgb)
    except ValueError as e:
        source = meta.get("source")
        raise InferenceError(f"{source + ': ' if source else ''}cannot prepare the image for the model: {e}") from e
    return x, described
