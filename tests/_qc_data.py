"""Small crafted datasets and sample views for the QC tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets import ClassMap
from medseg.qc.checks_base import SampleView

BINARY = ClassMap.binary()


def natural(name: str, size: int = 64, crop: tuple[slice, slice] | None = None) -> np.ndarray:
    """An RGB uint8 photo from scikit-image's bundled data, resized to size x size."""
    import skimage.data

    a = getattr(skimage.data, name)()
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if crop is not None:
        a = a[crop]
    return np.asarray(Image.fromarray(a[..., :3]).resize((size, size), Image.Resampling.BILINEAR))


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def rect_mask(size: int = 64, box=(16, 40, 16, 40), value: int = 255) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    r0, r1, c0, c1 = box
    m[r0:r1, c0:c1] = value
    return m


def write_dataset(root: Path, samples: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> Path:
    """root/images/<name>.png and root/masks/<name>.png (no mask file for None)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for name, (image, mask) in samples.items():
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        if mask is not None:
            Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def view(
    mask: np.ndarray, image: np.ndarray | None = None, classmap: ClassMap = BINARY, sid: str = "s", **kw
) -> SampleView:
    rgb = image is not None and image.ndim == 3 and image.shape[-1] in (3, 4)
    return SampleView(sid, np.asarray(mask), classmap, image=image, rgb=rgb, **kw)


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root with its content: to prove QC wrote nothing there."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
