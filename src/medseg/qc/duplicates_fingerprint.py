"""What the duplicate checks keep of each sample: a :class:`Fingerprint` made in the decoding pass.

* ``pixels_sha256``: SHA-256 of the decoded pixels (shape and type included),
  so a PNG and a TIFF of one picture are exact duplicates, a re-save as JPEG
  is not;
* ``phash``: 64-bit DCT perceptual hash of the grey image's centre (10 %
  margin cut on every side, so a vignette, burned-in text or a frame shared by
  every image of a device does not make different pictures look alike; 32x32
  box thumbnail, lowest 8x8 DCT coefficients, bit = above their median);
* ``thumb``: that 32x32 thumbnail, zero-mean and unit-norm, to confirm hash
  candidates by correlation (invariant to brightness and contrast changes);
* per-class 128x128 area thumbnails of the mask for a resolution-free IoU;
* ``grey``: a 64x64 thumbnail of the whole picture, to align near-identical pictures
  (:mod:`medseg.qc.duplicates_align`).

How they are compared: :mod:`medseg.qc.duplicates` (the checks), :mod:`medseg.qc.duplicates_pairs` (which
pairs), :mod:`medseg.qc.duplicates_disagree` (the masks of a pair).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from medseg.qc.checks_base import SampleView
from medseg.qc.checks_images import grey
from medseg.qc.duplicates_align import box_resize, grey_thumb

_CROP = 0.1
_HASH_THUMB = 32
_MASK_THUMB = 128


@dataclass
class Fingerprint:
    pixels_sha256: str
    phash: int
    thumb: np.ndarray | None
    mask_sha256: str
    mask_thumbs: dict[int, np.ndarray]
    classes: dict[int, int]
    grey: np.ndarray | None = None  # 64x64 thumbnail of the whole picture, on the mask thumbnails' grid

    def __reduce__(self):
        """Pickled as its arrays' bytes: QC's worker processes pickle each sample's fingerprint once into their
        spill file and unpickle it wherever a check reads it (each candidate pair, each chunk of pairs); numpy's
        own pickling of the three arrays took 15 us to write and 9 to read a fingerprint, this 2 and 3. Arrays
        come back as writeable copies of the same dtype, shape and values."""
        thumbs = {cid: _packed(t) for cid, t in self.mask_thumbs.items()}
        fields = (self.pixels_sha256, self.phash, _packed(self.thumb), self.mask_sha256, thumbs, self.classes)
        return _unpickled, (*fields, _packed(self.grey))


def _packed(a: np.ndarray | None) -> tuple[str, tuple[int, ...], bytes] | None:
    return None if a is None else (a.dtype.str, a.shape, a.tobytes())


def _unpacked(p: tuple[str, tuple[int, ...], bytes] | None) -> np.ndarray | None:
    return None if p is None else np.frombuffer(p[2], np.dtype(p[0])).reshape(p[1]).copy()


def _unpickled(sha, phash, thumb, mask_sha, thumbs, classes, grey) -> Fingerprint:
    masks = {cid: _unpacked(t) for cid, t in thumbs.items()}
    return Fingerprint(sha, phash, _unpacked(thumb), mask_sha, masks, classes, _unpacked(grey))


def median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D float array without NaN, bit for bit, at a third of its cost: numpy's partition
    and mean calls for the 64 DCT coefficients cost more than a sort of them. numpy's mean of the middle
    values sums them onto 0.0 (so a -0.0 comes back as 0.0) and halves the sum, exactly."""
    s = np.sort(values)
    k = len(s) // 2
    return 0.0 + float(s[k]) if len(s) % 2 else (0.0 + float(s[k - 1]) + float(s[k])) / 2


def phash_and_thumb(g: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(64-bit DCT pHash, unit-norm 32x32 thumbnail or None for a flat image) of a grey 0..1 image."""
    from scipy import fft

    h, w = g.shape
    dy, dx = int(h * _CROP), int(w * _CROP)
    centre = g[dy : h - dy or None, dx : w - dx or None]
    t = box_resize(centre, _HASH_THUMB).astype(np.float64)
    low = fft.dctn(t, norm="ortho")[:8, :8].ravel()
    bits = low > (median(low) if not np.isnan(low).any() else np.median(low))
    value = int(np.packbits(bits).view(">u8")[0])
    z = t - t.mean()
    norm = np.linalg.norm(z)
    return value, (z.ravel() / norm).astype(np.float32) if norm > 1e-6 else None


def fingerprint(v: SampleView) -> Fingerprint | None:
    gb = grey(v)
    if gb is None:
        return None
    h = hashlib.sha256(f"{v.image.shape}{v.image.dtype}".encode())
    h.update(np.ascontiguousarray(v.image).tobytes())
    ph, thumb = phash_and_thumb(gb[0])
    m = hashlib.sha256(f"{v.mask.shape}{v.mask.dtype}".encode())
    m.update(np.ascontiguousarray(v.mask).tobytes())
    thumbs, classes = {}, {}
    if v.volume:  # the central slice's classes only: no bool volume per class
        mid = v.mask[v.mask.shape[0] // 2]
        masks = [(int(c), mid == c) for c in np.unique(mid) if c != 0]
    else:
        masks = v.class_masks()
    for cid, cm in masks:
        if cm.ndim == 3:
            cm = cm[cm.shape[0] // 2]
        classes[cid] = int(cm.sum())
        thumbs[cid] = np.round(box_resize(cm, _MASK_THUMB) * 255).astype(np.uint8)
    return Fingerprint(h.hexdigest(), ph, thumb, m.hexdigest(), thumbs, classes, grey_thumb(gb[0]))


def mask_iou(a: Fingerprint, b: Fingerprint) -> float:
    """Mean per-class IoU of the area thumbnails (1.0 when the masks are identical or both empty)."""
    if a.mask_sha256 == b.mask_sha256:
        return 1.0
    ious = []
    for cid in set(a.mask_thumbs) | set(b.mask_thumbs):
        ta = a.mask_thumbs.get(cid, np.zeros((_MASK_THUMB, _MASK_THUMB), np.uint8)).astype(np.float32)
        tb = b.mask_thumbs.get(cid, np.zeros((_MASK_THUMB, _MASK_THUMB), np.uint8)).astype(np.float32)
        union = float(np.maximum(ta, tb).sum())
        ious.append(float(np.minimum(ta, tb).sum()) / union if union else 1.0)
    return float(np.mean(ious)) if ious else 1.0
