"""Building a model after napari's GL context exists must not load triton (it crashes under Mesa llvmpipe)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import napari_medseg  # the plugin is imported before any of its widgets exists
import napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
for _ in range(5):
    QApplication.processEvents()
import segmentation_models_pytorch as smp, torch, sys
net = smp.Unet("resnet18", encoder_weights=None).eval()
print(tuple(net(torch.rand(1, 3, 64, 64)).shape), sys.modules.get("triton"))
viewer.close()
"""


def test_model_after_gl_context_does_not_crash(tmp_path):
    # a fresh process: the test session has long imported torch and torchvision
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(1, 1, 64, 64) None" in out.stdout
