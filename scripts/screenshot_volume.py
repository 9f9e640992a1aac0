"""Screenshot of a CT volume under review in napari, as a person sees it at 1366x768.

    python scripts/screenshot_volume.py [--out docs/screenshots]      (runs itself under Xvfb without a display)

The real abdominal CT of ../shared/data/ct-mr-volumes (41 TotalSegmentator
structures) copied into an nnU-Net raw 3-D folder, its workspace shown with the
Display and Review docks: the volume at its spacing, in the soft-tissue window, the slider on the slices; the
Display dock lists the 41 classes (colour, name, id, voxels) with the class
under the cursor; one slice is corrected with the brush and saved, so the
Review history shows the revision naming the one changed slice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = ap.parse_args()
    from napari_medseg._headless import pump, rerun_under_xvfb

    status = rerun_under_xvfb()
    if status is not None:
        return status
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    sys.path.insert(0, str(REPO / "tests"))

    import napari
    import numpy as np
    from _volume_data import real_nnunet3d

    from medseg.workspace import Workspace
    from napari_medseg._display_widget import DisplayWidget
    from napari_medseg._review_widget import ReviewWidget
    from napari_medseg._sample_layers import show_sample
    from napari_medseg._session import LABELS_LAYER, session_for

    root = real_nnunet3d(Path(tempfile.mkdtemp(prefix="medseg-volume-shot-")) / "ct", "ct")
    viewer = napari.Viewer(title="napari-medseg: CT volume review", show=True)
    session = session_for(viewer)
    session.set_workspace(Workspace.create(root.parent / "ct.medseg", root))
    display, review = DisplayWidget(viewer), ReviewWidget(viewer)
    viewer.window.add_dock_widget(display, name="Display", area="left")
    viewer.window.add_dock_widget(review, name="Review", area="right")
    for dock in (viewer.window._qt_viewer.dockLayerControls, viewer.window._qt_viewer.dockLayerList):
        dock.setVisible(False)  # the room goes to the class list
    viewer.window._qt_window.resize(1366, 768)
    show_sample(viewer, session.workspace.sample_ids()[0])
    if not pump(120, lambda: session.sample_id is not None):
        print("the CT sample did not open", file=sys.stderr)
        return 1
    ws, sid = session.workspace, session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    liver = ws.classmap.id_of("liver")
    z = display.classes.go_to_class(liver)
    ys, xs = np.nonzero(np.asarray(labels.data[z]) == liver)
    # a correction: the liver grown by a brush stroke at its edge on this slice
    labels.brush_size = 4
    labels.selected_label = liver
    labels.paint((z, int(ys.min()), int(xs[ys.argmin()])), liver)
    pump(5, lambda: review.sample_pending is None)
    review.save_correction()
    if not pump(30, lambda: review.sample_pending is None and review.history.count() >= 2):
        print("the history did not show the saved revision", file=sys.stderr)
    pump(30, lambda: not review.panel.refreshing and "corrected" in review.queue.item(0).text())
    viewer.layers.selection.active = viewer.layers["medseg image"]
    display.form.window.value = "soft_tissue"  # what it opened in, named in the menu
    centre = np.array([z, ys.mean(), xs.mean()]) * np.asarray(labels.scale)
    viewer.cursor.position = tuple(centre)
    display.classes._on_cursor()
    pump(1.0)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "06-volume-review.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(f"saved {path} (slice {z}, {ws.changed_slices(ws.sample(sid).head_revision)} changed)")
    session.set_workspace(None)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
