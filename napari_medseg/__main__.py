"""``python -m napari_medseg``: napari with the Display widget docked on the chest X-ray sample.

``--screenshot PATH`` saves what a person would see (canvas and docked widget) and exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PLUGIN = "napari-medseg"


def first_sample_key() -> str:
    """The chest X-ray when pydicom-data is installed, else pydicom's own CT_small (with a printed note)."""
    from pydicom.data import get_testdata_file

    if get_testdata_file("RG1_UNCI.dcm", download=False) is not None:
        return "chest_xray"
    print("note: pydicom-data is not installed (pip install pydicom-data), so the chest X-ray sample "
          "is missing; showing the CT_small sample instead.", file=sys.stderr)
    return "ct"


def open_viewer(show: bool = True):
    """A napari viewer showing the first sample with the Display widget docked.

    The X-ray file's own window spans nearly its whole range (flat grey), so the
    widget's 1-99 percentile window is chosen, as a person would.
    """
    import napari

    from napari_medseg._display_widget import PERCENTILE

    viewer = napari.Viewer(title="napari-medseg", show=show)
    key = first_sample_key()
    viewer.open_sample(PLUGIN, key)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Display")
    if key == "chest_xray":
        widget.presets.setCurrentText(PERCENTILE)
    return viewer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_medseg", description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, metavar="PATH",
                        help="save a screenshot of the window (canvas and widgets) to PATH and exit")
    args = parser.parse_args(argv)

    import napari

    viewer = open_viewer()
    if args.screenshot is None:
        napari.run()
        return 0
    from qtpy.QtWidgets import QApplication

    viewer.window.resize(1400, 900)
    for _ in range(20):  # let Qt lay out the dock and draw the canvas before grabbing it
        QApplication.processEvents()
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.screenshot), canvas_only=False)
    viewer.close()
    print(f"saved {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
