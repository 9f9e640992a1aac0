"""Workspaces of 100,000 samples: create, QC and review-queue open, with the peak resident memory of each.

    python benchmarks/bench_workspace_scale.py [--n 100000] [--dir /tmp/medseg-scale] [--quick]

Makes a synthetic dataset of N small frames (``images/1.png`` ... RGB, ``masks/1.png`` 0/255, in videos of
25 similar frames with a moving, growing blob as the label; a few frames carry planted label and image
problems, so QC finds something), once per N and size under ``--dir`` (reused by later runs). Then, each in
its own fresh Python process (so one stage's memory cannot hide in another's), ``Workspace.create``, ``qc``
over the workspace (every check, findings and scores stored) and ``review_queue`` on the opened workspace
with its first 20 items (the first open computes the order and stores it: printed as ``computed_s``; the
figure is the median of the 3 opens after it, which read the stored order). A child reports its wall
seconds, its peak resident memory (``ru_maxrss``) and its resident memory after the imports, before the work
(the interpreter, numpy, torch: what any medseg process pays). Targets are the issue's (19, item 4) for
N = 100,000; at a smaller ``--n`` the seconds are also scaled linearly to 100,000 for an estimate, the memory
is not (it should not grow with N).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDEO = 25  # frames per synthetic video
TARGETS = {"create": 60.0, "qc": 300.0, "queue": 0.5}  # seconds at 100,000 samples
MEMORY_TARGET_MB = 1024.0


# synthetic dataset --------------------------------------------------------------------------------------------
def _frame(i: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i`` (1-based) and its mask: a video's base colour and texture, a blob drifting and growing."""
    video, t = divmod(i - 1, VIDEO)
    rng = np.random.default_rng(video)
    base = rng.uniform(40, 200, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = (xx / w)[..., None] * rng.uniform(-40, 40, 3) + (yy / h)[..., None] * rng.uniform(-40, 40, 3)
    cx = w * (0.3 + 0.4 * rng.random()) + t * 0.3
    cy = h * (0.3 + 0.4 * rng.random()) + t * 0.2
    r = min(w, h) * (0.12 + 0.1 * rng.random()) * (1 + t / 100)
    inside = ((xx - cx) / (1.3 * r)) ** 2 + ((yy - cy) / r) ** 2 <= 1
    noise = np.random.default_rng(i).normal(0, 4, (h, w, 1))
    img = base + shade + noise + inside[..., None] * rng.uniform(30, 60, 3)
    mask = inside.astype(np.uint8) * 255
    kind = i % 997  # a few planted problems, spread over the dataset
    if kind == 1:
        mask[:] = 255  # an all-foreground mask
    elif kind == 2:
        mask[: h // 4, : w // 4] = 255  # a stray island
    elif kind == 3:
        img *= 0.05  # too dark
    elif kind == 4:
        mask[:] = 0  # a missed object
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _write_range(args) -> None:
    from PIL import Image

    root, start, stop, w, h = args
    for i in range(start, stop):
        img, mask = _frame(i, w, h)
        Image.fromarray(img).save(root / "images" / f"{i}.png", compress_level=1)
        Image.fromarray(mask).save(root / "masks" / f"{i}.png", compress_level=1)


def make_dataset(root: Path, n: int, w: int, h: int) -> float:
    """Write the dataset unless a finished one of this N and size is there; the seconds spent (0 if reused)."""
    from concurrent.futures import ProcessPoolExecutor

    done = root / "COMPLETE"
    if done.is_file() and done.read_text() == f"{n} {w}x{h}":
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    t = time.perf_counter()
    step = 2000
    chunks = [(root, s, min(s + step, n + 1), w, h) for s in range(1, n + 1, step)]
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(_write_range, chunks))
    done.write_text(f"{n} {w}x{h}")
    return time.perf_counter() - t


# one stage in a child process ---------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(stage: str, data: Path, ws_path: Path, workers: int | None, processes: int | None = None) -> dict:
    import medseg.qc.queue  # noqa: F401 - imports first, so that base RSS is what any medseg process holds
    from medseg.qc import qc
    from medseg.workspace import Workspace

    base = _rss_mb()
    cpu0 = time.process_time()
    t = time.perf_counter()
    out: dict = {}
    if stage == "create":
        from medseg.process_pool import default_workers

        with Workspace.create(ws_path, data) as ws:
            out["samples"] = len(ws.sample_ids())
        out["seconds"] = time.perf_counter() - t
        # the per-file work runs in worker processes: their CPU seconds and the largest one's peak RSS
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        out["cpu_s"] = {
            "main": round(own.ru_utime + own.ru_stime, 1),
            "workers": round(kids.ru_utime + kids.ru_stime, 1),
        }
        out["workers"] = default_workers()
        out["worker_peak_mb"] = round(kids.ru_maxrss / 1024)
    elif stage == "qc":
        with Workspace.open(ws_path, verify="none") as ws:
            report = qc(ws, workers=workers, processes=processes)
        out["seconds"] = time.perf_counter() - t
        # QC's worker processes (medseg.qc.pool): their CPU seconds and the largest one's peak resident memory
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["cpu_s"] = round(time.process_time() - cpu0 + kids.ru_utime + kids.ru_stime, 1)
        out["worker_peak_mb"] = round(kids.ru_maxrss / 1024)
        out["findings"] = len(report.findings)
        out["by_check"] = report.by_check
        # where the time went (seconds summed over the decoding threads), the costliest first
        out["slowest"] = {k: round(v, 2) for k, v in sorted(report.timings.items(), key=lambda kv: -kv[1])[:8]}
    elif stage == "queue":
        # the first open after QC computes the order over every score and finding and stores it; the next
        # ones read it (medseg.qc.queue_cache) until a write changes it: the figure is theirs, the first
        # open's is printed beside it. An open includes its first screen of items (20).
        runs = []
        with Workspace.open(ws_path, verify="none") as ws:
            ws.queue_cache_clear()
        for _ in range(4):
            t = time.perf_counter()
            with Workspace.open(ws_path, verify="none") as ws:
                items = medseg.qc.queue.review_queue(ws)
                shown = [i.sample_id for i in items[:20]]
            runs.append(time.perf_counter() - t)
        out["seconds"] = statistics.median(runs[1:])
        out["computed_s"] = round(runs[0], 3)
        out["items"] = len(items)
        out["first"] = shown[:5]
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    out["base_mb"] = base
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(
    stage: str, data: Path, ws_path: Path, workers: int | None, device: str, processes: int | None = None
) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--data", str(data), "--ws", str(ws_path)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if processes is not None:
        cmd += ["--processes", str(processes)]
    env = {**os.environ, "MEDSEG_DEVICE": device}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="samples (default 100000)")
    ap.add_argument("--size", default="64x48", help="frame width x height (default 64x48)")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "medseg-scale")
    ap.add_argument("--workers", type=int, default=None, help="QC decoding threads (default: QC's own)")
    ap.add_argument(
        "--processes", type=int, default=None, help="QC worker processes (default: QC's own; 1: none, serial)"
    )
    ap.add_argument("--quick", action="store_true", help="2,000 samples: a check that it runs, not a figure")
    ap.add_argument("--stages", default="create,qc,queue")
    ap.add_argument(
        "--device",
        default="cpu",
        help="accepted for symmetry with the other benchmarks: nothing "
        "here runs a model, every figure is CPU and disk work",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ws", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.data, args.ws, args.workers, args.processes)))
        return 0

    n = 2000 if args.quick else args.n
    w, h = (int(v) for v in args.size.lower().split("x"))
    data = args.dir / f"data-{n}-{w}x{h}"
    ws_path = args.dir / f"ws-{n}-{w}x{h}"
    made = make_dataset(data, n, w, h)
    print(
        f"dataset: {n} frames {w}x{h} at {data} ({f'made in {made:.0f} s' if made else 'reused'}); "
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    stages = args.stages.split(",")
    if "create" in stages:
        shutil.rmtree(ws_path, ignore_errors=True)
    results = {}
    for stage in stages:
        results[stage] = r = run_child(stage, data, ws_path, args.workers, args.device, args.processes)
        extra = {k: v for k, v in r.items() if k not in ("seconds", "base_mb", "peak_mb")}
        mem = f"peak RSS {r['peak_mb']:.0f} MB (after imports {r['base_mb']:.0f} MB)"
        print(f"{stage}: {r['seconds']:.2f} s, {mem} {extra}")

    scale = 100_000 / n
    print(f"\n{'':22}{'target (100k)':>14}{'measured':>12}{'at 100k':>10}  met")
    for stage in stages:
        r = results[stage]
        sec = r["seconds"] * scale
        est = "" if n == 100_000 else "~"
        name = {"create": "create s", "qc": "qc s", "queue": "queue open s (stored)"}[stage]
        print(
            f"{name:22}{TARGETS[stage]:>14.1f}{r['seconds']:>12.2f}{est + format(sec, '.1f'):>10}  "
            f"{'yes' if sec <= TARGETS[stage] else 'no'}{'' if n == 100_000 else ' (estimate)'}"
        )
    for stage in stages:
        r = results[stage]
        # create's workers count too: the main process's peak plus each worker's (an upper bound: forked
        # workers share their parent's pages)
        mb = r["peak_mb"] + r.get("workers", 0) * r.get("worker_peak_mb", 0)
        print(
            f"{stage + ' peak RSS MB':22}{MEMORY_TARGET_MB:>14.0f}{mb:>12.0f}{'':>10}  "
            f"{'yes' if mb <= MEMORY_TARGET_MB else 'no'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
