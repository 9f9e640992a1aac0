"""Kaggle-style RLE CSV files: ``id,class,segmentation``, one row per sample and class.

The columns are the ones the UW-Madison GI Tract layout reads
(``medseg.datasets.layout_uwmadison``), so a written file reads back through
``open_dataset`` beside its slices; every class gets a row, an empty mask an
empty ``segmentation`` (Kaggle's own convention). The encoding is
``medseg.io.rle.rle_encode``: row-major, 1-indexed starts. The module sits above
the destination guard (``medseg.ownership``), which every writer goes through.

``medseg predict ... --rle-csv FILE`` writes its predictions so
(``prediction_rows``): a 2-D input's id is its output stem (a dataset's
sample id), each slice of a volume or of a colour stack is
``<stem>_slice_<NNNN>`` (1-based, as UW-Madison names its slices).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classmap import ClassMap
from medseg.io.rle import rle_encode

COLUMNS = ("id", "class", "segmentation")


def rle_rows(sample_id: str, mask: np.ndarray, classmap: ClassMap) -> list[tuple[str, str, str]]:
    """(id, class name, RLE) for each class of ``classmap``, in its order.

    ``mask``: (H, W) class ids (binary / multiclass) or (H, W, C) 0/1 channels in class-map order
    (multilabel, overlaps kept).
    """
    m = np.asarray(mask)
    names = classmap.names
    if m.ndim == 3:
        if m.shape[-1] != len(names):
            raise ValueError(f"{sample_id}: {m.shape[-1]} mask channels for {len(names)} classes {names}")
        return [(sample_id, name, rle_encode(m[..., k] > 0)) for k, name in enumerate(names)]
    if m.ndim != 2:
        raise ValueError(f"{sample_id}: a mask is (H, W) of class ids or (H, W, classes), got shape {m.shape}")
    unknown = sorted(set(np.unique(m).tolist()) - {0, *classmap.ids})
    if unknown:
        raise ValueError(
            f"{sample_id}: mask values {unknown[:6]} are not class ids of {dict(zip(classmap.ids, names))}"
        )
    return [(sample_id, c.name, rle_encode(m == c.id)) for c in classmap.classes]


def prediction_rows(stem: str, prediction: Any, classmap: ClassMap) -> list[tuple[str, str, str]]:
    """The rows of one input's prediction (a ``Prediction``, a ``VolumePrediction`` or a list of Predictions,
    as ``medseg.inference.batch.predict_image`` returns), see the module docstring."""
    from medseg.inference.predict_volume import VolumePrediction

    if isinstance(prediction, list):
        slices = [p.labels for p in prediction]
    elif isinstance(prediction, VolumePrediction):
        slices = list(np.asarray(prediction.labels))
    else:
        return rle_rows(stem, prediction.labels, classmap)
    rows: list[tuple[str, str, str]] = []
    for z, labels in enumerate(slices):
        rows += rle_rows(f"{stem}_slice_{z + 1:04d}", labels, classmap)
    return rows


def rle_csv_text(rows: Iterable[tuple[str, str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def write_rle_csv(path: str | os.PathLike, rows: Iterable[tuple[str, str, str]], *, overwrite: bool = False) -> Path:
    """Write ``rows`` (see ``rle_rows``) as a CSV through medseg's destination guard; returns the path.

    Refused inside a dataset's source files or a workspace; an existing file is replaced only with
    ``overwrite`` and only when medseg wrote it and it is unchanged (:mod:`medseg.ownership`).
    """
    from medseg.ownership import guarded_file

    folder, out = guarded_file(path, purpose="an RLE CSV", overwrite=overwrite)
    from medseg.folder_swap import write_text_atomic

    folder.mkdir()
    write_text_atomic(out, rle_csv_text(rows))
    folder.record(out)
    return out
