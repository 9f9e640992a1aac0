"""``python -m napari_medseg``: napari with the napari-medseg work area open on the demo dataset.

The demo dataset (24 generated colonoscopy-like frames in 4 short videos, 5 of
them with planted label errors; see ``medseg.datasets.demo``) is written once
into ``$MEDSEG_DEMO_DIR`` (default ``~/.cache/napari-medseg/demo``) and its
workspace beside it, so edits made in one session are there in the next.
``--dataset FOLDER`` opens your own dataset or workspace instead;
``--display-sample`` shows the chest X-ray sample with the Display widget.
``--screenshot PATH`` saves what a person would see (canvas and docked widgets) and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PLUGIN = "napari-medseg"
NO_DISPLAY = (
    "napari-medseg: no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run it in a "
    "desktop session or set DISPLAY (ssh -X), or save a picture of it with --screenshot PATH (needs xvfb-run)."
)


def demo_dataset() -> Path:
    """The demo dataset folder, generated on first use."""
    from medseg.datasets.demo import make_demo_dataset

    root = Path(os.environ.get("MEDSEG_DEMO_DIR") or Path.home() / ".cache" / "napari-medseg" / "demo")
    folder = root / "endoscopy-demo"
    if not (folder / "images").is_dir():
        make_demo_dataset(folder)
    return folder


def first_sample_key() -> str:
    """The chest X-ray when pydicom-data is installed, else pydicom's own CT_small (with a printed note)."""
    from pydicom.data import get_testdata_file

    if get_testdata_file("RG1_UNCI.dcm", download=False) is not None:
        return "chest_xray"
    print(
        "note: pydicom-data is not installed (pip install pydicom-data), so the chest X-ray sample "
        "is missing; showing the CT_small sample instead.",
        file=sys.stderr,
    )
    return "ct"


def open_display_sample(viewer) -> None:
    """The first sample with the Display widget docked (the X-ray's own window spans nearly its whole
    range, a flat grey, so the widget's 1-99 percentile window is chosen, as a person would)."""
    from napari_medseg._display_widget import PERCENTILE

    key = first_sample_key()
    viewer.open_sample(PLUGIN, key)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Display")
    if key == "chest_xray":
        widget.presets.setCurrentText(PERCENTILE)


def open_work_area(viewer, folder: Path):
    """Dock the work area and open ``folder``'s workspace (created in a worker on first use)."""
    _, area = viewer.window.add_plugin_dock_widget(PLUGIN, "Work area")
    tools = area.tools
    tools["Dataset"].set_folder(folder)
    tools["Dataset"].open_workspace()
    return area, tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_medseg", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, metavar="FOLDER", help="a dataset or workspace folder to open")
    parser.add_argument(
        "--display-sample", action="store_true", help="show the chest X-ray sample with the Display widget instead"
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="save a screenshot of the window (canvas and widgets) to PATH and exit",
    )
    args = parser.parse_args(argv)
    from napari_medseg._headless import has_display, rerun_under_xvfb

    if not has_display():
        if args.screenshot is not None:  # a picture needs no screen: draw it on a virtual one
            argv = sys.argv[1:] if argv is None else argv
            status = rerun_under_xvfb([sys.executable, "-m", "napari_medseg", *map(str, argv)])
            if status is not None:
                return status
        print(NO_DISPLAY, file=sys.stderr)
        return 1

    import napari

    viewer = napari.Viewer(title="napari-medseg", show=True)
    if args.display_sample:
        open_display_sample(viewer)
    else:
        folder = args.dataset if args.dataset is not None else demo_dataset()
        open_work_area(viewer, folder.expanduser().absolute())
    if args.screenshot is None:
        napari.run()
        settle_workers(10.0)  # a dock's read still running as the window closed: let it end, not abort
        return 0
    from qtpy.QtWidgets import QApplication

    viewer.window.resize(1600, 1000)
    if not args.display_sample:
        wait_for_sample(viewer)
    for _ in range(20):  # let Qt lay out the docks and draw the canvas before grabbing it
        QApplication.processEvents()
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.screenshot), canvas_only=False)
    settle_workers()
    viewer.close()
    print(f"saved {args.screenshot}")
    return 0


def settle_workers(timeout_s: float = 60.0) -> None:
    """Let the docks' thread workers (the overview, the past runs, ...) end and deliver their results before
    the window goes: a worker still running when Qt deletes its signals aborts the process."""
    import time

    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QApplication

    pool = QThreadPool.globalInstance()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QApplication.processEvents()
        if pool.activeThreadCount() == 0 and pool.waitForDone(50):
            break
        pool.waitForDone(50)
    QApplication.processEvents()


def wait_for_sample(viewer, timeout_s: float = 60.0) -> None:
    """Process events until the workspace is open and its first sample is on screen."""
    from napari_medseg._headless import pump
    from napari_medseg._session import session_for

    session = session_for(viewer)
    pump(timeout_s, lambda: session.sample_id is not None)


if __name__ == "__main__":
    raise SystemExit(main())
