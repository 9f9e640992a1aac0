"""Stored predictions of a ranking run, and the per-pixel suspicion map drawn from them.

A ranking run keeps each scored sample's probabilities so the review widget
can show where the label is suspect without running a model again:
``<workspace>/predictions/<method>/<sample id>.npz`` holding ``probs`` as
uint8 (probability x 255, rounded: at most 0.2 % off, 4x smaller than
float32) and the ``run`` id that wrote it. Files are written under a
temporary name, fsynced and renamed, so a reader sees the old file or the
new one. Nothing is written into the source dataset.
"""

from __future__ import annotations

import os
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote

import numpy as np

from medseg.errors import ReadError
from medseg.io.npz import NpzFile
from medseg.qc.label_scores import suspicion
from medseg.workspace.blobs import fsync_dir

FOLDER = "predictions"


def prediction_path(workspace_root: str | Path, method: str, sample_id: str) -> Path:
    # quote: sample ids may hold "/" (nested layouts) and method names ":"
    return Path(workspace_root) / FOLDER / quote(method, safe="-_.") / f"{quote(str(sample_id), safe='-_.')}.npz"


def quantise(probs: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(probs, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) / 255.0


def save_prediction(workspace_root: str | Path, method: str, sample_id: str, probs: np.ndarray, run: str) -> Path:
    """Store (C, H, W) probabilities of ``sample_id`` for ``method`` atomically; returns the file."""
    final = prediction_path(workspace_root, method, sample_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as f:
            np.savez_compressed(f, probs=quantise(probs), run=np.array(str(run)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


def load_prediction(workspace_root: str | Path, method: str, sample_id: str) -> tuple[np.ndarray, str] | None:
    """(probabilities float32 (C, H, W), run id), or None when none is stored."""
    path = prediction_path(workspace_root, method, sample_id)
    if not path.is_file():
        return None
    try:
        with NpzFile(path) as npz:
            return dequantise(npz["probs"]), str(npz["run"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise ReadError(path, f"stored prediction cannot be read ({type(e).__name__}: {e})") from None


def suspicion_map(workspace, sample_id: str, method: str) -> np.ndarray | None:
    """Per-pixel suspicion of the sample's current label, (H, W) float32 in [0, 1]: ``1 - p[label]``.

    None when ``method`` stored no prediction for the sample, when the stored
    one is from another run than the sample's current score, or when the
    label's size no longer matches it.
    """
    stored = load_prediction(workspace.root, method, sample_id)
    if stored is None:
        return None
    probs, run = stored
    details = workspace.score_details(method).get(str(sample_id))
    if details is None or details.get("run") not in (None, run):
        return None
    mask = workspace.current_mask(sample_id)
    if tuple(mask.shape[:2]) != tuple(probs.shape[1:]):
        return None
    return suspicion(probs, mask, workspace.classmap)
