"""What the tests of opening a workspace beside its long jobs share: a small reopened workspace, and a gate that
holds an engine call in its worker until the test lets it go."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medseg.workspace import Workspace
from napari_medseg._dataset_jobs import default_workspace


def reopenable_frames(tmp_path: Path, n: int = 6) -> Path:
    """``n`` 16x16 frames 0.png... with a box mask each (its height varies), and their workspace beside them."""
    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((16, 16), np.uint8)
        mask[3 : 8 + i, 4:9] = 255
        Image.fromarray((mask // 2 + 30).astype(np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    Workspace.create(default_workspace(data), data).close()
    return data


def hold(monkeypatch, module: Any, name: str, gate: threading.Event, reached: Callable[[], Any]) -> None:
    """Put in place of ``module.name`` a call that runs ``reached()``, waits (in its worker) for ``gate``, then
    does what the real one does."""
    real = getattr(module, name)

    def held(*args, **kwargs):
        reached()
        assert gate.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
