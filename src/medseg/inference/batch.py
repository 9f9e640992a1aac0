"""Predicting many files: which images a list of paths means, and how a Prediction is written.

Inputs: an image file is itself; a folder holding one DICOM series is one
volume; a dataset folder (``open_dataset`` detects a layout) means its samples'
images (volumes too), named by sample id, and any other folder means the
loadable files directly in it (not recursive), sorted by name.
A dataset's images without a mask are predicted too.

Outputs in ``out_dir``, named by the input's stem (``_2``, ``_3``... added when
two inputs share one):
  ``<stem>_mask.png``  class ids as uint8 PNG (uint16 past id 255): binary 0/1;
                        ``mask_format="visible"`` spreads ids over 0..255 (binary 0/255)
                        for image viewers. Multilabel: ``<stem>_mask_<class>.png`` each.
                        Volumes: ``<stem>_mask.nii.gz`` on the image's grid (NIfTI, DICOM
                        series; ``volume_outputs``), else ``<stem>_mask.tif`` (S, H, W).
  ``<stem>_probs.tif``  probabilities (C, H, W) as uint16 (p * 65535), or
                        ``<stem>_probs.npy`` float32 with ``probs_format="npy"``.
  ``<stem>_uncertainty.tif`` / ``<stem>_variance.tif``  float32 (H, W).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Skipped:
    """An input not predicted: the file and why (a dataset problem's kind and message, or the error)."""

    path: Path
    reason: str


def collect_inputs(paths: list[str | Path], skipped: list[Skipped] | None = None) -> list[InputItem]:
    """The images the paths mean (see the module docstring); ReadError for a path that does not exist.

    Files that cannot be inputs (not an image, a dataset's unusable files) are appended to ``skipped``
    with the reason, so that a caller can report each one.
    """
    from medseg.datasets import is_dataset_folder, open_dataset
    from medseg.datasets.dataset import IMAGE_WITHOUT_MASK
    from medseg.io import can_load

    skipped = [] if skipped is None else skipped
    items: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ReadError(p, "does not exist")
        if p.is_file():
            items.append((p, _stem(p)))
        elif _is_series(p):  # one volume, not a folder of 2-D files
            items.append((p, p.name))
        elif is_dataset_folder(p):
            ds = open_dataset(p)
            items.extend((s.image_path, str(s.id)) for s in ds.samples)
            for q in ds.problems:
                if q.kind == IMAGE_WITHOUT_MASK:  # unlabelled images are what a model is most often run on
                    items.append((q.path, _stem(q.path)))
                else:
                    skipped.append(Skipped(Path(q.path), f"{q.kind.replace('_', ' ')}: {q.message}"))
        else:
            files, refused = [], []
            for f in sorted(p.iterdir()):
                if not f.is_file() or f.name.startswith("."):
                    continue  # hidden files are the system's or medseg's own records; folders are not searched
                (files if can_load(f) else refused).append(f)
            if not files:
                raise ReadError(p, "is a folder with no loadable images in it (folders are not searched recursively)")
            items.extend((f, _stem(f)) for f in files)
            skipped.extend(
                Skipped(f, f"not an image medseg reads ({f.suffix or 'no suffix'}, unrecognised content)")
                for f in refused
            )
    used: dict[str, int] = {}
    out = []
    for path, stem in items:
        stem = _safe(stem)
        n = used.get(stem, 0) + 1
        used[stem] = n
        out.append(InputItem(path, stem if n == 1 else f"{stem}_{n}"))
    return out


def _is_series(folder: Path) -> bool:
    """True for a folder holding one DICOM series of several slices (its headers say so; nothing decoded)."""
    from medseg.io.dicom_series import is_dicom_series_folder, scan_series

    if not folder.is_dir() or not is_dicom_series_folder(folder):
        return False
    try:
        return len(scan_series(folder, strict=True).files) > 1
    except ReadError:
        return False  # several series or loose slices: each file is an image of its own


def visible_ids(ids: np.ndarray, max_id: int) -> np.ndarray:
    """Class ids spread over 0..255 (a mask a file viewer shows): the ``visible`` mask format."""
    return (ids.astype(np.uint32) * (255 // max(max_id, 1))).astype(np.uint8)


def write_probs(path: Path, probs: np.ndarray, probs_format: str, **tiff: Any) -> None:
    """Probabilities as float32 ``.npy``, or as a uint16 TIFF of p * 65535 (``tiff``: tifffile's options)."""
    import tifffile

    if probs_format == "npy":
        np.save(path, probs.astype(np.float32, copy=False))
    else:
        p = np.clip(probs.astype(np.float32, copy=False), 0, 1)  # float16 cannot hold 65535
        tifffile.imwrite(path, np.round(p * 65535).astype(np.uint16), **tiff)


def predict_image(predictor, image: ImageData, cancel=None, *, probs: bool = False, uncertainty: bool = False):
    """One Prediction for a 2-D image; a ``VolumePrediction`` for a grey volume (every slice, as
    ``iter_predict_volume`` prepares it; ``probs`` / ``uncertainty`` keep those); a list of Predictions,
    one per slice, for a colour stack."""
    if image.spatial_ndim == 2:
        return predictor.predict(image, cancel)
    if image.spatial_ndim != 3:
        raise InferenceError(
            f"{image.source or 'image'}: cannot predict an image with {image.spatial_ndim} "
            f"spatial axes (shape {image.array.shape})"
        )
    if not image.rgb:
        from medseg.inference.predict_volume import predict_volume

        return predict_volume(predictor, image, cancel, probabilities=probs, uncertainty=uncertainty)
    return [
        predictor.predict(ImageData(s, image.spacing[1:], dict(image.metadata), image.rgb), cancel) for s in image.array
    ]


def _write_mask(path: Path, a: np.ndarray, volume: bool) -> None:
    if volume:
        import tifffile

        tifffile.imwrite(path, a)
    else:
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(a)).save(path)


def prediction_names(
    classmap,
    stem: str,
    *,
    volume: bool = False,
    probs: bool = False,
    probs_format: str = "tif",
    uncertainty: bool = False,
    variance: bool = False,
) -> list[str]:
    """The file names :func:`write_prediction` writes, in its order."""
    ext = "tif" if volume else "png"
    names = (
        [f"{stem}_mask_{_safe(c.name)}.{ext}" for c in classmap.classes]
        if classmap.task == "multilabel"
        else [f"{stem}_mask.{ext}"]
    )
    if probs:
        names.append(f"{stem}_probs.{'npy' if probs_format == 'npy' else 'tif'}")
    if uncertainty:
        names.append(f"{stem}_uncertainty.tif")
        if variance:
            names.append(f"{stem}_variance.tif")
    return names


def write_prediction(
    pred: Prediction | list[Prediction],
    out_dir,
    stem: str,
    *,
    mask_format: str = "ids",
    probs: bool = False,
    probs_format: str = "tif",
    uncertainty: bool = False,
    overwrite: bool = False,
    sources=(),
) -> list[Path]:
    """Write a prediction (or one per slice of a colour stack) as the module docstring says; the paths
    written. A ``VolumePrediction`` is written by ``volume_outputs.write_volume_prediction``.

    ``out_dir``: a folder, or an :class:`medseg.ownership.OutputFolder` already guarded (many images into
    one folder). A folder inside a dataset's source files or a workspace is refused (``sources``: what
    was read); an existing file is replaced only with ``overwrite`` and only if medseg wrote it unchanged.
    """
    import tifffile

    from medseg.ownership import OutputFolder

    if mask_format not in MASK_FORMATS:
        raise ValueError(f"unknown mask format {mask_format!r}; valid: {', '.join(MASK_FORMATS)}")
    if probs_format not in PROBS_FORMATS:
        raise ValueError(f"unknown probability format {probs_format!r}; valid: {', '.join(PROBS_FORMATS)}")
    folder = (
        out_dir
        if isinstance(out_dir, OutputFolder)
        else OutputFolder(out_dir, purpose="predictions", sources=sources, overwrite=overwrite)
    )
    preds = pred if isinstance(pred, list) else [pred]
    volume = isinstance(pred, list)
    first = preds[0]
    cm = first.classmap
    max_id = max([0] + cm.ids)
    # every file is checked before the first is written: a refusal leaves nothing half done
    targets = iter(
        folder.check(
            *prediction_names(
                cm,
                stem,
                volume=volume,
                probs=probs,
                probs_format=probs_format,
                uncertainty=uncertainty,
                variance=first.variance is not None,
            )
        )
    )

    def stack(a: list[np.ndarray]) -> np.ndarray:
        return np.stack(a) if volume else a[0]

    folder.mkdir()
    written: list[Path] = []
    try:
        if cm.task == "multilabel":
            for k, _c in enumerate(cm.classes):
                m = stack([p.labels[..., k].astype(np.uint8) for p in preds])
                m = m * 255 if mask_format == "visible" else m
                written.append(next(targets))
                _write_mask(written[-1], m, volume)
        else:
            m = stack([p.labels for p in preds])
            if mask_format == "visible":
                m = visible_ids(m, max_id)
            written.append(next(targets))
            _write_mask(written[-1], m, volume)
        if probs:
            written.append(next(targets))
            write_probs(written[-1], stack([p.probs for p in preds]), probs_format)
        if uncertainty:
            written.append(next(targets))
            tifffile.imwrite(written[-1], stack([p.uncertainty for p in preds]).astype(np.float32, copy=False))
            if first.variance is not None:
                written.append(next(targets))
                tifffile.imwrite(written[-1], stack([p.variance for p in preds]).astype(np.float32, copy=False))
    finally:
        folder.record(*(w for w in written if w.exists()))
    return written
