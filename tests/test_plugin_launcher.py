"""``python -m napari_medseg`` without a display: one line saying so and exit 1 for a window (it aborted with
134), a picture drawn under Xvfb for ``--screenshot``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from napari_medseg.__main__ import NO_DISPLAY

REPO = Path(__file__).resolve().parents[1]


def _no_display_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    # the demo dataset and napari's settings go to the test's folder, not the user's home
    env.update(MEDSEG_DEMO_DIR=str(tmp_path / "demo"), NAPARI_CONFIG=str(tmp_path / "napari.yaml"))
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="macOS and Windows always have a display")
def test_without_a_display_the_launcher_says_so_in_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "napari_medseg"],
        env=_no_display_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert run.stderr.strip() == NO_DISPLAY
    assert "DISPLAY" in NO_DISPLAY and "--screenshot" in NO_DISPLAY
    assert not (tmp_path / "demo").exists()  # nothing written before it knew it could show it


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb is for Linux")
def test_a_screenshot_without_a_display_is_drawn_under_xvfb(tmp_path):
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [sys.executable, "-m", "napari_medseg", "--screenshot", str(shot)],
        env=_no_display_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with Image.open(shot) as im:
        width, height = im.size
    assert width >= 800 and height >= 500
    # the window napari saved at close fits the virtual screen (1600x1000) it was drawn on
    saved = yaml.safe_load((tmp_path / "napari.yaml").read_text())["application"]["window_size"]
    assert saved[0] <= 1600 and saved[1] <= 1000, saved


def test_the_plugin_goes_by_one_name():
    """The Plugins menu showed "Medical Segmentation Cleaner" where the README, the package and the window
    title say napari-medseg."""
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-medseg")
    assert manifest.display_name == manifest.name == "napari-medseg"
