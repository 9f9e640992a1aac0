"""Predicting many files: which images a list of paths means, and how a Prediction is written.

Inputs: an image file is itself; a dataset folder (``open_dataset`` detects a
layout) means its samples' images, named by sample id, and any other folder means
the loadable files directly in it (not recursive), sorted by name.
A dataset's images without a mask are predicted too.

Outputs in ``out_dir``, named by the input's stem (``_2``, ``_3``... added when
two inputs share one):
  ``<stem>_mask.png``  class ids as uint8 PNG (uint16 past id 255): binary 0/1;
                        ``mask_format="visible"`` spreads ids over 0..255 (binary 0/255)
                        for image viewers. Multilabel: ``<stem>_mask_<class>.png`` each.
                        Volumes (one prediction per slice): ``<stem>_mask.tif`` (S, H, W).
  ``<stem>_probs.tif``  probabilities (C, H, W) as uint16 (p * 65535), or
                        ``<stem>_probs.npy`` float32 with ``probs_format="npy"``.
  ``<stem>_uncertainty.tif`` / ``<stem>_variance.tif``  float32 (H, W).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.errors import InferenceError, ReadError
from medseg.inference.outputs import Prediction
from medseg.io.types import ImageData

MASK_FORMATS = ("ids", "visible")
PROBS_FORMATS = ("tif", "npy")


@dataclass(frozen=True)
class InputItem:
    path: Path
    stem: str


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".medseg"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "image"


def collect_inputs(paths: list[str | Path]) -> list[InputItem]:
    """The images the paths mean (see the module docstring); ReadError for a path that does not exist."""
    from medseg.datasets import is_dataset_folder, open_dataset
    from medseg.datasets.dataset import IMAGE_WITHOUT_MASK
    from medseg.io import can_load

    items: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ReadError(p, "does not exist")
        if p.is_file():
            items.append((p, _stem(p)))
        elif is_dataset_folder(p):
            ds = open_dataset(p)
            items.extend((s.image_path, str(s.id)) for s in ds.samples)
            # unlabelled images are what a model is most often run on
            items.extend((q.path, _stem(q.path)) for q in ds.problems if q.kind == IMAGE_WITHOUT_MASK)
        else:
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and can_load(f))
            if not files:
                raise ReadError(p, "is a folder with no loadable images in it (folders are not searched recursively)")
            items.extend((f, _stem(f)) for f in files)
    used: dict[str, int] = {}
    out = []
    for path, stem in items:
        stem = _safe(stem)
        n = used.get(stem, 0) + 1
        used[stem] = n
        out.append(InputItem(path, stem if n == 1 else f"{stem}_{n}"))
    return out


def _visible(ids: np.ndarray, max_id: int) -> np.ndarray:
    return (ids.astype(np.uint32) * (255 // max(max_id, 1))).astype(np.uint8)


def predict_image(predictor, image: ImageData, cancel=None) -> Prediction | list[Prediction]:
    """One Prediction for a 2-D image; a list, one per slice, for a volume (slices share the metadata)."""
    if image.spatial_ndim == 2:
        return predictor.predict(image, cancel)
    if image.spatial_ndim != 3:
        raise InferenceError(f"{image.source or 'image'}: cannot predict an image with {image.spatial_ndim} "
                             f"spatial axes (shape {image.array.shape})")
    return [predictor.predict(ImageData(s, image.spacing[1:], dict(image.metadata), image.rgb), cancel)
            for s in image.array]


def _write_mask(path: Path, a: np.ndarray, volume: bool) -> None:
    if volume:
        import tifffile

        tifffile.imwrite(path, a)
    else:
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(a)).save(path)


def write_prediction(pred: Prediction | list[Prediction], out_dir: Path, stem: str, *,
                     mask_format: str = "ids", probs: bool = False, probs_format: str = "tif",
                     uncertainty: bool = False) -> list[Path]:
    """Write a prediction (or one per slice of a volume) as the module docstring says; the paths written."""
    import tifffile

    if mask_format not in MASK_FORMATS:
        raise ValueError(f"unknown mask format {mask_format!r}; valid: {', '.join(MASK_FORMATS)}")
    if probs_format not in PROBS_FORMATS:
        raise ValueError(f"unknown probability format {probs_format!r}; valid: {', '.join(PROBS_FORMATS)}")
    preds = pred if isinstance(pred, list) else [pred]
    volume = isinstance(pred, list)
    first = preds[0]
    cm = first.classmap
    max_id = max([0] + cm.ids)

    def stack(a: list[np.ndarray]) -> np.ndarray:
        return np.stack(a) if volume else a[0]

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if cm.task == "multilabel":
        for k, c in enumerate(cm.classes):
            m = stack([p.labels[..., k].astype(np.uint8) for p in preds])
            m = m * 255 if mask_format == "visible" else m
            target = out_dir / f"{stem}_mask_{_safe(c.name)}.{'tif' if volume else 'png'}"
            _write_mask(target, m, volume)
            written.append(target)
    else:
        m = stack([p.labels for p in preds])
        if mask_format == "visible":
            m = _visible(m, max_id)
        target = out_dir / f"{stem}_mask.{'tif' if volume else 'png'}"
        _write_mask(target, m, volume)
        written.append(target)
    if probs:
        pr = stack([p.probs for p in preds])
        if probs_format == "npy":
            target = out_dir / f"{stem}_probs.npy"
            np.save(target, pr.astype(np.float32, copy=False))
        else:
            target = out_dir / f"{stem}_probs.tif"
            tifffile.imwrite(target, np.round(np.clip(pr, 0, 1) * 65535).astype(np.uint16))
        written.append(target)
    if uncertainty:
        target = out_dir / f"{stem}_uncertainty.tif"
        tifffile.imwrite(target, stack([p.uncertainty for p in preds]).astype(np.float32, copy=False))
        written.append(target)
        if first.variance is not None:
            target = out_dir / f"{stem}_variance.tif"
            tifffile.imwrite(target, stack([p.variance for p in preds]).astype(np.float32, copy=False))
            written.append(target)
    return written
