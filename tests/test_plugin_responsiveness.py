"""The viewer keeps running while a prediction and a fine-tune run: the model work happens off the GUI
thread (predictions in a thread worker, training in a child process) and the event loop keeps ticking.

The largest gap between ticks of a 10 ms QTimer is printed, not asserted (wall-clock figures belong
in benchmarks/bench_gui_responsiveness.py, which compares them with an idle baseline in one run)."""

from __future__ import annotations

import os

from _predict_data import tiny_unet
from _ticks import MainThreadCalls, TickMonitor
from _train_run import watch_training_children

from medseg.datasets.demo import make_demo_dataset
from medseg.inference import Predictor
from medseg.workspace import Workspace
from napari_medseg._session import PREDICTION_LAYER, session_for


def test_prediction_and_finetune_run_off_the_gui_thread(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    forward = MainThreadCalls(monkeypatch, Predictor, "forward_tiles")
    reads = {
        name: MainThreadCalls(monkeypatch, Workspace, name)
        for name in (
            "sample",
            "samples",
            "revisions",
            "findings",
            "score_methods",
            "score_details",
            "scores",
            "current_mask",
        )
    }
    viewer = make_napari_viewer()
    _, work = viewer.window.add_plugin_dock_widget("napari-medseg", "Work area")
    tools, session = work.tools, session_for(viewer)
    demo = make_demo_dataset(tmp_path / "demo", sequences=2, frames=3, shape=(64, 80), planted=1)
    tools["Dataset"].set_folder(demo.root)
    tools["Dataset"].open_workspace()
    qtbot.waitUntil(lambda: session.sample_id is not None, timeout=60_000)

    ft = tools["Fine-tune"]
    ft.child_env = {"OMP_NUM_THREADS": "1"}
    f = ft.form
    qtbot.waitUntil(lambda: "resnet18" in f.encoder.choices, timeout=60_000)  # read in a worker
    f.arch.value, f.encoder.value, f.epochs.value, f.batch_size.value = "Unet", "resnet18", 1, 2
    f.image_size.value, f.augment.value, f.device.value, f.out.value = 64, "none", "CPU", tmp_path / "runs"

    ticks = TickMonitor().start()
    ticks_before_work = len(ticks.times)
    predict = tools["Predict"]
    predict.set_checkpoints([str(tiny_unet(tmp_path))])
    predict.live.setChecked(True)
    children = watch_training_children(monkeypatch)
    assert ft.start()
    qtbot.waitUntil(lambda: bool(children) or not ft.running, timeout=60_000)
    pids = [proc.pid for proc in children]
    before = {name: calls.main for name, calls in reads.items()}
    for _ in range(4):  # the user keeps reviewing while both run: live predictions follow each move
        tools["Review"].next_sample()
        qtbot.wait(150)
    on_gui = {name: calls.main - before[name] for name, calls in reads.items() if calls.main > before[name]}
    qtbot.waitUntil(lambda: not ft.running and not predict.queue.busy, timeout=240_000)
    ticks.stop()

    assert ft.outcome.kind == "result", ft.status.text()
    assert pids and all(pid != os.getpid() for pid in pids)  # training ran in another process
    assert PREDICTION_LAYER in viewer.layers and predict.queue.counts.shown >= 1
    assert forward.other >= 1 and forward.main == 0  # no forward pass on the GUI thread
    # moving on reads the workspace in workers only: a query on the GUI thread waits for the interpreter
    # lock while the prediction worker runs (50-800 ms gaps measured when Review read it there)
    assert on_gui == {}, on_gui
    assert len(ticks.times) - ticks_before_work > 10  # the event loop ran throughout
    print(
        f"\nlargest gaps between 10 ms ticks while predicting and fine-tuning: "
        f"{', '.join(f'{g:.0f}' for g in ticks.worst())} ms over {len(ticks.times)} ticks"
    )
