"""A volume's prediction written to files: the label volume on the image's own grid.

A volume read from a NIfTI file or a DICOM series (its ``VolumePrediction``
has a ``geometry``) gets ``<stem>_mask.nii.gz`` written with
:func:`medseg.io.volume_geometry.label_image_like`: the source NIfTI's header
(shape in its voxel order, qform / sform and their codes), or the series'
affine, so nnU-Net, SimpleITK or ITK-SNAP see image and label on one grid.
Multilabel models write ``<stem>_mask_<class>.nii.gz`` per class. A volume
without a position (a TIFF stack) keeps ``<stem>_mask.tif``. Probabilities
(Z, C, Y, X) and uncertainty (Z, Y, X) are written as for 2-D stacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.inference.batch import prediction_names, visible_ids, write_probs
from medseg.inference.predict_volume import VolumePrediction
from medseg.io.volume_geometry import label_image_like

NIFTI = ".nii.gz"


def volume_prediction_names(
    pred: VolumePrediction, stem: str, *, probs: bool = False, probs_format: str = "tif", uncertainty: bool = False
) -> list[str]:
    """The file names :func:`write_volume_prediction` writes, masks first."""
    names = prediction_names(
        pred.classmap, stem, volume=True, probs=probs, probs_format=probs_format, uncertainty=uncertainty
    )
    if pred.geometry is None:
        return names
    masks = len(pred.classmap.classes) if pred.classmap.task == "multilabel" else 1
    return [n[: -len(".tif")] + NIFTI if i < masks else n for i, n in enumerate(names)]


def write_volume_prediction(
    pred: VolumePrediction,
    folder,
    stem: str,
    *,
    mask_format: str = "ids",
    probs: bool = False,
    probs_format: str = "tif",
    uncertainty: bool = False,
) -> list[Path]:
    """Write ``pred`` into ``folder`` (an :class:`medseg.ownership.OutputFolder`); the paths written. Every
    name is checked before the first file is written."""
    import nibabel as nib
    import tifffile

    targets = iter(
        folder.check(
            *volume_prediction_names(pred, stem, probs=probs, probs_format=probs_format, uncertainty=uncertainty)
        )
    )
    cm = pred.classmap
    max_id = max([0, *cm.ids])
    if cm.task == "multilabel":
        masks = [
            pred.labels[..., k].astype(np.uint8) * (255 if mask_format == "visible" else 1)
            for k in range(len(cm.classes))
        ]
    else:
        masks = [visible_ids(pred.labels, max_id) if mask_format == "visible" else pred.labels]
    folder.mkdir()
    written: list[Path] = []
    try:
        for m in masks:
            written.append(next(targets))
            if pred.geometry is None:
                tifffile.imwrite(written[-1], m, photometric="minisblack")
            else:
                nib.save(label_image_like(m, pred.source, pred.geometry), str(written[-1]))
        if probs:
            if pred.probs is None:
                raise ValueError("the volume was predicted without probabilities (probabilities=True)")
            written.append(next(targets))
            write_probs(written[-1], pred.probs, probs_format, photometric="minisblack")
        if uncertainty:
            if pred.uncertainty is None:
                raise ValueError("the volume was predicted without uncertainty (uncertainty=True)")
            written.append(next(targets))
            tifffile.imwrite(written[-1], pred.uncertainty.astype(np.float32, copy=False), photometric="minisblack")
    finally:
        folder.record(*(w for w in written if w.exists()))
    return written
