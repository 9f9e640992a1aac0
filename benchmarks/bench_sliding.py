"""Sliding window: medseg's against MONAI's ``sliding_window_inference``, at equal output, side by side.

    python benchmarks/bench_sliding.py [--size 1024] [--tile 512] [--overlap 0.25] [--mode gaussian|constant]
                                       [--batch 4] [--batches 1 2 4 8] [--threads 1 2] [--repeats 5]
                                       [--device cpu|cuda] [--precision fp32|bf16] [--quick]

Issue 19's target: medseg's sliding window takes <= 0.9x the time of MONAI's
``sliding_window_inference`` at equal output (max |difference| <= 1e-4). The
network is Unet(resnet34) with random weights (speed does not depend on them),
saved as a checkpoint; the input one smooth RGB image of ``--size`` px, tiles of
``--tile`` px, overlap and blending as given (MONAI's placement: border padding
off, so both cover the image with the same windows).

Contenders, taking turns within each round (so load from other processes hits
them alike; each round starts with the next one), medians over ``--repeats``
rounds, at each ``--threads`` count:

* medseg: the Predictor over the checkpoint (its backend, BatchNorm folded, tile
  batches of ``--batch``, balanced), through ``Predictor.blend``, the exact path
  of ``predict``;
* MONAI at its default ``sw_batch_size=1`` and at ``--batch``, over the eager
  model as a MONAI user runs it (``torch.inference_mode``, sigmoid);
* the window machinery alone, both with the same network function: MONAI over
  the Predictor's ``forward_tiles``, and medseg's ``sliding_window_inference``
  over the eager model (these say how much of the difference is the windows'
  handling and how much the forward);
* ``--batches``: the Predictor at other tile batches (how the default was chosen).

``--quick`` (development): 512 px image, 256 px tiles, 3 rounds, one thread
count. ``--device cuda`` runs every contender on the GPU (``--precision bf16``
runs the eager model under bf16 autocast too; bf16 outputs differ by more than
1e-4, so the equal-output comparison is the default fp32). The Predictor's
output differs from the eager model's by its backend's rounding (onnxruntime's
or the BatchNorm-folded convolutions'); the windows alone, with the same
network function, differ from MONAI's by about 1e-7.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _bench_inputs import IMAGENET, photo_like
from _bench_inputs import sync as _sync

TARGET_RATIO = 0.9
TOLERANCE = 1e-4


class Rounds:
    """Contenders timed in turns; each returns the blended probabilities (kept from its warm-up run)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.fns: dict[str, Callable[[], torch.Tensor]] = {}
        self.times: dict[str, list[float]] = {}
        self.outputs: dict[str, torch.Tensor] = {}

    def add(self, name: str, fn: Callable[[], torch.Tensor]) -> None:
        out = fn()  # warm-up (sessions, caches, cuDNN autotuning), and the output compared
        _sync(self.device)
        self.outputs[name] = out.detach().float().cpu()
        self.fns[name], self.times[name] = fn, []

    def run(self, repeats: int, label: str) -> None:
        names = list(self.fns)
        for r in range(repeats):
            # each round starts one contender later, so none always runs right after the same neighbour
            for name in names[r % len(names) :] + names[: r % len(names)]:
                fn = self.fns[name]
                _sync(self.device)
                t0 = time.perf_counter()
                fn()
                _sync(self.device)
                self.times[name].append(time.perf_counter() - t0)
            print(f"  {label}: round {r + 1}/{repeats} done", file=sys.stderr)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


def _checkpoint(args: argparse.Namespace, folder: Path):
    import segmentation_models_pytorch as smp

    from medseg.datasets.classmap import ClassMap
    from medseg.models import save_checkpoint
    from medseg.models.spec import ModelSpec, Preprocessing

    torch.manual_seed(0)
    model = smp.Unet("resnet34", encoder_weights=None, classes=1).eval()
    spec = ModelSpec(arch="Unet", encoder="resnet34", classes=1)
    prep = Preprocessing(channels=3, input_size=[args.tile, args.tile], divisible_by=32, **IMAGENET)
    return model, save_checkpoint(folder / "unet", copy.deepcopy(model), spec, ClassMap.binary(), prep)


