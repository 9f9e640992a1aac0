"""Part 0 of bench_inference.py, the target table of issue 19 item 1: the Predictor against onnxruntime.

``Predictor(checkpoint)`` with its automatic backend (onnxruntime on the CPU, the
ONNX file from its cache with its concatenations split, a session fixed to the
tile's shape from the second forward of that shape on) against, at the same
threads: onnxruntime's default session (``SessionOptions()``: every graph
optimisation, only the intra-op thread count set) on the same file, which is
what the target compares with; the same on the plain export a user gets from
``medseg export-onnx``; onnxruntime told the input's shape as the Predictor tells
it (the Predictor's own overhead, for reference); and naive smp eager. The peak
is the faster of two square fp32 matmuls at the same thread count in the same
rounds, PyTorch's (MKL) and onnxruntime's own MatMul. On an Intel development
machine MKL's was the higher (onnxruntime's 0.93x of it; GEMMs shaped like
Unet-ResNet34's convolutions 0.67-0.90x), so the % of peak erred low; on an AMD
EPYC with AVX-512 both matmuls were within 10 % of each other and onnxruntime's
blocked (NCHWc) convolutions ran faster than either (103-137 % of the "peak"):
there a square matmul is no ceiling and the column only says the forward is
not behind the machine's best dense kernel. All take turns in every
round; the table shows medians, each variant's time over the Predictor's, and
whether the targets are met (>= 1.0x onnxruntime, >= 90 % of the matmul peak,
max |difference in probability| to eager <= 1e-4).
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

TARGETS = "targets >= 1.0x ORT, >= 90 % peak, max|dp| <= 1e-4"


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


def _ort_matmul(a, threads: int, tmp: Path):
    """onnxruntime's MatMul of ``a`` with itself, a one-node graph, at ``threads`` intra-op threads."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shape = list(a.shape)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "a"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    path = tmp / "matmul.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"a": a})[0]


VARIANTS = {
    "predictor": "Predictor (auto backend: onnxruntime)",
    "onnxruntime": "onnxruntime default session, same file",
    "export-onnx": "onnxruntime default session, export-onnx file",
    "ORT fixed": "onnxruntime told the shape, same file",
    "eager": "naive smp eager (no_grad)",
}


def backend_table(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Print the target table, a block per thread count; return {variant: median s, "peak", "diff", "threads"}."""
    import segmentation_models_pytorch as smp
    from torch.utils.flop_counter import FlopCounterMode

    from medseg.datasets.classmap import ClassMap
    from medseg.inference import Predictor
    from medseg.io.normalise import to_model_input
    from medseg.models import load_checkpoint, save_checkpoint
    from medseg.models.onnx_export import write_onnx
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
    files = {}
    if onnx_path is not None:  # the Predictor's cached file, and the plain export a user gets from export-onnx
        write_onnx(load_checkpoint(ckpt), tmp / "export-onnx.onnx", input_hw=(512, 512))
        files = {"onnxruntime": (onnx_path, None), "export-onnx": (tmp / "export-onnx.onnx", None)}
        files["ORT fixed"] = (onnx_path, tuple(x.shape))
    print(
        f"\nPart 0: Unet(resnet34) {batch}x3x512x512 on {device_name(device)}; Predictor backend "
        f"{predictor.backends[0]} (built in {built:.1f} s); {flops / 1e9:.1f} GFLOP per forward"
    )
    results = []
    for threads in [torch.get_num_threads()] if gpu else args.backend_threads:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            b = Bench(device)
            n = 4096 if gpu else 2048
            a = torch.rand(n, n, device=device)
            b.add("matmul", lambda a=a: a @ a)
            if not gpu:
                b.add("ORT matmul", _ort_matmul(a.numpy(), threads, tmp))
            t0 = time.perf_counter()
            predictor.forward_tiles(x)  # a shape's first forward: the second (in add) builds its fixed session
            b.add("predictor", lambda: predictor.forward_tiles(x))
            warm = time.perf_counter() - t0
            for name, (path, shape) in files.items():
                sess = _ort_session(path, threads, shape)
                feed = {sess.get_inputs()[0].name: x.cpu().numpy()}
                b.add(name, lambda s=sess, f=feed: torch.sigmoid(torch.from_numpy(s.run(None, f)[0])))

            def eager() -> torch.Tensor:
                with torch.no_grad():
                    return torch.sigmoid(naive(x))

            b.add("eager", eager)
            b.run(3 if args.quick else args.repeats)
        finally:
            torch.set_num_threads(old)
        matmuls = [name for name in b.fns if name.endswith("matmul")]
        result = {name: b.median(name) for name in b.fns if name not in matmuls}
        result["diff"] = {name: float((b.outputs[name] - b.outputs["eager"]).abs().max()) for name in result}
        result.update(threads=threads, peak=2 * n**3 / min(b.median(m) for m in matmuls), warm=warm)
        result["peak_by"] = {m: 2 * n**3 / b.median(m) for m in matmuls}
        _print_block(result, flops)
        results.append(result)
    return results


def _print_block(r: dict, flops: float) -> None:
    t = r["predictor"]
    print(
        f"\n{r['threads']} thread(s): fp32 matmul peak {r['peak'] / 1e9:.0f} GFLOP/s ("
        + ", ".join(f"{m} {v / 1e9:.0f}" for m, v in r["peak_by"].items())
        + f"); the Predictor's two warm-up "
        f"forwards {r['warm']:.2f} s (the second builds its session fixed to the shape)"
    )
    print(f"  {'variant':<48} {'ms':>8} {'its time / Predictor':>21} {'% peak':>7} {'max|dp|':>9}")
    for name, label in VARIANTS.items():
        if name in r:
            share = 100 * flops / r[name] / r["peak"]
            print(f"  {label:<48} {r[name] * 1e3:8.1f} {r[name] / t:20.3f}x {share:6.1f}% {r['diff'][name]:9.2e}")
    ort_t = r.get("onnxruntime", float("nan"))
    met = [
        "yes" if ok else "no"
        for ok in (ort_t / t >= 1.0, 100 * flops / t / r["peak"] >= 90, r["diff"]["predictor"] <= 1e-4)
    ]
    print(
        f"  {TARGETS}: {ort_t / t:.3f}x onnxruntime's default session on the same file: {met[0]}; "
        f"{100 * flops / t / r['peak']:.1f} % of the peak: {met[1]}; max|dp| {r['diff']['predictor']:.2e}: {met[2]}"
    )
