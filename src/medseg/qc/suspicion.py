"""The per-pixel suspicion map drawn from a ranking run's stored predictions.

At each pixel, 1 - the probability the ranking run's model gave the label's
class, from the probabilities :mod:`medseg.qc.prediction_store` kept, so no
model runs here.
"""

from __future__ import annotations

import numpy as np

from medseg.qc.label_scores import suspicion
from medseg.qc.prediction_store import load_prediction


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
