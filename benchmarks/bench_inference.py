"""Inference speed on this machine, measured side by side in one run and printed as ratios.

    python benchmarks/bench_inference.py [--repeats 5] [--threads N] [--device cpu|cuda]
                                         [--no-compile] [--no-onnx] [--cpu-bf16]
                                         [--backend-only] [--backend-threads 1 2] [--quick]

Part 0, the target table (issue 19, item 1; ``_bench_backend.py`` says what it
compares): ``Predictor(checkpoint)`` with its automatic backend against
onnxruntime's default session on the same ONNX file and naive smp eager,
Unet(resnet34) 1x3x512x512, at 1 and 2 threads (``--backend-threads``), with a
square fp32 matmul's FLOP/s as the peak. ``--backend-only`` stops after it,
``--quick`` takes 3 rounds. On a shared machine, compare within one run, or pin
the process (``taskset -c 0,1``).

Part 1, Unet(resnet34) on one 3x512x512 image (random weights: speed does not
depend on them, and output differences are measured on real probabilities):
naive smp eager fp32 (``torch.no_grad``), each optimisation alone
(``inference_mode``, channels_last, BatchNorm folding, thread counts,
TorchScript freeze, ``torch.compile``, onnxruntime through
``medseg.models.export_onnx``, bf16 autocast) and the Predictor (its forward
alone, and end to end with pre/post-processing). Every variant's time is the
median over ``--repeats`` rounds, the variants taking turns within each round so
that load from other processes hits them alike. The model's FLOPs come from
``torch.utils.flop_counter.FlopCounterMode``; a square fp32 matmul measured in
the same rounds gives the machine's practical peak FLOP/s.

The sliding window against MONAI's is ``benchmarks/bench_sliding.py``.

With ``--device cuda`` part 1 runs batches of ``--gpu-batch`` images in bf16.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _bench_backend import backend_table
from _bench_inputs import IMAGENET, photo_like
from _bench_timing import Bench, device_name, load_average, with_threads


def part1(args: argparse.Namespace, device: torch.device) -> None:
    import segmentation_models_pytorch as smp
    from torch.utils.flop_counter import FlopCounterMode

    from medseg.datasets.classmap import ClassMap
    from medseg.inference import Predictor
    from medseg.inference.optimise import fold_batchnorm
    from medseg.io.normalise import to_model_input
    from medseg.models.spec import ModelSpec, Preprocessing

    gpu = device.type == "cuda"
    batch = args.gpu_batch if gpu else 1
    torch.manual_seed(0)
    naive = smp.Unet("resnet34", encoder_weights=None, classes=1).eval().to(device)
    spec = ModelSpec(arch="Unet", encoder="resnet34", classes=1)
    prep = Preprocessing(channels=3, input_size=[512, 512], divisible_by=32, **IMAGENET)
    image = photo_like(512)
    x = torch.from_numpy(to_model_input(image, 3, None, **IMAGENET))[None].repeat(batch, 1, 1, 1).to(device)
    xcl = x.contiguous(memory_format=torch.channels_last)

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        naive(x[:1])
    flops = counter.get_total_flops() * batch

    b = Bench(device)
    n = 4096 if gpu else 2048
    a = torch.rand(n, n, device=device)
    b.add("fp32 matmul (peak reference)", lambda: a @ a)
    with torch.no_grad():
        b.add("naive smp eager fp32", lambda: torch.sigmoid(naive(x)))

    def mode(m, inp):
        def run():
            with torch.inference_mode():
                return torch.sigmoid(m(inp))

        return run

    def no_grad(m, inp):
        def run():
            with torch.no_grad():
                return torch.sigmoid(m(inp))

        return run

    b.add("inference_mode", mode(naive, x))
    cl = copy.deepcopy(naive).to(memory_format=torch.channels_last)
    b.add("channels_last", no_grad(cl, xcl))
    folded, ok = fold_batchnorm(copy.deepcopy(naive), x[:1])
    b.add("BatchNorm folded (torch.fx)", no_grad(folded, x), "" if ok else "folding failed")
    if not gpu and not args.threads:
        cores = os.cpu_count() or 1
        for t in sorted({1, max(1, cores // 2), cores}):
            b.add(
                f"torch.set_num_threads({t})",
                with_threads(t, no_grad(naive, x)),
                "default" if t == torch.get_num_threads() else "",
            )
    try:
        with torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(copy.deepcopy(naive), x))
        b.add("TorchScript trace+freeze", no_grad(frozen, x))
    except Exception as e:  # noqa: BLE001 - a benchmark reports what does not work
        b.notes["TorchScript trace+freeze"] = f"failed: {e}"
    if not args.no_compile:
        try:
            t0 = time.perf_counter()
            compiled = torch.compile(copy.deepcopy(naive))
            b.add("torch.compile (inductor)", mode(compiled, x), "")
            b.notes["torch.compile (inductor)"] = f"compile+first run {time.perf_counter() - t0:.0f} s"
        except Exception as e:  # noqa: BLE001
            print(f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    if not args.no_onnx:
        _add_onnx(b, naive, spec, prep, x, gpu)
    if gpu or args.cpu_bf16:

        def bf16():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                return torch.sigmoid(naive(x).float())

        b.add("bf16 autocast", bf16, "accuracy column shows its cost")

    predictor = Predictor.from_model(
        copy.deepcopy(naive),
        spec,
        ClassMap.binary(),
        prep,
        device=device,
        precision="bf16" if gpu else "fp32",
        batch_size=batch,
    )
    # forward_tiles is the exact function the Predictor's sliding window calls
    b.add("Predictor forward (channels_last + BN folded + inference_mode)", lambda: predictor.forward_tiles(x))
    metas: list[dict] = []

    def end_to_end() -> torch.Tensor:
        pred = predictor.predict(image)
        metas.append(pred.meta)
        return torch.from_numpy(pred.probs)[None]

    if not gpu:
        b.add("Predictor.predict end to end (uint8 image in, Prediction out)", end_to_end)
    b.run(args.repeats)

    peak = 2 * n**3 / b.median("fp32 matmul (peak reference)")
    ref = b.outputs["naive smp eager fp32"]
    base = b.median("naive smp eager fp32")
    print(
        f"\nUnet(resnet34) {batch}x3x512x512 on {device_name(device)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {flops / 1e9:.1f} GFLOP per forward (FlopCounterMode); "
        f"fp32 matmul {n}x{n}: {peak / 1e9:.0f} GFLOP/s; median of {args.repeats}"
    )
    print(f"{'variant':<64} {'ms':>8} {'speedup':>8} {'GFLOP/s':>8} {'% peak':>7} {'max|dp|':>9}  note")
    for name in b.fns:
        if name.startswith("fp32 matmul"):
            continue
        t = b.median(name)
        out = b.outputs[name]
        diff = float((out - ref).abs().max()) if out.shape == ref.shape else float("nan")
        print(
            f"{name:<64} {t * 1e3:8.1f} {base / t:8.2f} {flops / t / 1e9:8.1f} {100 * flops / t / peak:6.1f}% "
            f"{diff:9.2e}  {b.notes.get(name, '')}"
        )
    for name, note in b.notes.items():
        if name not in b.fns:
            print(f"{name:<64} {'-':>8}  {note}")
    if not gpu:
        fwd = b.median("Predictor forward (channels_last + BN folded + inference_mode)")
        e2e = b.median("Predictor.predict end to end (uint8 image in, Prediction out)")
        # within each predict() call (so unaffected by load changes between calls)
        within = statistics.median((m["time_s"] - m["time_forward_s"]) / m["time_forward_s"] for m in metas)
        print(
            f"pre/post-processing (normalise, pad, blend, entropy, labels, copies), timed inside each "
            f"predict(): median {100 * within:.1f}% of its forward; medians across calls: "
            f"{100 * (e2e - fwd) / fwd:.1f}%"
        )
    else:
        print(
            f"throughput: {batch / b.median('Predictor forward (channels_last + BN folded + inference_mode)'):.0f}"
            f" images/s (Predictor forward, bf16, batch {batch})"
        )


def _add_onnx(b: Bench, model, spec, prep, x: torch.Tensor, gpu: bool) -> None:
    try:
        import onnxruntime as ort

        from medseg.datasets.classmap import ClassMap
        from medseg.models import export_onnx, save_checkpoint
    except ImportError as e:
        b.notes["onnxruntime"] = f"skipped: {e} (pip install onnx onnxruntime)"
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    ckpt = save_checkpoint(tmp / "unet", copy.deepcopy(model).cpu(), spec, ClassMap.binary(), prep)
    path = export_onnx(ckpt, tmp / "unet.onnx", input_hw=(512, 512))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = torch.get_num_threads()
    providers = ["CUDAExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    feed = {sess.get_inputs()[0].name: x.cpu().numpy()}
    b.add(
        "onnxruntime (export_onnx, ORT_ENABLE_ALL)",
        lambda: torch.sigmoid(torch.from_numpy(sess.run(None, feed)[0])),
        sess.get_providers()[0],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu-batch", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--backend-only", action="store_true", help="only part 0, the backend target table")
    ap.add_argument("--quick", action="store_true", help="3 rounds in part 0 (development)")
    ap.add_argument(
        "--backend-threads", type=int, nargs="+", default=[1, 2], help="thread counts of part 0 (default 1 2)"
    )
    ap.add_argument(
        "--cpu-bf16", action="store_true", help="also time bf16 autocast on the CPU (very slow without AVX512-BF16/AMX)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and onnxruntime threads for every variant (default: torch's choice); "
        "1 gives ratios that hold up when other processes share the cores",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from medseg.inference import resolve_device

    device = resolve_device(args.device)
    load = load_average()
    backend_table(args, device)
    if args.backend_only:
        return 0
    part1(args, device)
    print(
        f"\n1-minute load average at start / end: {load} / {load_average()} "
        f"(other processes on the same cores slow multi-threaded variants most)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
