"""Review's suspicion overlay loads torch only for a sample with a stored model prediction.

Importing torch takes seconds and holds the interpreter lock the GUI thread needs; a workspace that QC
scored with model-free signals alone has nothing for the overlay to draw, so showing its samples must not
import torch (the overlay's worker asked for it at every first sample before).
"""

from __future__ import annotations

import numpy as np

from medseg.qc.prediction_store import save_prediction
from medseg.qc.queue import signal_methods
from napari_medseg import _review_suspicion, _torch_guard


class Scored:
    """What the overlay's worker reads of a workspace: where it lives and which score methods it holds."""

    def __init__(self, root, methods) -> None:
        self.root, self.methods = root, list(methods)

    def score_methods(self) -> list[str]:
        return self.methods


def _torch_loads(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(_torch_guard, "load_torch", lambda: calls.append(1))
    return calls


def test_model_free_scores_alone_never_load_torch(tmp_path, monkeypatch):
    calls = _torch_loads(monkeypatch)
    workspace = Scored(tmp_path, signal_methods())
    method, shown = _review_suspicion._read(workspace, "7", None)
    assert method in signal_methods() and shown is None
    assert _review_suspicion._read(Scored(tmp_path, []), "7", None) == (None, None)
    assert calls == []


def test_a_stored_prediction_loads_torch_and_draws_its_map(tmp_path, monkeypatch):
    import medseg.qc.suspicion

    calls = _torch_loads(monkeypatch)
    drawn = np.full((4, 5), 0.25, np.float32)
    monkeypatch.setattr(medseg.qc.suspicion, "suspicion_map", lambda ws, sample_id, method: drawn)
    save_prediction(tmp_path, "oof-k5", "7", np.full((1, 4, 5), 0.9, np.float32), run="r1")
    workspace = Scored(tmp_path, ["oof-k5", *signal_methods()])
    assert _review_suspicion._read(workspace, "8", None) == ("oof-k5", None)  # none stored for sample 8
    assert calls == []
    method, shown = _review_suspicion._read(workspace, "7", None)
    assert method == "oof-k5" and shown is drawn and calls == [1]
