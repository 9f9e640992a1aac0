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
4. a burst: ``--burst`` sample changes 0.3 s apart, the newest request winning;
5. fine-tuning (unless ``--no-finetune``): a training process runs one epoch while
   the user keeps moving.

The Predict dock is the tool on screen (a user predicting live watches its line). Each timed move
also counts the main window's repaints (its ``UpdateRequest`` events: each composes the whole window
through GL, see ``_repaints.py``) and the time spent in them; ``--old-updates`` times the slice changes
a second time, in the same run, with the Predict dock's per-prediction updates as they were before they
were avoided (its status line relaid the window out, the model layers' thumbnails refreshed).
``--backend`` runs the dock's predictor on that backend (onnxruntime's session.run releases the GIL).

For every phase it prints the ticks, the largest gap, the 99th percentile, how many
gaps exceed 50 ms, and, for each such gap, where the GUI thread was: a sampler
thread looks at the GUI thread's stack whenever no tick has come for 40 ms and names
its innermost frame: ``ours`` when that frame is napari-medseg's own code, ``LIB
called from ours`` when a library (napari updating a layer) does the work our code
asked for, else the library alone. Gaps while the benchmark itself runs a forward
pass on the GUI thread are not counted. A final table holds each target of issue 19
item 2 next to its measured value: slice change to prediction drawn <= 1.2x the
forward time; longest event-loop gap during live prediction <= 1.5x the idle one.
``--profile`` prints a cProfile of the GUI thread over the live phases (which
napari work dominates). ``--quick``: 4 moves, a burst of 6, no fine-tuning.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
OURS = (str(REPO / "napari_medseg"), str(REPO / "src" / "medseg"))