def _drain(gen) -> torch.Tensor:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def measure(args: argparse.Namespace, threads: int, device: torch.device, model, ckpt: Path) -> dict:
    from monai.inferers import sliding_window_inference as monai_swi

    from medseg.inference import Predictor, plan_tiles, sliding_window_inference
    from medseg.io.normalise import to_model_input

    torch.set_num_threads(threads)
    bf16 = args.precision == "bf16"
    eager = copy.deepcopy(model).to(device)
    x = torch.from_numpy(to_model_input(photo_like(args.size, seed=1), 3, None, **IMAGENET))[None].to(device)
    hw = tuple(x.shape[-2:])
    tile = (args.tile, args.tile)

    def net(t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return torch.sigmoid(eager(t).float())

    predictors = {}
    for batch in dict.fromkeys([args.batch, *args.batches]):
        predictors[batch] = Predictor(
            ckpt,
            device=device,
            precision=args.precision,
            tile_size=args.tile,
            overlap=args.overlap,
            blend=args.mode,
            batch_size=batch,
            pad_border=False,
        )
    ours = predictors[args.batch]
    backend = getattr(ours, "backends", ["torch"])[0]

    def medseg(p) -> Callable[[], torch.Tensor]:
        return lambda: _drain(p.blend(x, hw, [0.0]))

    names = {
        "ours": f"medseg Predictor sliding window ({backend}, tile batch {args.batch})",
        "monai1": "MONAI sliding_window_inference, sw_batch_size=1 (its default), eager model",
        "monaiB": f"MONAI sliding_window_inference, sw_batch_size={args.batch}, eager model",
        "monai_fwd": f"  windows alone: MONAI, sw_batch_size={args.batch}, Predictor.forward_tiles",
        "ours_eager": f"  windows alone: medseg sliding_window_inference, batch {args.batch}, eager model",
    }
    r = Rounds(device)
    with torch.inference_mode():
        r.add(names["ours"], medseg(ours))
        r.add(names["monai1"], lambda: monai_swi(x, tile, 1, net, overlap=args.overlap, mode=args.mode))
        r.add(names["monaiB"], lambda: monai_swi(x, tile, args.batch, net, overlap=args.overlap, mode=args.mode))
        r.add(
            names["monai_fwd"],
            lambda: monai_swi(x, tile, args.batch, ours.forward_tiles, overlap=args.overlap, mode=args.mode),
        )
        r.add(
            names["ours_eager"],
            lambda: sliding_window_inference(
                x, net, tile, args.overlap, args.mode, args.batch, ours.stride, pad_border=False
            ),
        )
        for batch, p in predictors.items():
            if batch != args.batch:
                r.add(f"  medseg Predictor sliding window, tile batch {batch}", medseg(p))
        r.run(args.repeats, f"{threads} thread(s)")
    plan = plan_tiles(*hw, args.tile, args.overlap, ours.stride, pad_border=False)
    padded = plan_tiles(*hw, args.tile, args.overlap, ours.stride, pad_border=True)
    return {"rounds": r, "names": names, "backend": backend, "windows": len(plan.windows), "padded": padded}


def report(args: argparse.Namespace, threads: int, m: dict) -> list[tuple[str, float, bool]]:
    r, names = m["rounds"], m["names"]
    ref = r.outputs[names["monai1"]]
    ours = r.median(names["ours"])
    print(
        f"\n{threads} thread(s): 1x3x{args.size}x{args.size}, tiles {args.tile}, overlap {args.overlap}, "
        f"{args.mode}, {m['windows']} windows, {args.precision}; median of {args.repeats} rounds"
    )
    print(f"{'contender':<82} {'s':>7} {'medseg/this':>11} {'max|diff|':>10}")
    for name in r.fns:
        t = r.median(name)
        diff = float((r.outputs[name] - ref).abs().max())
        print(f"{name:<82} {t:7.2f} {ours / t:11.3f} {diff:10.2e}")
    diff = float((r.outputs[names["ours"]] - ref).abs().max())
    rows = [
        (f"{threads} thr: medseg / MONAI sw_batch_size=1 (default)", ours / r.median(names["monai1"]), None),
        (f"{threads} thr: medseg / MONAI sw_batch_size={args.batch}", ours / r.median(names["monaiB"]), None),
        (f"{threads} thr: output max |medseg - MONAI|", diff, diff <= TOLERANCE),
    ]
    # the windows' own share of the difference: medseg's sliding window over the eager model against MONAI's
    alone = float((r.outputs[names["ours_eager"]] - r.outputs[names["monaiB"]]).abs().max())
    rows.append((f"{threads} thr: same network, windows alone: max |diff|", alone, alone <= TOLERANCE))
    machinery = r.median(names["ours_eager"]) / r.median(names["monaiB"])
    forward = ours / r.median(names["monai_fwd"])
    print(
        f"where it comes from: same network function, windows only: medseg/MONAI {machinery:.3f} (eager model), "
        f"{forward:.3f} (Predictor forward); the rest is the Predictor's forward ({m['backend']}) against the "
        f"eager model"
    )
    p = m["padded"]
    print(
        f"(the Predictor's default border padding, pad_border=True, covers this image with {len(p.windows)} windows "
        f"instead of {m['windows']}: a different output from MONAI's, not timed here)"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--mode", choices=["gaussian", "constant"], default="gaussian")
    ap.add_argument("--batch", type=int, default=4, help="medseg's tile batch (the Predictor's default: 4)")
    ap.add_argument("--batches", type=int, nargs="*", default=[], help="more tile batches for the Predictor")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--quick", action="store_true", help="512 px image, 256 px tiles, 3 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.tile, args.repeats = 512, 256, 3
        args.threads = args.threads[:1] if args.threads else None
    try:
        import monai  # noqa: F401
    except ImportError:
        print("MONAI is not installed (pip install monai): nothing to compare against")
        return 2
    from medseg.inference import resolve_device

    device = resolve_device(args.device)
    load = _load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sliding-") as tmp:
        model, ckpt = _checkpoint(args, Path(tmp))
        for threads in args.threads or [torch.get_num_threads()]:
            rows += report(args, threads, measure(args, threads, device, model, ckpt))
    print(
        f"\nsliding window on {_device_name(device)}, torch {torch.__version__}; "
        f"target: medseg <= {TARGET_RATIO}x MONAI's time at equal output (max |difference| <= {TOLERANCE:g})"
    )
    print(f"{'measure':<56} {'target':>9} {'measured':>9}  met")
    for name, value, ok in rows:
        if ok is None:
            ok = value <= TARGET_RATIO
            print(f"{name:<56} {'<= ' + str(TARGET_RATIO):>9} {value:9.3f}  {'yes' if ok else 'no'}")
        else:
            print(f"{name:<56} {'<= ' + format(TOLERANCE, 'g'):>9} {value:9.2e}  {'yes' if ok else 'no'}")
    print(f"1-minute load average at start / end: {load} / {_load()} (other processes slow threaded runs most)")
    return 0


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{platform.processor() or platform.machine()} CPU ({os.cpu_count()} cores)"


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
