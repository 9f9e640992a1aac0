"""Small datasets and steps shared by the Dataset / Review widget tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 40, 48
HOLE = (slice(12, 14), slice(16, 18))  # inside sample 1's object
SPECK = (slice(34, 36), slice(40, 42))  # sample 2: a 4-pixel island far from its object
CVC_FRAMES = (1, 2, 3, 120, 121, 300)


def object_mask(i: int) -> np.ndarray:
    """Sample ``i``'s object: a box whose place depends on i (0/1)."""
    m = np.zeros((H, W), np.uint8)
    m[6 + i : 22 + i, 8 + i : 28 + i] = 1
    return m


def make_review_set(root: Path, n: int = 6) -> Path:
    """images/<i>.png (RGB) + masks/<i>.png (0/255): sample 1 has a hole in its object, sample 2 a speck."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        rng = np.random.default_rng(i)
        mask = object_mask(i)
        image = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
        image[mask.astype(bool)] += 120  # the object is brighter, as a polyp is
        if i == 1:
            mask[HOLE] = 0
        if i == 2:
            mask[SPECK] = 1
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"{i}.png")
    return root


def copy_cvc(cvc_dir: Path, root: Path, frames=CVC_FRAMES) -> Path:
    """A few real CVC-ClinicDB frames in the images/ + masks/ layout (the source folder is only read)."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for k in frames:
            shutil.copy2(cvc_dir / sub / f"{k}.png", root / sub / f"{k}.png")
    return root


def open_dataset_widget(viewer, qtbot, folder: Path):
    """A docked Dataset widget that opened ``folder``; waits for the workspace and the first sample."""
    from napari_medseg._dataset_widget import DatasetWidget
    from napari_medseg._session import session_for

    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Dataset")  # as the Plugins menu does
    assert isinstance(widget, DatasetWidget)
    widget.set_folder(folder)
    widget.open_button.click()
    session = session_for(viewer)
    qtbot.waitUntil(lambda: session.workspace is not None, timeout=30000)
    qtbot.waitUntil(lambda: session.sample_id is not None, timeout=15000)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=5000)
    return widget, session


def wait_for_sample(qtbot, session, sample_id: str, timeout: int = 10000) -> None:
    qtbot.waitUntil(lambda: session.sample_id == sample_id, timeout=timeout)


def capture_errors(monkeypatch) -> list[str]:
    """The error notifications the plugin shows from now on (``show_error`` messages, in order)."""
    from napari.utils import notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    return errors


def show_and_wait(widget, qtbot, session, sample_id: str) -> None:
    """Ask the Review widget for a sample and wait until it is on screen and the queue is built."""
    widget.show(sample_id)
    wait_for_sample(qtbot, session, sample_id)
    wait_for_queue(qtbot, widget)


def wait_for_queue(qtbot, widget, timeout: int = 10000) -> None:
    """Wait until the Review widget's queue and the sample's facts, read in workers, are on screen."""
    qtbot.waitUntil(lambda: not widget.panel.refreshing and widget.sample_pending is None, timeout=timeout)
