"""Stored predictions of a ranking run: ``<workspace>/predictions/<method>/<sample id>.npz``.

A ranking run keeps each scored sample's probabilities so the review widget
can show where the label is suspect without running a model again
(:mod:`medseg.qc.suspicion`), holding ``probs`` as uint8 (probability x 255,
rounded: at most 0.2 % off, 4x smaller than float32) and the ``run`` id that
wrote it. Files are written under a temporary name, fsynced and renamed, so a
reader sees the old file or the new one. Nothing is written into the source
dataset. This module needs no torch: the viewer asks whether a sample has a
stored prediction before it loads torch for the suspicion map.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import quote

import numpy as np

from medseg.errors import ReadError
from medseg.folder_swap import write_atomic
from medseg.io.npz import NpzFile

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
    write_atomic(final, lambda f: np.savez_compressed(f, probs=quantise(probs), run=np.array(str(run))))
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
