"""Reviewing a CT volume in napari: open, memory, live prediction on slice change, saving a slice, scrolling.

    python benchmarks/bench_volume_review.py [--shape 300 512 512] [--moves 8] [--saves 5] [--device cpu]
                                             [--base 16] [--keep DIR] [--profile] [--warm-up]

A synthetic int16 CT (``--shape``: slices, rows, cols; 512x512x300 by default) and its label volume are
written as an nnU-Net raw 3-D dataset (the CT of ``bench_volume_store.py``) and imported into a workspace
(before napari starts; not timed against a target). Then napari runs (under Xvfb when there is no
display) with the napari-medseg work area, and the review is timed as a user does it:

1. open: the workspace opened in the Dataset dock until the first slice of the sample is drawn (the
   canvas's draw event after the layers hold it), then the sample shown again (warm). Target <= 2 s.
2. memory: resident memory sampled every 10 ms from the napari baseline (viewer, docks and torch loaded;
   with ``--warm-up`` also a 10x36x40 volume opened first, so that the process's one-off costs of a first
   volume, imports and GL, are in the baseline) through the whole review; its growth at the end of each
   phase and at its peak against the CT's size in bytes. Target <= 2x.
3. scrolling: the slider moved over every slice, one step per 20 ms (a mouse wheel), without and with live
   prediction; the longest gap between ticks of a 10 ms QTimer (the event loop not running).
4. live prediction: a 2.5-D PlainUNet (``--base`` channels, depth 4, 3 slices in, one 512x512 tile) in
   the Predict dock; the slider moved ``--moves`` times, each time until the prediction of the new slice is
   drawn; against that request's own forward pass (the Predictor's ``time_forward_s``: same thread, same
   moment, so the machine's load cancels out) and against the forward pass on one prepared slice timed back
   to back on the GUI thread. Target <= 1.2x.
5. saving: a brush stroke on a slice (``Labels.paint``, as the mouse does), the draft written, then the
   Review dock's "Save correction" (``save_slices`` of the slice and the GUI's updates), ``--saves``
   times. Target <= 0.2 s. The draft of that slice is timed against a draft of the whole label volume.

A table prints every measured value next to its target and the ratio. ``--profile`` prints the top of a
cProfile of each timed step (the worker's part of the open runs in a thread: its own profile is taken).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _viewer_probes import Draws, RssSampler, profiled, rss_bytes  # noqa: E402


def make_checkpoint(path: Path, classmap, base: int, size: tuple[int, int]) -> Path:
    from medseg.models import create_model, save_checkpoint
    from medseg.models.spec import ModelSpec, Preprocessing

    spec = ModelSpec(
        arch="PlainUNet",
        encoder="none",
        in_channels=3,
        classes=classmap.num_classes,
        task=classmap.task,
        kwargs={"depth": 4, "base_channels": base, "dropout": 0.0},
    )
    prep = Preprocessing(
        channels=3, window=[40.0, 400.0], input_size=list(size), divisible_by=16, slices=3, scope="volume"
    )
    return save_checkpoint(path, create_model(spec).eval(), spec, classmap, prep)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("SLICES", "ROWS", "COLS"))
    ap.add_argument("--moves", type=int, default=8, help="slice changes timed to the prediction shown")
    ap.add_argument("--saves", type=int, default=5, help="corrected slices saved (median printed)")
    ap.add_argument("--device", default="CPU", choices=("CPU", "GPU", "auto"), help="the Predict dock's device")
    ap.add_argument("--base", type=int, default=16, help="the PlainUNet's first-stage channels")
    ap.add_argument("--keep", type=Path, default=None, help="build the dataset and workspace here and keep them")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of each timed step to stderr")
    ap.add_argument(
        "--warm-up", action="store_true", help="open a tiny volume workspace first (one-off costs before the baseline)"
    )
    args = ap.parse_args(argv)

    from napari_medseg._headless import pump, rerun_under_xvfb

    status = rerun_under_xvfb()
    if status is not None:
        return status
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(args.keep or tmp), pump)


def run(args, base: Path, pump) -> int:
    import numpy as np
    from bench_volume_store import synthetic_ct, write_dataset

    from medseg.workspace import Workspace
    from napari_medseg._dataset_jobs import default_workspace

    shape = tuple(args.shape)
    prof = profiled(args.profile)
    t = time.perf_counter()
    image, labels = synthetic_ct(shape)
    data = base / "Dataset001_SynthCT"
    if not (data / "dataset.json").exists():
        write_dataset(data, image, labels)
    volume_bytes = image.nbytes
    del image, labels
    ws_root = default_workspace(data)
    shutil.rmtree(ws_root, ignore_errors=True)  # a kept dataset, a new workspace: every stroke is a change
    Workspace.create(ws_root, data, author="bench").close()
    print(f"dataset and workspace: {'x'.join(map(str, shape[::-1]))} int16 CT in {time.perf_counter() - t:.1f} s")

    import napari
    from _ticks import TickMonitor

    from napari_medseg._torch_guard import load_torch

    load_torch()
    import torch

    from napari_medseg import _sample_layers
    from napari_medseg._review_autosave import autosave_for
    from napari_medseg._session import LABELS_LAYER, PREDICTION_LAYER, session_for
    from napari_medseg._volume_layers import go_to_slice

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    _, work = viewer.window.add_plugin_dock_widget("napari-medseg", "Work area")
    tools, session = work.tools, session_for(viewer)
    draws = Draws(viewer)
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    pump(2)
    pump(120, lambda: pool.activeThreadCount() == 0)  # the docks' start-up reads (model names) are done
    if args.warm_up:  # the one-off costs of a process's first volume (imports, GL) paid on a 10x36x40 one
        from _volume_data import make_nnunet3d

        tiny = make_nnunet3d(base / "tiny", n_cases=1)
        shutil.rmtree(default_workspace(tiny), ignore_errors=True)
        tools["Dataset"].set_folder(tiny)
        tools["Dataset"].open_workspace()
        pump(120, lambda: session.sample_id is not None)
        pump(2)
        pump(120, lambda: pool.activeThreadCount() == 0)
    sampler = RssSampler()
    sampler.start()
    baseline = sampler.reset()
    rows: list[tuple[str, float, str, float | None, str]] = []  # (what, value, unit, target, how compared)
    phases: list[tuple[str, int, int]] = []  # (phase, resident at its end, its peak)

    def phase(name: str) -> None:
        phases.append((name, rss_bytes(), sampler.peak))
        sampler.reset()

    # ---------------------------------------------------------------- 1. open
    worker_s: list[float] = []
    worker_at: list[float] = []
    original_load = _sample_layers.load_sample

    def timed_load(ws, sid, *rest):
        t0 = time.perf_counter()
        worker_at.append(t0)
        with prof(f"load_sample (worker) of {sid}"):
            out = original_load(ws, sid, *rest)
        worker_s.append(time.perf_counter() - t0)
        return out

    _sample_layers.load_sample = timed_load
    original_apply = _sample_layers._SampleDisplay._apply

    def profiled_apply(self, loaded, request, *rest):
        with prof(f"the layers of {loaded.sample_id} made (main thread)"):
            original_apply(self, loaded, request, *rest)

    _sample_layers._SampleDisplay._apply = profiled_apply
    shown_at: list[float] = []
    session.sample_changed.connect(lambda sid: sid is not None and shown_at.append(time.perf_counter()))
    opened_at: list[float] = []
    session.workspace_changed.connect(lambda ws: ws is not None and opened_at.append(time.perf_counter()))
    t0 = time.perf_counter()
    with prof("open the workspace to the first drawn slice (main thread)"):
        tools["Dataset"].set_folder(ws_root)
        tools["Dataset"].open_workspace()
        pump(120, lambda: bool(shown_at) and draws.after(shown_at[-1]) is not None)
    first_draw = draws.after(shown_at[-1])
    open_cold, open_ws, cold_worker = first_draw - t0, opened_at[0] - t0, worker_s[0]
    layers_s = first_draw - worker_at[0] - cold_worker
    sid = session.sample_id
    labels_layer = viewer.layers[LABELS_LAYER]
    assert labels_layer.data.shape == shape, labels_layer.data.shape
    pump(1)
    phase("open the workspace and its sample")

    t0 = time.perf_counter()
    n = len(shown_at)
    with prof("show_sample again (main thread)"):
        _sample_layers.show_sample(viewer, sid)
        pump(60, lambda: len(shown_at) > n and draws.after(shown_at[-1]) is not None)
    open_warm = draws.after(shown_at[-1]) - t0
    first = "a volume opened before" if args.warm_up else "the process's first"
    rows.append((f"open: workspace to the first drawn slice ({first})", open_cold, "s", 2.0, "abs"))
    rows.append(("  of which opening the workspace (Dataset dock)", open_ws, "s", None, ""))
    rows.append(("  then waiting for a thread to read the sample", worker_at[0] - opened_at[0], "s", None, ""))
    rows.append(("  then the worker (image, stats, labels, draft)", cold_worker, "s", None, ""))
    rows.append(("  then the layers made and drawn", layers_s, "s", None, ""))
    rows.append(("open: the sample again to its first drawn slice", open_warm, "s", 2.0, "abs"))
    rows.append(("  of which the worker (image, stats, labels, draft)", worker_s[-1], "s", None, ""))
    pump(1)
    phase("show the sample again")

    # ---------------------------------------------------------------- 3a. scrolling
    ticks = TickMonitor().start()
    z_n = shape[0]
    for z in range(z_n):
        viewer.dims.set_current_step(0, z)
        pump(0.02)
    ticks.stop()
    gaps = sorted(ticks.gaps_ms())
    rows.append((f"scroll {z_n} slices, 20 ms apart: longest event-loop gap", gaps[-1] / 1000, "s", None, ""))
    rows.append(("  99th percentile gap", gaps[int(0.99 * (len(gaps) - 1))] / 1000, "s", None, ""))
    phase(f"scroll {z_n} slices")

    # ---------------------------------------------------------------- 5. saving
    review = tools["Review"]
    autosave = autosave_for(viewer)
    save_s, draft_sizes = [], []
    organ = [z for z in range(z_n) if np.asarray(labels_layer.data[z]).any()]
    for k in range(args.saves):
        z = organ[(k + 1) * len(organ) // (args.saves + 1)]
        go_to_slice(viewer, z)
        pump(0.1)
        labels_layer.brush_size = 20
        labels_layer.selected_label = 1 + k % 3
        labels_layer.paint((z, shape[1] // 3 + 9 * k, shape[2] // 3 + 7 * k), 1 + k % 3)
        drafted = pump(5, lambda: autosave._draft is None and autosave._drafted)  # as between strokes
        assert drafted, "no draft was written after the stroke"
        from medseg.workspace.drafts import draft_path

        draft_sizes.append(draft_path(autosave.workspace, sid).stat().st_size)
        t0 = time.perf_counter()
        with prof(f"Save correction of slice {z}"):
            review.save_button.click()
        save_s.append(time.perf_counter() - t0)
        assert "saved revision" in review.message.text(), review.message.text()
        pump(0.5)
    rows.append(("save a corrected slice (Save correction, median)", statistics.median(save_s), "s", 0.2, "abs"))
    rows.append(("  the slowest of them", max(save_s), "s", 0.2, "abs"))
    phase(f"{args.saves} strokes, drafts and saves")

    from medseg.workspace.drafts import discard_draft, write_draft, write_slice_draft

    ws = session.workspace
    vol = np.asarray(labels_layer.data)
    t0 = time.perf_counter()
    write_slice_draft(ws, sid, {organ[0]: vol[organ[0]]}, vol.shape, base_revision=ws.sample(sid).head_revision)
    slice_draft_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole = write_draft(ws, sid, vol, base_revision=ws.sample(sid).head_revision)
    whole_draft_s, whole_draft_bytes = time.perf_counter() - t0, whole.stat().st_size
    discard_draft(ws, sid)
    del vol
    rows.append(
        (f"draft after a stroke: 1 slice ({statistics.median(draft_sizes) / 1e3:.0f} KB)", slice_draft_s, "s", None, "")
    )
    rows.append(
        (f"  the whole label volume as before ({whole_draft_bytes / 1e6:.0f} MB)", whole_draft_s, "s", None, "")
    )
    sampler.reset()  # the whole-volume draft above is this benchmark's comparison, not the review's

    # ---------------------------------------------------------------- 4. live prediction
    ckpt = make_checkpoint(base / "plainunet25d", ws.classmap, args.base, shape[1:])
    predict = tools["Predict"]
    predict.settings.device.value = args.device
    predict.set_checkpoints([str(ckpt)])
    results: list = []  # (prediction, when it reached the main thread)
    on_result = predict.queue.on_result
    predict.queue.on_result = lambda request, prediction: (
        results.append((prediction, time.perf_counter())),
        on_result(request, prediction),
    )
    predict.request(force=True)  # builds the model (not timed)
    pump(120, lambda: not predict.queue.busy)
    assert results, predict.status.text()
    predict.live.setChecked(True)
    latencies = []
    for k in range(args.moves):
        z = organ[(2 * k + 1) * len(organ) // (2 * args.moves + 2)]
        done = predict.queue.counts.shown
        t0 = time.perf_counter()
        viewer.dims.set_current_step(0, z)
        assert pump(60, lambda d=done: predict.queue.counts.shown > d), (z, predict.status.text())
        arrived = results[-1][1]
        assert pump(5, lambda t=arrived: draws.after(t) is not None), "the prediction was never drawn"
        latencies.append(draws.after(arrived) - t0)
        pump(0.3)
    job_forward = [p.meta["time_forward_s"] for p, _ in results[-args.moves :]]
    job_total = [p.meta["time_s"] for p, _ in results[-args.moves :]]
    own = [lat / f for lat, f in zip(latencies, job_forward, strict=True)]  # each against its own forward pass

    predictor = predict.queue.model[1]
    from napari_medseg._predict_volume import INPUTS

    prepared = INPUTS.get(predictor, viewer.layers["medseg image"].data)
    x = predictor.device_batch(prepared.batch([organ[len(organ) // 2]]))
    forward = []
    with torch.inference_mode():
        for _ in range(max(5, args.moves)):
            t0 = time.perf_counter()
            predictor.forward_tiles(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            forward.append(time.perf_counter() - t0)
    fwd = statistics.median(forward)
    rows.append(("model forward on one slice, back to back (median)", fwd, "s", None, ""))
    rows.append(("slice change to the prediction drawn (median)", statistics.median(latencies), "s", 1.2, "fwd"))
    rows.append(("  the slowest of them", max(latencies), "s", 1.2, "fwd"))
    rows.append(("  the job alone (Predictor meta time_s, median)", statistics.median(job_total), "s", None, "fwd"))
    rows.append(("  its forward pass (meta time_forward_s, median)", statistics.median(job_forward), "s", None, "fwd"))
    rows.append(("slice change to drawn / that request's own forward pass", statistics.median(own), "x", 1.2, "ratio"))
    rows.append(("  the largest of them", max(own), "x", 1.2, "ratio"))

    ticks = TickMonitor().start()
    for z in range(0, z_n, 3):
        viewer.dims.set_current_step(0, z)
        pump(0.02)
    pump(60, lambda: not predict.queue.busy)
    ticks.stop()
    rows.append(
        (
            f"scroll {len(range(0, z_n, 3))} slices with live prediction: longest gap",
            ticks.max_gap_ms() / 1000,
            "s",
            None,
            "",
        )
    )
    pump(3)  # the Predict dock gives the forward passes' memory back once predictions pause (_memory)
    phase("live prediction (model built, slices predicted)")
    sampler.running = False
    prediction_layer = viewer.layers[PREDICTION_LAYER] if PREDICTION_LAYER in viewer.layers else None

    # ---------------------------------------------------------------- report
    mb = 1e6
    print(
        f"napari-medseg volume review: {'x'.join(map(str, shape[::-1]))} int16 CT ({volume_bytes / mb:.0f} MB), "
        f"labels {shape} {labels_layer.data.dtype}; PlainUNet base {args.base} 2.5-D on "
        f"{predictor.device} ({torch.get_num_threads()} threads); napari {napari.__version__}"
    )
    print(f"{'measured':<62}{'value':>10}  {'target':>14}{'ratio':>8}  ")
    for what, value, unit, target, how in rows:
        if how == "abs" and target is not None:
            tgt, ratio = f"<= {target:g} {unit}", value / target
        elif how == "fwd":
            tgt, ratio = (f"<= {target:g}x fwd" if target else "(vs fwd)"), value / fwd
        elif how == "ratio":
            tgt, ratio = f"<= {target:g}x", value
        else:
            tgt, ratio = "", None
        verdict = "" if target is None else ("met" if ratio <= (1.0 if how == "abs" else target) else "MISSED")
        if how == "ratio":
            print(f"{what:<62}{value:>9.3f}{unit:<1}  {tgt:>14}{'':>8}  {verdict}")
            continue
        print(f"{what:<62}{value:>9.3f}{unit:<1}  {tgt:>14}{'' if ratio is None else f'{ratio:>7.2f}x'}  {verdict}")
    print(
        f"{'resident memory over the napari baseline (' + f'{baseline / mb:.0f} MB' + ')':<50}"
        f"{'at the end':>12}{'peak':>10}{'peak x CT':>11}  (target <= 2x)"
    )
    review_peak = max(p for name, _, p in phases if not name.startswith("live"))
    for name, end, peak in phases:
        print(
            f"{name:<50}{(end - baseline) / mb:>9.0f} MB{(peak - baseline) / mb:>7.0f} MB"
            f"{(peak - baseline) / volume_bytes:>10.2f}x"
        )
    verdict = "met" if review_peak - baseline <= 2 * volume_bytes else "MISSED"
    print(
        f"{'reviewing (every phase but the prediction)':<50}{'':>12}{(review_peak - baseline) / mb:>7.0f} MB"
        f"{(review_peak - baseline) / volume_bytes:>10.2f}x  {verdict}"
    )
    if prediction_layer is not None:
        print(
            f"(the prediction layer holds {prediction_layer.data.nbytes / mb:.0f} MB of {prediction_layer.data.dtype})"
        )
    sys.stdout.flush()
    print("closing the viewer", file=sys.stderr, flush=True)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