class Sampler(threading.Thread):
    """Records the GUI thread's stack whenever the tick monitor has been silent for ``stall_ms``."""

    def __init__(self, ticks, stall_ms: float = 40.0):
        super().__init__(daemon=True)
        self.ticks, self.stall = ticks, stall_ms / 1000
        self.main_id = threading.main_thread().ident
        self.samples: list[tuple[float, str]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            time.sleep(0.01)
            times = self.ticks.times
            if times and time.perf_counter() - times[-1] > self.stall:
                stack = main_stack(self.main_id)
                if stack:
                    self.samples.append((time.perf_counter(), where(stack)))


def main_stack(thread_id: int) -> list[tuple[str, int, str]]:
    """(file, line, function) of a thread's frames, outermost first, holding its frames for microseconds.

    A frame object kept by another thread keeps that frame's locals alive after the function returns:
    a QPainter made in a paintEvent then stays active past the paint and is destroyed later from this
    thread, and Qt crashes ("QPaintDevice: Cannot destroy paint device that is being painted"; seen
    in about one run in four when this sampler used ``traceback.extract_stack``, which reads source
    files and so lets the GUI thread run on while it holds the frames). So: no file reading, plain
    attribute reads, and every reference dropped at once.
    """
    frame = sys._current_frames().get(thread_id)
    out = []
    while frame is not None:
        out.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    del frame
    return out[::-1]


def where(raw: list[tuple[str, int, str]]) -> str:
    # the benchmark's own event pumping is the driver, not the product: it never counts as ours
    stack = [
        traceback.FrameSummary(f, line, name, lookup_line=False)
        for f, line, name in raw
        if not f.endswith("_headless.py")
    ]
    if not stack:
        return "Qt event loop (inside processEvents: drawing, or waiting for the GIL)"
    inner = stack[-1]
    parts = Path(inner.filename).parts
    lib = parts[parts.index("site-packages") + 1] if "site-packages" in parts else Path(inner.filename).name
    if inner.filename.startswith(OURS):
        return f"ours: {Path(inner.filename).name}:{inner.lineno} {inner.name}"
    for f in reversed(stack):
        if f.filename.startswith(OURS):  # a library doing the work, asked by our code
            return f"{lib} called from ours: {Path(f.filename).name}:{f.lineno} {f.name}"
    return f"{lib}: {Path(inner.filename).name}:{inner.lineno} {inner.name}"


def phase_report(name: str, ticks, sampler, t0: float, t1: float, skip=()) -> dict:
    """The gaps between ticks from ``t0`` to ``t1``, leaving out those overlapping a ``skip`` interval
    (the benchmark's own forward passes on the GUI thread)."""
    times = [t for t in ticks.times if t0 <= t <= t1]
    pairs = [(a, b) for a, b in pairwise(times) if not any(a < e and s < b for s, e in skip)]
    gaps = [1000 * (b - a) for a, b in pairs]
    long = [(a, b) for a, b in pairs if b - a > 0.05]
    blamed = Counter()
    for a, b in long:
        inside = [w for t, w in sampler.samples if a <= t <= b]
        blamed[Counter(inside).most_common(1)[0][0] if inside else "(no sample)"] += 1
    p99 = statistics.quantiles(gaps, n=100)[98] if len(gaps) >= 100 else max(gaps, default=0)
    return {
        "phase": name,
        "ticks": len(times),
        "max": max(gaps, default=0.0),
        "p99": p99,
        "over50": len(long),
        "ours_over50": sum(n for w, n in blamed.items() if w.startswith("ours")),
        "via_ours_over50": sum(n for w, n in blamed.items() if " called from ours" in w),
        "blamed": blamed,
    }


class Draws:
    """Times of the canvas's draw events (vispy's draw event: the frame was painted)."""

    def __init__(self, viewer) -> None:
        self.times: list[float] = []
        viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(
            lambda _e: self.times.append(time.perf_counter())
        )

    def after(self, t: float) -> float | None:
        return next((d for d in self.times if d >= t), None)


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
    ap.add_argument("--old-updates", action="store_true", help="slice changes again with the old dock updates")
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
    from _repaints import Repaints, restore_old_updates
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
    demo = make_demo_dataset(tmp / "demo", sequences=4, frames=4, shape=tuple(args.size))
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
    draws = Draws(viewer)
    predict = tools["Predict"]
    pump(1)  # the docks are arranged after the first events
    work.show_tool("Predict")
    repaints = Repaints(viewer.window._qt_window)
    predict.settings.device.value = next(k for k, v in DEVICES.items() if v == args.device)
    shown = Shown(predict)
    pump(2)

    ticks = TickMonitor().start()
    sampler = Sampler(ticks)
    sampler.start()
    rows, gui_forwards = [], []
    prof = cProfile.Profile() if args.profile else None

    t0 = time.perf_counter()
    pump(3)
    rows.append(phase_report("idle", ticks, sampler, t0, time.perf_counter()))

    def forward_on_gui():
        """The predictor's forward pass on the frame on screen, as the job prepares it."""
        predictor = predict.queue.model[1]
        x, _ = predictor._inputs(on_screen())
        with torch.inference_mode():
            t = time.perf_counter()
            predictor.forward_tiles(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t

    def on_screen():
        from napari_medseg._predict_layers import plane_of, snapshot, target_image

        image = target_image(viewer)
        return snapshot(image, plane_of(image, viewer)).image()

    # ---- slice changes on a stack of frames (no workspace yet)
    viewer.add_image(frames, name="frames", rgb=frames.ndim == 4)
    predict.set_checkpoints([str(ckpt)])
    predict.request(force=True)  # builds the model (not timed)
    pump(120, lambda: not predict.queue.busy and shown.rows)
    if not shown.rows:
        raise RuntimeError(f"the model did not predict: {predict.status.text()}")
    predict.live.setChecked(True)
    if prof is not None:
        prof.enable()
    t_live = time.perf_counter()
    slices = timed_moves(
        lambda k: viewer.dims.set_current_step(0, (k + 1) % len(frames)),
        args.moves,
        predict,
        shown,
        draws,
        forward_on_gui,
        pump,
        gui_forwards,
        repaints,
    )
    t_slices = time.perf_counter()
    if prof is not None:
        prof.disable()

    # ---- sample changes in a workspace
    predict.live.setChecked(False)
    viewer.layers.remove("frames")
    tools["Dataset"].set_folder(demo.root)
    tools["Dataset"].open_workspace()
    pump(120, lambda: session.sample_id is not None)
    pump(120, lambda: not predict.queue.busy)
    predict.live.setChecked(True)
    pump(120, lambda: not predict.queue.busy)
    pump(1)
    if prof is not None:
        prof.enable()
    t_samples0 = time.perf_counter()
    samples = timed_moves(
        lambda k: tools["Review"].next_sample(),
        args.moves,
        predict,
        shown,
        draws,
        forward_on_gui,
        pump,
        gui_forwards,
        repaints,
    )
    t_burst0 = time.perf_counter()
    for _ in range(args.burst):
        tools["Review"].next_sample()
        pump(0.3)
    pump(120, lambda: not predict.queue.busy)
    t_live_end = time.perf_counter()
    if prof is not None:
        prof.disable()
    rows.append(phase_report("slice changes", ticks, sampler, t_live, t_slices, gui_forwards))
    rows.append(phase_report("sample changes", ticks, sampler, t_samples0, t_burst0, gui_forwards))
    rows.append(phase_report("burst 0.3 s", ticks, sampler, t_burst0, t_live_end, gui_forwards))
    live_rows = rows[1:]
    counts = predict.queue.counts
    moves = [("slice change", slices), ("sample change", samples)]
    if args.old_updates:  # the same sample changes with the dock's old per-prediction updates
        restore_old_updates(predict)
        old = timed_moves(
            lambda k: tools["Review"].next_sample(),
            args.moves,
            predict,
            shown,
            draws,
            forward_on_gui,
            pump,
            gui_forwards,
            repaints,
        )
        moves.append(("sample, old", old))

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
        rows.append(phase_report("fine-tuning", ticks, sampler, t0, time.perf_counter()))
    ticks.stop()
    sampler.running = False

    device = predict.queue.model[1].device if predict.queue.model else args.device
    backends = ", ".join(predict.queue.model[1].backends) if predict.queue.model else "?"
    repaints.stop()
    print(
        f"napari-medseg GUI responsiveness: {args.arch}-{args.encoder} on {args.size[0]}x{args.size[1]} frames, "
        f"device {device}, backend {backends}, torch threads {torch.get_num_threads()}; "
        f"{counts.shown} predictions shown, "
        f"{counts.discarded} stale ones dropped"
        + ("" if args.no_finetune else f"; fine-tune outcome {ft.outcome.kind if ft.outcome else 'none'}")
    )
    idle = rows[0]
    print(
        f"{'phase':<16} {'ticks':>6} {'max gap ms':>10} {'p99 ms':>7} {'>50 ms':>6} {'ours >50':>8} "
        f"{'lib via ours':>12} {'max vs idle':>11}"
    )
    for r in rows:
        print(
            f"{r['phase']:<16} {r['ticks']:>6} {r['max']:>10.1f} {r['p99']:>7.1f} {r['over50']:>6} "
            f"{r['ours_over50']:>8} {r['via_ours_over50']:>12} {r['max'] / max(idle['max'], 1e-9):>10.2f}x"
        )
    for r in rows:
        blamed = r["blamed"].most_common()
        # every gap that involves our code, then the largest causes elsewhere
        mine = [b for b in blamed if "ours" in b[0]]
        for w, n in mine + [b for b in blamed if b not in mine][:8]:
            print(f"  {r['phase']}: {n} gap(s) > 50 ms in {w}")

    med = statistics.median
    print(f"\nper move (median of {args.moves}; ms)")
    print(
        f"{'move':<15} {'to drawn':>9} {'job':>7} {'its fwd':>8} {'GUI fwd':>8} {'show':>6} "
        f"{'worst/own':>9} {'/GUI fwd':>9} {'repaints':>8} {'in them':>7}"
    )
    for name, m in moves:
        lat, own, gui, show, job, n_rep, rep_s = zip(*m, strict=True)
        worst = max(a / b for a, b in zip(lat, own, strict=True))
        per_gui = med([a / b for a, b in zip(lat, gui, strict=True)])
        print(
            f"{name:<15} {1000 * med(lat):>9.1f} {1000 * med(job):>7.1f} {1000 * med(own):>8.1f} "
            f"{1000 * med(gui):>8.1f} {1000 * med(show):>6.1f} {worst:>8.2f}x {per_gui:>8.2f}x "
            f"{sum(n_rep) / len(n_rep):>8.2f} {1000 * med(rep_s):>7.1f}"
        )
    print("  (repaints: the main window's per move, to 0.1 s after the drawing; in them: ms, median)")
    lat, own, gui, *_ = zip(*slices, strict=True)
    s_lat, s_own, s_gui, *_ = zip(*samples, strict=True)
    live_max = max(r["max"] for r in live_rows)
    targets = [
        ("slice change to drawn / that request's forward", med([a / b for a, b in zip(lat, own)]), 1.2),
        ("slice change to drawn / GUI-thread forward", med([a / b for a, b in zip(lat, gui)]), 1.2),
        ("sample change to drawn / that request's forward", med([a / b for a, b in zip(s_lat, s_own)]), 1.2),
        ("sample change to drawn / GUI-thread forward", med([a / b for a, b in zip(s_lat, s_gui)]), 1.2),
        ("longest gap while live / idle longest gap", live_max / max(idle["max"], 1e-9), 1.5),
    ]
    print(f"\n{'issue 19 item 2 target':<50} {'measured':>9} {'target':>7} met")
    for name, value, target in targets:
        print(f"{name:<50} {value:>8.2f}x {'<= ' + str(target) + 'x':>7} {'yes' if value <= target else 'no'}")
    print(f"  (idle longest gap {idle['max']:.1f} ms, live longest gap {live_max:.1f} ms)")
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
        print("--- cProfile of the GUI thread over the live phases (cumulative)", file=sys.stderr)
        print("\n".join(out.getvalue().splitlines()[4:]), file=sys.stderr)
    sys.stdout.flush()  # the figures are out before the teardown (see the note at viewer.close)
    print("closing the viewer", file=sys.stderr, flush=True)
    viewer.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
