"""Walk through the main workflow in a real napari window and save what a person sees at each step.

    python scripts/screenshots.py [--out docs/screenshots] [--size 1366x768 --size 1920x1080]
    (runs itself under Xvfb without a display)

On the generated demo dataset (24 colonoscopy-like frames, 5 with planted label
errors): open the workspace and run QC (Dataset), look at the dataset (Overview:
its summary and plots), fine-tune a small Unet out of process (Fine-tune, its
live plot; then its past runs, the run selected with its learning curves),
predict the sample on screen with the new
model (Predict: prediction, probability and uncertainty layers), re-score the
review queue with that model and open its worst sample (Review: the label
filled, the model's prediction outlined in its own colour, and the layer
showing where the model disagrees with the label), correct it and
export the cleaned dataset (Export, with its change summary).

Each ``--size WxH`` is a screen: every step is shot with the window filling a
screen of that size (as a maximised window does), to ``NN-step-WxH.png``;
without ``--size`` the window is 1600x1000 and the files are ``NN-step.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument(
        "--size", type=screen_size, action="append", metavar="WxH", help="a screen size to shoot at (repeatable)"
    )
    args = ap.parse_args()
    from napari_medseg._headless import pump, rerun_under_xvfb

    sizes = args.size or [(1600, 1000)]
    largest = f"{max(w for w, _ in sizes)}x{max(h for _, h in sizes)}"
    status = rerun_under_xvfb(screen=largest)
    if status is not None:
        return status
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    import napari
    import numpy as np
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtCore import QRect

    from medseg.datasets.demo import make_demo_dataset
    from napari_medseg._review_partner import PARTNER_LAYERS
    from napari_medseg._review_suspicion import SUSPICION_LAYER
    from napari_medseg._session import LABELS_LAYER, PREDICTION_LAYER, session_for

    tmp = Path(tempfile.mkdtemp(prefix="medseg-shots-"))
    demo = make_demo_dataset(tmp / "endoscopy-demo", shape=(288, 384))
    viewer = napari.Viewer(title="napari-medseg", show=True)
    window = viewer.window._qt_window
    window.setGeometry(QRect(0, 0, *sizes[0]))
    _, work = viewer.window.add_plugin_dock_widget("napari-medseg", "Work area")
    tools, session = work.tools, session_for(viewer)
    pump(5, lambda: work.arranged)

    def shot(name: str, tool: str | None = None, arrange: Callable[[], None] | None = None) -> None:
        if tool:
            work.show_tool(tool)
        args.out.mkdir(parents=True, exist_ok=True)
        for width, height in sizes:
            window.setGeometry(QRect(0, 0, width, height))  # the window filling a screen of that size
            pump(1.0)
            if arrange is not None:  # what the picture is about, in view at this size (a scrolled dock)
                arrange()
                pump(0.5)
            path = args.out / (f"{name}.png" if args.size is None else f"{name}-{width}x{height}.png")
            viewer.screenshot(str(path), canvas_only=False)
            print(f"saved {path}")

    # 1. Dataset: open the folder, the workspace is created beside it; run QC
    tools["Dataset"].set_folder(demo.root)
    tools["Dataset"].open_workspace()
    pump(120, lambda: session.sample_id is not None)
    tools["Dataset"].run_qc()
    pump(120, lambda: tools["Dataset"].worker is None)
    shot("01-dataset", "Dataset")

    # 2. Overview: the dataset's summary and plots (it followed the QC run by itself: wait until it settled)
    overview = tools["Overview"]
    pump(180, lambda: overview.report is not None and overview.job is None and not overview.settle.isActive())
    shot("02-overview", "Overview")

    # 3. Fine-tune a small model on the workspace's labels, in a child process
    ft = tools["Fine-tune"]
    f = ft.form
    pump(120, lambda: "resnet18" in f.encoder.choices)  # the model names are read in a worker
    f.arch.value, f.encoder.value, f.epochs.value, f.batch_size.value = "Unet", "resnet18", args.epochs, 4
    f.image_size.value, f.augment.value, f.device.value, f.out.value = 128, "light", "CPU", tmp / "runs"
    f.lr.value = 0.003
    ft.start()
    pump(600, lambda: not ft.running)
    # the run's live plot in view, under the form's last settings
    shot("03-finetune", "Fine-tune", lambda: ft.body_scroll.ensureWidgetVisible(ft.plot, 0, 0))
    if ft.outcome is None or ft.outcome.kind != "result":
        print(f"fine-tuning did not finish: {ft.status.text()}", file=sys.stderr)
        return 1

    # 4. Its past runs: the run just finished selected, with its learning curves
    runs = ft.past_runs
    pump(60, lambda: not runs.busy)  # the runs are read in a worker
    if not runs.select(ft.run_dir.name):
        print(f"the run {ft.run_dir.name} is not in the past runs: {runs.title.text()}", file=sys.stderr)
        return 1
    pump(60, lambda: not runs.busy)  # its curves are decoded in a worker

    def runs_in_view() -> None:
        runs._show_selected()  # the curves scaled to the dock's width at this size
        pump(0.2)
        # the list's heading at the top of the dock, its curves below
        ft.body_scroll.verticalScrollBar().setValue(runs.mapTo(ft.body_scroll.widget(), runs.rect().topLeft()).y())

    shot("04-runs", "Fine-tune", runs_in_view)
    for toast in window.findChildren(NapariQtNotification):
        toast.close()  # read: as a user would, close it rather than leave it over the canvas from here on
    runs.use_selected()

    # 5. Predict the sample on screen with it
    predict = tools["Predict"]
    predict.request(force=True)
    pump(120, lambda: PREDICTION_LAYER in viewer.layers and not predict.queue.busy)
    shot("05-predict", "Predict", viewer.reset_view)

    # 6. Re-score the queue with the new model; review the worst sample
    ft.rescore()
    pump(300, lambda: ft.score_worker is None)
    review = tools["Review"]
    review.refresh_all()
    pump(60, lambda: not review.panel.refreshing)
    for worst in review.queue_ids()[:6]:  # the worst sample with a label to draw (the worst may be empty)
        review.show(worst)
        pump(60, lambda sid=worst: session.sample_id == sid and LABELS_LAYER in viewer.layers)
        pump(0.5)
        if np.any(viewer.layers[LABELS_LAYER].data):
            break
    pump(60, lambda: review.suspicion.shown is not None)
    predict.request(force=True)  # this sample's prediction, drawn as an outline over the filled label
    pump(120, lambda: not predict.queue.busy and predict.outputs.source is not None)
    pump(1.0)
    shown = (LABELS_LAYER, PREDICTION_LAYER, "medseg image", SUSPICION_LAYER, *PARTNER_LAYERS)
    # the label, the model's outline, where the model disagrees with the label, and a duplicate's label beside it
    for layer in viewer.layers:
        layer.visible = layer.name in shown
    # the sample and its duplicate both in view, at each size (the docks and the window resize the canvas)
    shot("06-review", "Review", viewer.reset_view)

    # 7. Correct it with the prediction, save, export
    predict.copy_into_labels()
    pump(30, lambda: predict.save_worker is None)
    review.accept()
    pump(2)
    ex = tools["Export"]
    ex.form.out.value = tmp / "cleaned"
    ex.start()
    pump(120, lambda: ex.worker is None)
    shot("07-export", "Export", viewer.reset_view)
    viewer.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def screen_size(text: str) -> tuple[int, int]:
    """``1366x768`` as (1366, 768)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a screen size like 1366x768") from None
    if width < 640 or height < 480:
        raise argparse.ArgumentTypeError(f"{text!r} is smaller than 640x480")
    return width, height


if __name__ == "__main__":
    raise SystemExit(main())
