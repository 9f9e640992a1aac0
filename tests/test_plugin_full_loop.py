"""The whole product loop through the widgets as napari docks them (each behind its own viewer proxy):
open a dataset folder -> predict -> edit the Labels layer -> save -> fine-tune a tiny model out of process ->
use the new model -> export -> the exported manifest records the edit."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _predict_data import tiny_unet

from medseg.datasets.demo import make_demo_dataset
from napari_medseg._session import LABELS_LAYER, PREDICTION_LAYER, session_for

PLUGIN = "napari-medseg"


@pytest.fixture()
def area(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, area = viewer.window.add_plugin_dock_widget(PLUGIN, "Work area")
    return viewer, area


def test_open_predict_edit_finetune_use_export(area, qtbot, tmp_path):
    viewer, work = area
    tools = work.tools
    session = session_for(viewer)
    demo = make_demo_dataset(tmp_path / "demo", sequences=2, frames=4, shape=(48, 64), planted=2)

    # open: the workspace is created beside the dataset and the first sample is shown
    tools["Dataset"].set_folder(demo.root)
    tools["Dataset"].open_workspace()
    qtbot.waitUntil(lambda: session.workspace is not None and session.sample_id is not None, timeout=60_000)
    ws = session.workspace
    assert ws.root == (tmp_path / "demo.medseg").absolute() and len(ws.sample_ids()) == 8
    sid = session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    assert labels.data.shape == (48, 64)

    # predict with a checkpoint: the prediction layer appears over the image
    tools["Predict"].set_checkpoints([str(tiny_unet(tmp_path))])
    assert tools["Predict"].request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=60_000)
    assert viewer.layers[PREDICTION_LAYER].data.shape == (48, 64)

    # edit the Labels layer as the brush would, then save the correction
    before = labels.data.copy()
    edited = before.copy()
    edited[2:12, 3:20] = 1
    labels.data = edited
    tools["Review"].save_correction()
    qtbot.waitUntil(lambda: ws.sample(sid).status == "corrected", timeout=30_000)
    head = ws.revision(ws.sample(sid).head_revision)
    assert head.origin == "manual" and head.n_changed == int((edited != before).sum())
    np.testing.assert_array_equal(ws.current_mask(sid) > 0, edited > 0)

    # fine-tune a tiny model on the workspace's current labels, in a child process
    ft = tools["Fine-tune"]
    ft.child_env = {"OMP_NUM_THREADS": "1"}
    form = ft.form
    qtbot.waitUntil(lambda: "resnet18" in form.encoder.choices, timeout=60_000)  # read in a worker
    form.arch.value, form.encoder.value = "Unet", "resnet18"
    form.epochs.value, form.batch_size.value, form.image_size.value = 1, 4, 32
    form.augment.value, form.device.value = "none", "CPU"
    form.out.value = tmp_path / "runs"
    assert ft.start()
    qtbot.waitUntil(lambda: not ft.running, timeout=240_000)
    assert ft.outcome is not None and ft.outcome.kind == "result", ft.status.text()
    assert ft.job is None and any(e.kind == "epoch" for e in ft.events)
    run = ws.model_runs()[-1]
    assert run.kind == "train" and run.revisions[sid] == head.id  # trained on the correction

    # use the new model: Predict follows the session and predicts with it
    ft.use_model()
    assert session.checkpoints == [ft.checkpoint] and os.path.isdir(ft.checkpoint)
    queue = tools["Predict"].queue
    qtbot.waitUntil(lambda: not queue.busy, timeout=60_000)  # a live request the model swap may have made
    shown = queue.counts.shown
    assert tools["Predict"].request(force=True)
    qtbot.waitUntil(lambda: not queue.busy and queue.counts.shown > shown, timeout=60_000)
    assert queue.model[0].checkpoints == (ft.checkpoint,)

    # export, and read back what the manifest says about the edit
    ex = tools["Export"]
    ex.form.out.value = tmp_path / "export"
    assert ex.start()
    qtbot.waitUntil(lambda: ex.worker is None, timeout=60_000)
    assert ex.result is not None, ex.status.text()
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    entry = next(s for s in manifest["samples"] if s["id"] == sid)
    assert entry["status"] == "corrected"
    assert entry["revisions"]["origins"].get("manual") == 1
    assert entry["revisions"]["n_changed_vs_imported"] == head.n_changed
    assert "corrected" in (tmp_path / "export" / "CHANGES.md").read_text().lower()
    assert not (demo.root / "manifest.json").exists()  # the source dataset is never written
