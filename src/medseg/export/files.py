"""Writing the exported files: byte-exact copies, PNG and NIfTI masks and images, every one hashed.

Every writer returns the sha256 of the bytes that ended up on disk (re-read
from the file, not computed from memory), so the manifest records what a
reader will actually find.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medseg.ownership import sha256_file

_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sha256_path(path: str | Path) -> str | None:
    """sha256 of a file, of a folder's files (a DICOM series: names and contents, sorted), or None when it is
    gone; a folder is hashed as the workspace hashed it at import, so the two can be compared."""
    from medseg.workspace.sources import file_sha256

    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        return file_sha256(p)
    return None


def copy_hashed(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` byte for byte in one pass; the sha256 of those bytes."""
    h = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while chunk := fi.read(_CHUNK):
            h.update(chunk)
            fo.write(chunk)
    return h.hexdigest()


def write_png(path: Path, array: np.ndarray) -> str:
    """Lossless PNG of a (H, W) uint8/uint16 or (H, W, 3) uint8 array; its sha256."""
    from PIL import Image

    a = np.ascontiguousarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.ndim == 2 and a.dtype == np.uint16:
        img = Image.fromarray(a.astype("<u2", copy=False))  # mode "I;16" (Pillow 13 refuses mode= here)
    elif (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) and a.dtype == np.uint8:
        img = Image.fromarray(a)
    else:
        raise ValueError(f"{path}: PNG takes (H, W) uint8/uint16 or (H, W, 3) uint8, got {a.shape} {a.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return sha256_file(path)


def nifti_affine(spacing: Iterable[float], affine: object = None) -> np.ndarray:
    """The image's own 4x4 (slice, row, col) -> RAS matrix when it has one, else a diagonal of the spacing."""
    if affine is not None:
        m = np.asarray(affine, dtype=float)
        if m.shape == (4, 4):
            return m
    sp = [float(v) for v in spacing]
    return np.diag([*sp, *[1.0] * (4 - len(sp))])


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    """A .nii.gz of ``array`` as stored (axes in order, no reorientation); its sha256."""
    import nibabel as nib

    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(a, affine)
    img.header.set_data_dtype(a.dtype)
    nib.save(img, str(path))
    return sha256_file(path)


def image_suffix(path: Path) -> str:
    name = path.name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def safe_stems(sample_ids: Iterable[str]) -> dict[str, str]:
    """A file-name-safe, unique stem per sample id (ids that are already safe stay as they are).

    Ids may hold path separators or spaces (series names, CSV ids); the
    manifest records which stem each id became.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for sid in sample_ids:
        stem = _UNSAFE.sub("_", str(sid)).strip("._") or "sample"
        base, n = stem, 2
        while stem.lower() in taken:  # case-insensitive file systems
            stem, n = f"{base}_{n}", n + 1
        taken.add(stem.lower())
        out[sid] = stem
    return out
