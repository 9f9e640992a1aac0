"""Exported images: the source file copied byte for byte where the format takes it, converted where not.

Conversions never change pixel values: 2-D images become lossless PNG (grey
8/16-bit or RGB 8-bit), else (signed or float pixels) NIfTI written from the
decoded array with the same affine as its mask, so image and mask voxels line
up in any reader. Volumes are written by :mod:`medseg.export.volumes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.errors import ExportError
from medseg.export.files import (
    copy_hashed,
    image_suffix,
    nifti_affine,
    write_nifti,
    write_png,
)
from medseg.io.types import ImageData

COPIED, CONVERTED, WRITTEN = "copied", "converted", "written"


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    sha256: str
    how: str = WRITTEN  # "copied" (source bytes), "converted" (decoded, re-encoded) or "written" (made here)
    cls: str | None = None  # class name, for one-file-per-class masks

    def to_dict(self, root: Path) -> dict:
        d = {"path": self.path.relative_to(root).as_posix(), "sha256": self.sha256, "how": self.how}
        if self.cls is not None:
            d["class"] = self.cls
        return d


def png_layout(path: Path) -> str | None:
    """ "rgb" or "grey" for a PNG whose stored pixels are 8-bit RGB or 8/16-bit grey, else None."""
    from PIL import Image

    if not path.is_file() or image_suffix(path) != ".png":
        return None
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                return None
            if im.mode == "RGB":
                return "rgb"
            if im.mode in ("L", "I", "I;16", "I;16B", "I;16L"):  # PNG grey is at most 16-bit
                return "grey"
    except OSError:
        return None
    return None


def png_pixels(img: ImageData) -> np.ndarray | None:
    """The pixels as a PNG can hold them without loss (alpha dropped), or None when it cannot."""
    a = img.array
    if img.spatial_ndim != 2:
        return None
    if a.dtype == bool:
        return a.astype(np.uint8)
    if img.rgb:
        return a[..., :3] if a.dtype == np.uint8 and a.shape[-1] in (3, 4) else None
    return a if a.dtype in (np.uint8, np.uint16) else None


def image_affine(img: ImageData) -> np.ndarray:
    return nifti_affine(img.spacing, img.metadata.get("affine"))


def copy_source(src: Path, dst_stem: Path) -> WrittenFile:
    """``dst_stem`` + the source's suffix, byte for byte."""
    dst = dst_stem.with_name(dst_stem.name + image_suffix(src))
    return WrittenFile(dst, copy_hashed(src, dst), COPIED)


def write_converted(
    img: ImageData, dst_stem: Path, *, prefer_png: bool = True, volume_axis: bool = False
) -> WrittenFile:
    """PNG when the pixels fit one (and ``prefer_png``), else .nii.gz.

    ``volume_axis`` writes a 2-D image as a one-slice volume (nnU-Net's NIfTI
    readers take 3-D arrays only).
    """
    pixels = png_pixels(img) if prefer_png else None
    if pixels is not None:
        dst = dst_stem.with_name(dst_stem.name + ".png")
        return WrittenFile(dst, write_png(dst, pixels), CONVERTED)
    if img.rgb:
        raise ExportError(
            f"{img.source}: colour {img.array.dtype} image of shape {img.array.shape} "
            "fits neither an 8-bit RGB PNG nor a single-channel NIfTI"
        )
    a = img.array
    affine = image_affine(img)
    if volume_axis and a.ndim == 2:
        a, affine = a[None], nifti_affine((1.0, *img.spacing))
    dst = dst_stem.with_name(dst_stem.name + ".nii.gz")
    return WrittenFile(dst, write_nifti(dst, a, affine), CONVERTED)
