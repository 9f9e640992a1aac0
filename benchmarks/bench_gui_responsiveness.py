"""Does the viewer freeze, and how soon is a prediction on screen? Live prediction in the real napari window.

    python benchmarks/bench_gui_responsiveness.py [--size 288 384] [--arch Unet --encoder resnet34]
                                                   [--moves 8] [--burst 12] [--no-finetune] [--quick]
                                                   [--device cpu|cuda|auto] [--backend auto|torch|onnxruntime]
                                                   [--old-updates] [--profile]

Runs napari (under Xvfb when there is no display) with the napari-medseg work area
and a Unet (untrained: the same cost as a trained one) in the Predict dock, live:

1. idle: nothing to do, the gaps between ticks of a 10 ms QTimer (the baseline of
   this machine and this napari, in the same run);
2. slice changes: a stack of demo frames, the slider moved ``--moves`` times, each
   time until the prediction of the new frame is drawn (the canvas's draw event after
   the prediction layer holds it); each latency against that request's own forward
   pass (the Predictor's ``time_forward_s``) and against a forward pass of the same
   predictor on the same frame timed right after it on the GUI thread (interleaved,
   so the machine's load is the same for both);
3. sample changes: the workspace's Next sample, timed the same way (it also reads
   the sample's image and label, and replaces the layers' data);
   each kind of move is also made ``--moves`` times with live prediction off (phases
   "slices, not live" and "samples, not live"): napari's own slicing and drawing of
   the same moves, which no plugin can avoid (under Xvfb each composition of the
   window is software GL);
4. a burst: ``--burst`` sample changes 0.3 s apart, the newest request winning;
5. fine-tuning (unless ``--no-finetune``): a training process runs one epoch while
   the user keeps moving.

The Predict dock is the tool on screen (a user predicting live watches its line). Each timed move
also counts the main window's repaints (its ``UpdateRequest`` events: each composes the whole window
through GL, see ``_repaints.py``) and the time spent in them; ``--old-updates`` times each kind of move
a second time, in the same run, with the Predict dock's per-prediction updates as they were before they
were avoided (``_repaints.restore_old_updates``): rows "slice, old" and "sample, old".
``--backend`` runs the dock's predictor on that backend (onnxruntime's session.run releases the GIL).

For every phase it prints the ticks, the largest gap, the 99th percentile, how many gaps exceed 50 ms,
and, for each such gap, where the GUI thread was (``_gui_gaps.py``: ``ours``, ``LIB called from ours``
or the library alone). Gaps while the benchmark itself runs a forward pass on the GUI thread are not
counted. A final table holds each target of issue 19 item 2 next to its measured value
(``_gui_report.py``): slice change to prediction drawn <= 1.2x the forward time; longest event-loop gap
during live prediction <= 1.5x the idle one. ``--profile`` prints a cProfile of the GUI thread over the
live phases (which napari work dominates). ``--quick``: 4 moves, a burst of 6, no fine-tuning.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


class Shown:
    """Wraps the Predict dock's result handler: when each prediction reached the GUI thread, when its layers
    held it, and the prediction itself."""

    def __init__(self, predict) -> None:
        self.rows: list[tuple[object, float, float]] = []  # (prediction, arrived, layers updated)
        on_result = predict.queue.on_result

        def wrapped(request, prediction):
            arrived = time.perf_counter()
            on_result(request, prediction)
            self.rows.append((prediction, arrived, time.perf_counter()))

        predict.queue.on_result = wrapped


def timed_moves(move, n, predict, shown, draws, forward_on_gui, pump, gui_forwards, repaints):
    """``n`` moves (``move(k)``), each waited for until its prediction is drawn; per move (latency, that
    request's forward, the GUI-thread forward right after, main-thread time in the result handler, the job's
    time, the main window's repaints and their seconds until 0.1 s after the drawing)."""
    out = []
    for k in range(n):
        done = len(shown.rows)
        t0 = time.perf_counter()
        move(k)
        if not pump(120, lambda d=done: len(shown.rows) > d and not predict.queue.busy):
            raise RuntimeError(f"move {k}: no prediction shown ({predict.status.text()})")
        prediction, arrived, updated = shown.rows[-1]
        if not pump(5, lambda t=updated: draws.after(t) is not None):
            raise RuntimeError(f"move {k}: the prediction was never drawn")
        drawn = draws.after(updated)
        pump(0.1)
        n_repaints, repaint_s = repaints.between(t0, time.perf_counter())
        s = time.perf_counter()
        fwd = forward_on_gui()
        gui_forwards.append((s, time.perf_counter()))
        out.append(
            (
                drawn - t0,
                prediction.meta["time_forward_s"],
                fwd,
                updated - arrived,
                prediction.meta["time_s"],
                n_repaints,
                repaint_s,
            )
        )
        pump(0.2)
    return out


class Phases:
    """The timed phases of one run, sharing the window, the probes and the record of GUI-thread forwards."""

    def __init__(self, args, predict, viewer, ticks, sampler, prof) -> None:
        from _repaints import Repaints
        from _viewer_probes import Draws

        self.args, self.predict, self.viewer = args, predict, viewer
        self.ticks, self.sampler, self.prof = ticks, sampler, prof
        self.draws, self.shown = Draws(viewer), Shown(predict)
        self.repaints = Repaints(viewer.window._qt_window)
        self.gui_forwards: list[tuple[float, float]] = []  # left out of the gaps: the benchmark's own work
        self.rows: list[dict] = []  # gaps per phase
        self.moves: list[tuple[str, list]] = []  # timed moves per phase
        self.parts: list[tuple[str, Counter]] = []  # per phase, what its repaints painted

    def gaps(self, name: str, t0: float, t1: float) -> None:
        from _gui_gaps import phase_report

        self.rows.append(phase_report(name, self.ticks, self.sampler, t0, t1, self.gui_forwards))

    def moved(self, name: str, move, gaps: str | None = None) -> tuple[float, float]:
        """``--moves`` timed moves (``move(k)``), profiled with ``--profile``; their gaps as phase ``gaps``."""
        from napari_medseg._headless import pump

        if self.prof is not None:
            self.prof.enable()
        t0 = time.perf_counter()
        rows = timed_moves(
            move,
            self.args.moves,
            self.predict,
            self.shown,
            self.draws,
            self.forward_on_gui,
            pump,
            self.gui_forwards,
            self.repaints,
        )
        t1 = time.perf_counter()
        if self.prof is not None:
            self.prof.disable()
        self.moves.append((name, rows))
        self.parts.append((name, self.repaints.parts_counted(t0, t1)))
        if gaps is not None:
            self.gaps(gaps, t0, t1)
        return t0, t1

    def still(self, name: str, move) -> None:
        """``--moves`` moves with live prediction off, each waited for until the canvas drew it: napari's own
        cost of the same moves (its slicing and drawing), the gaps as phase ``name``."""
        from napari_medseg._headless import pump

        t0 = time.perf_counter()
        for k in range(self.args.moves):
            t = time.perf_counter()
            move(k)
            if not pump(5, lambda t=t: self.draws.after(t) is not None):
                raise RuntimeError(f"{name}: move {k} was never drawn")
            pump(0.3)
        self.gaps(name, t0, time.perf_counter())

    def forward_on_gui(self) -> float:
        """The predictor's forward pass on the frame on screen, as the job prepares it."""
        import torch

        from napari_medseg._predict_layers import plane_of, snapshot, target_image

        predictor = self.predict.queue.model[1]
        image = target_image(self.viewer)
        x, _ = predictor._inputs(snapshot(image, plane_of(image, self.viewer)).image())
        with torch.inference_mode():
            t = time.perf_counter()
            predictor.forward_tiles(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t

    def with_old_updates(self, name: str, move) -> None:
        """The same moves again with the Predict dock's updates as they were (``--old-updates``)."""
        from _repaints import restore_old_updates

        undo = restore_old_updates(self.predict)
        self.moved(f"{name}, old", move, gaps=f"{name}s, old")
        undo()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(288, 384))
    ap.add_argument("--arch", default="Unet")
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--moves", type=int, default=8, help="slice changes and sample changes, each timed")
    ap.add_argument("--burst", type=int, default=12, help="sample changes 0.3 s apart")
    ap.add_argument("--train-size", type=int, default=128)
    ap.add_argument("--no-finetune", action="store_true")
    ap.add_argument("--quick", action="store_true", help="4 moves, a burst of 6, no fine-tuning")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--backend", default=None, choices=("auto", "torch", "onnxruntime"), help="the dock's default")
    ap.add_argument("--old-updates", action="store_true", help="each kind of move again with the old dock updates")
    ap.add_argument("--profile", action="store_true", help="cProfile the GUI thread over the live phases")
    args = ap.parse_args()
    if args.quick:
        args.moves, args.burst, args.no_finetune = 4, 6, True
    from napari_medseg._headless import pump, rerun_under_xvfb

    status = rerun_under_xvfb()
    if status is not None:
        return status
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    import napari
    import numpy as np
    from _gui_gaps import Sampler, phase_report
    from _gui_report import print_gaps, print_moves, print_parts, print_targets
    from _ticks import TickMonitor

    from napari_medseg._torch_guard import load_torch

    load_torch()  # torch without triton, as the plugin loads it (see napari_medseg/_torch_guard.py)
    import torch

    if args.backend is not None:  # the dock builds its Predictor without naming one: that default
        from medseg.inference import predictor as predictor_module

        init = predictor_module.Predictor.__init__

        def with_backend(self, *a, **kw):
            init(self, *a, **{**kw, "backend": args.backend})

        predictor_module.Predictor.__init__ = with_backend

    from medseg.datasets.classmap import ClassMap
    from medseg.datasets.demo import make_demo_dataset
    from medseg.io import load
    from medseg.models import create_model, save_checkpoint
    from medseg.models.spec import ModelSpec, Preprocessing
    from napari_medseg._predict_model import DEVICES
    from napari_medseg._session import session_for

    tmp = Path(tempfile.mkdtemp(prefix="medseg-gui-bench-"))
    # every sample change must reach a sample not yet shown (at the last one Next has nowhere to go and
    # predicts nothing and the timed move waits in vain): timed moves, the burst, the old-update moves, a margin
    moves = args.moves * (3 if args.old_updates else 2) + args.burst + 4
    demo = make_demo_dataset(tmp / "demo", sequences=max(4, -(-moves // 4)), frames=4, shape=tuple(args.size))
    frames = np.stack([load(p).array for p in sorted((demo.root / "images").glob("*.png"))[:8]])
    spec = ModelSpec(arch=args.arch, encoder=args.encoder, classes=1, task="binary")
    ckpt = save_checkpoint(
        tmp / "model",
        create_model(spec).eval(),
        spec,
        ClassMap.binary("polyp"),
        Preprocessing(channels=3, divisible_by=32),
    )
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    _, work = viewer.window.add_plugin_dock_widget("napari-medseg", "Work area")
    tools, session = work.tools, session_for(viewer)
    predict = tools["Predict"]
    pump(1)  # the docks are arranged after the first events
    work.show_tool("Predict")
    predict.settings.device.value = next(k for k, v in DEVICES.items() if v == args.device)
    ticks = TickMonitor()
    sampler = Sampler(ticks)
    run = Phases(args, predict, viewer, ticks, sampler, cProfile.Profile() if args.profile else None)
    pump(2)

    ticks.start()
    sampler.start()
    t0 = time.perf_counter()
    pump(3)
    run.gaps("idle", t0, time.perf_counter())

    # ---- slice changes on a stack of frames (no workspace yet)
    viewer.add_image(frames, name="frames", rgb=frames.ndim == 4)
    predict.set_checkpoints([str(ckpt)])
    predict.request(force=True)  # builds the model (not timed)
    pump(120, lambda: not predict.queue.busy and run.shown.rows)
    if not run.shown.rows:
        raise RuntimeError(f"the model did not predict: {predict.status.text()}")
    predict.live.setChecked(True)
    slide = lambda k: viewer.dims.set_current_step(0, (k + 1) % len(frames))  # noqa: E731
    run.moved("slice change", slide, gaps="slice changes")
    predict.live.setChecked(False)
    run.still("slices, not live", slide)
    predict.live.setChecked(True)
    pump(120, lambda: not predict.queue.busy)
    if args.old_updates:
        run.with_old_updates("slice", slide)

    # ---- sample changes in a workspace
    predict.live.setChecked(False)
    viewer.layers.remove("frames")
    tools["Dataset"].set_folder(demo.root)
    tools["Dataset"].open_workspace()
    pump(120, lambda: session.sample_id is not None)
    # the workspace's own jobs (the Overview's counts) end first: napari's activity spinner in the status
    # bar repaints the whole window at each of its frames while one runs, which is no cost of predicting
    pump(300, lambda: not [j for j in session.jobs.running() if not j.name.startswith("Prediction")])
    pump(120, lambda: not predict.queue.busy)
    next_sample = lambda k: tools["Review"].next_sample()  # noqa: E731
    run.still("samples, not live", next_sample)
    predict.live.setChecked(True)
    pump(120, lambda: not predict.queue.busy)
    pump(1)
    run.moved("sample change", next_sample, gaps="sample changes")
    if run.prof is not None:
        run.prof.enable()
    t_burst0 = time.perf_counter()
    for _ in range(args.burst):
        tools["Review"].next_sample()
        pump(0.3)
    pump(120, lambda: not predict.queue.busy)
    if run.prof is not None:
        run.prof.disable()
    run.gaps("burst 0.3 s", t_burst0, time.perf_counter())
    counts = predict.queue.counts
    if args.old_updates:
        run.with_old_updates("sample", next_sample)

    ft = tools["Fine-tune"]
    if not args.no_finetune:
        f = ft.form
        pump(120, lambda: "resnet18" in f.encoder.choices)  # the model names are read in a worker
        f.arch.value, f.encoder.value, f.epochs.value, f.batch_size.value = "Unet", "resnet18", 1, 4
        f.image_size.value, f.augment.value, f.device.value, f.out.value = args.train_size, "none", "CPU", tmp / "runs"
        predict.live.setChecked(False)
        t0 = time.perf_counter()
        ft.start()
        while ft.running:
            tools["Review"].next_sample()
            pump(0.5)
        run.rows.append(phase_report("fine-tuning", ticks, sampler, t0, time.perf_counter()))
    ticks.stop()
    sampler.running = False
    run.repaints.stop()

    device = predict.queue.model[1].device if predict.queue.model else args.device
    backends = ", ".join(predict.queue.model[1].backends) if predict.queue.model else "?"
    print(
        f"napari-medseg GUI responsiveness: {args.arch}-{args.encoder} on {args.size[0]}x{args.size[1]} frames, "
        f"device {device}, backend {backends}, torch threads {torch.get_num_threads()}; "
        f"{counts.shown} predictions shown, "
        f"{counts.discarded} stale ones dropped"
        + ("" if args.no_finetune else f"; fine-tune outcome {ft.outcome.kind if ft.outcome else 'none'}")
    )
    print_gaps(run.rows)
    print_moves(run.moves)
    print_parts(run.parts, args.moves)
    moves = dict(run.moves)
    rows = {r["phase"]: r["max"] for r in run.rows}
    live_max = max(rows[p] for p in ("slice changes", "sample changes", "burst 0.3 s"))
    still_max = max(rows["slices, not live"], rows["samples, not live"])
    print_targets(moves["slice change"], moves["sample change"], rows["idle"], live_max, still_max)
    if run.prof is not None:
        out = io.StringIO()
        pstats.Stats(run.prof, stream=out).sort_stats("cumulative").print_stats(40)
        print("--- cProfile of the GUI thread over the live phases (cumulative)", file=sys.stderr)
        print("\n".join(out.getvalue().splitlines()[4:]), file=sys.stderr)
    sys.stdout.flush()  # the figures are out before the teardown (see the note at viewer.close)
    print("closing the viewer", file=sys.stderr, flush=True)
    viewer.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
