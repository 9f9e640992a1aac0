"""Pixel conversions the raster readers share: a Pillow image to an array as stored, and the base metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def base_metadata(path: Path, fmt: str, photometric: str, dtype: np.dtype, bits: int | None) -> dict:
    return {
        "source": str(path),
        "format": fmt,
        "modality": None,
        "photometric": photometric,
        "dtype": str(np.dtype(dtype)),
        "bit_depth": bits,
        "spacing_known": False,
    }


def pil_to_array(im) -> tuple[np.ndarray, str]:
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
