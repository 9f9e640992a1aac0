"""Part 0 of bench_inference.py, the target table of issue 19 item 1: the Predictor against onnxruntime.

``Predictor(checkpoint)`` with its automatic backend (onnxruntime on the CPU, the
ONNX file from its cache, a session fixed to the tile's shape from the second
forward of that shape on) against, on the same ONNX file and threads:
onnxruntime's default session (``SessionOptions()``: every graph optimisation,
only the intra-op thread count set), which is what ``vs ORT`` compares with;
onnxruntime told the input's shape as the Predictor tells it (``fixed``: the
Predictor's overhead over the same session, for reference); and naive smp
eager. The peak is a square fp32 matmul in PyTorch (MKL) at the same thread
count in the same rounds: on the development machine it was the highest of the
matmuls tried (onnxruntime's own MatMul 0.93x of it, GEMMs shaped like
Unet-ResNet34's convolutions 0.67-0.90x), so the % of peak errs low. All take
turns in every round; the table shows medians and whether the targets are met
(>= 1.0x onnxruntime, >= 90 % of the matmul peak, max |difference in
probability| to eager <= 1e-4).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _bench_inputs import IMAGENET, photo_like
from _bench_timing import Bench, device_name

TARGETS = "targets: >= 1.0x ORT, >= 90 % peak, <= 1e-4"


def _ort_session(path: Path, threads: int, shape: tuple[int, ...] | None = None):
    import onnxruntime as ort

    dims: list = []

    def session(shape=None):
        opts = ort.SessionOptions()  # onnxruntime's defaults, ORT_ENABLE_ALL included
        opts.intra_op_num_threads = threads
        for name, size in zip(dims, shape or ()):
            if isinstance(name, str):
                opts.add_free_dimension_override_by_name(name, int(size))
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    general = session()
    dims[:] = general.get_inputs()[0].shape  # the free dimensions' names: batch, height, width
    return general if shape is None else session(shape)


def backend_table(args: argparse.Namespace, device: torch.device) -> list[tuple]:
    """Print the target table; return its rows (threads, predictor s, ORT s, ORT fixed s, eager s, peak, diff)."""
    import segmentation_models_pytorch as smp
    from torch.utils.flop_counter import FlopCounterMode

    from medseg.datasets.classmap import ClassMap
    from medseg.inference import Predictor
    from medseg.io.normalise import to_model_input
    from medseg.models import save_checkpoint
    from medseg.models.spec import ModelSpec, Preprocessing

    gpu = device.type == "cuda"
    batch = args.gpu_batch if gpu else 1
    torch.manual_seed(0)
    naive = smp.Unet("resnet34", encoder_weights=None, classes=1).eval()
    with torch.no_grad():  # BatchNorm statistics of a trained model, not the identity
        naive.train()(torch.randn(2, 3, 256, 256))
    naive.eval()
    spec = ModelSpec(arch="Unet", encoder="resnet34", classes=1)
    prep = Preprocessing(channels=3, input_size=[512, 512], divisible_by=32, **IMAGENET)
    tmp = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    os.environ.setdefault("MEDSEG_CACHE_DIR", str(tmp / "cache"))  # a fresh export unless one is given
    ckpt = save_checkpoint(tmp / "unet-resnet34", naive, spec, ClassMap.binary(), prep)
    t0 = time.perf_counter()
    predictor = Predictor(str(ckpt), device=device, batch_size=batch)
    built = time.perf_counter() - t0
    naive = naive.to(device)
    x = torch.from_numpy(to_model_input(photo_like(512), 3, None, **IMAGENET))[None].repeat(batch, 1, 1, 1).to(device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        naive(x[:1])
    flops = counter.get_total_flops() * batch
    onnx_path = getattr(predictor._backends[0], "path", None)
    print(
        f"\nPart 0: Unet(resnet34) {batch}x3x512x512 on {device_name(device)}; Predictor backend "
        f"{predictor.backends[0]} (built in {built:.1f} s{', ONNX exported' if onnx_path else ''}); "
        f"{flops / 1e9:.1f} GFLOP per forward"
    )
    rows = []
    for threads in [torch.get_num_threads()] if gpu else args.backend_threads:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            b = Bench(device)
            n = 4096 if gpu else 2048
            a = torch.rand(n, n, device=device)
            b.add("matmul", lambda a=a: a @ a)
            t0 = time.perf_counter()
            predictor.forward_tiles(x)  # a shape's first forward: the second (in add) builds its fixed session
            b.add("predictor", lambda: predictor.forward_tiles(x))
            warm = time.perf_counter() - t0
            if onnx_path is not None:
                for name, shape in (("onnxruntime", None), ("ORT fixed", tuple(x.shape))):
                    sess = _ort_session(onnx_path, threads, shape)
                    feed = {sess.get_inputs()[0].name: x.cpu().numpy()}
                    b.add(name, lambda s=sess, f=feed: torch.sigmoid(torch.from_numpy(s.run(None, f)[0])))

            def eager() -> torch.Tensor:
                with torch.no_grad():
                    return torch.sigmoid(naive(x))

            b.add("eager", eager)
            print(f"  {threads} thread(s): the Predictor's two warm-up forwards took {warm:.2f} s")
            b.run(3 if args.quick else args.repeats)
        finally:
            torch.set_num_threads(old)
        peak = 2 * n**3 / b.median("matmul")
        med = {name: b.median(name) if name in b.fns else float("nan") for name in ("onnxruntime", "ORT fixed")}
        diff = float((b.outputs["predictor"] - b.outputs["eager"]).abs().max())
        t, eager_t = b.median("predictor"), b.median("eager")
        rows.append((threads, t, med["onnxruntime"], med["ORT fixed"], eager_t, peak, diff))
    _print_table(rows, flops)
    return rows


def _print_table(rows: list[tuple], flops: float) -> None:
    print(
        f"{'threads':>7} {'Predictor ms':>12} {'ORT ms':>8} {'fixed ms':>9} {'eager ms':>9} {'vs ORT':>7} "
        f"{'vs fixed':>8} {'vs eager':>8} {'% peak':>7} {'max|dp|':>9}  {TARGETS}"
    )
    for threads, t, ort_t, fixed_t, eager_t, peak, diff in rows:
        share = 100 * flops / t / peak
        met = ["yes" if ok else "no" for ok in (ort_t / t >= 1.0, share >= 90, diff <= 1e-4)]
        print(
            f"{threads:>7} {t * 1e3:12.1f} {ort_t * 1e3:8.1f} {fixed_t * 1e3:9.1f} {eager_t * 1e3:9.1f} "
            f"{ort_t / t:6.3f}x {fixed_t / t:7.3f}x {eager_t / t:7.2f}x {share:6.1f}% {diff:9.2e}  "
            f"met: {met[0]} / {met[1]} / {met[2]}"
        )
    print(
        "(vs ORT: onnxruntime's default session's median time / the Predictor's, same ONNX file, same threads, "
        "same rounds; vs fixed: the same with the input's shape told to onnxruntime, as the Predictor does)"
    )
