"""Building a model after napari's GL context exists must not load triton (it crashes under Mesa llvmpipe).

The plugin keeps triton out only while its own model-loading path imports torch
(:mod:`napari_medseg._torch_guard`): importing the plugin changes nothing in ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import napari_medseg  # the plugin is imported before any of its widgets exists
assert "triton" not in sys.modules, "importing the plugin must not touch sys.modules['triton']"
import napari
import numpy as np
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
for _ in range(5):
    QApplication.processEvents()
from napari_medseg._predict_model import ModelChoice, build_predictor  # what the Predict widget's worker runs
predictor = build_predictor(ModelChoice(arch="Unet", encoder="resnet18"))
prediction = predictor.predict(np.random.default_rng(0).random((64, 64), dtype=np.float32))
import medseg.training, medseg.qc.ranking, medseg.qc.suspicion  # Fine-tune's start and re-score, Review's overlay
print(prediction.labels.shape, "triton" in sys.modules)
viewer.close()
"""


def test_model_after_gl_context_does_not_crash(tmp_path):
    # a fresh process: the test session has long imported torch and torchvision
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(64, 64) False" in out.stdout, out.stdout[-2000:]
