"""What runs a member's network: PyTorch, or onnxruntime on an exported copy of it.

On the CPU onnxruntime ran Unet(resnet34) at 512x512 about 1.24x faster than
the Predictor's BatchNorm-folded channels_last PyTorch with 2 threads (its
NCHWc convolutions and graph fusions; benchmarks/bench_inference.py), so
``backend="auto"`` runs a checkpoint's network there when the device is the CPU,
the precision fp32, onnxruntime imports and the network exports (the file is
cached per model, :mod:`medseg.inference.onnx_cache`). A model handed over in
memory (one being trained, ``Predictor.from_model``) stays on PyTorch unless
asked: exporting it on every fine-tuning step would cost more than it saves.
When ``auto`` cannot use onnxruntime, a warning names the model and why, and
PyTorch runs it; asking for ``"onnxruntime"`` explicitly makes the same reasons
errors.

Both backends take prepared tiles (N, C, H, W) float32 and return the logits;
the Predictor's ``forward_tiles`` adds activation, TTA and member stacking
around them, so live prediction, TTA, ensembles and the sliding window all go
through here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InferenceError
from medseg.inference.device import inference_context, prepare_model
from medseg.inference.members import Member
from medseg.inference.optimise import _BN, fold_batchnorm

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


class TorchBackend:
    """The member's network in PyTorch: BatchNorm folded into a copy (``fold_bn``), channels_last, on the device."""

    name = "torch"

    def __init__(
        self, member: Member, device: torch.device, precision: str, channels_last: bool, fold_bn: bool, stride: int
    ):
        net, self.folded = member.model.eval(), False
        if fold_bn:  # folded where the model is, so only the copy goes to the device
            where = next((t.device for t in member.model.parameters()), torch.device("cpu"))
            probe = torch.rand(
                (1, member.preprocessing.channels, 2 * stride, 2 * stride),
                generator=torch.Generator().manual_seed(0),
            ).to(where)
            net, self.folded = fold_batchnorm(net, probe)
        self.net = prepare_model(net, device, channels_last)
        self.device, self.precision = device, precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with inference_context(self.device, self.precision):
            logits = self.net(x.contiguous(memory_format=self.memory_format))
        if isinstance(logits, (tuple, list)):  # (mask, aux) from models built with an aux head
            logits = logits[0]
        return logits


class OnnxBackend:
    """The member's network exported to ONNX, run by an onnxruntime CPU session whose intra-op threads follow
    ``torch.get_num_threads()`` (a session per thread count, built when the count changes)."""

    name = "onnxruntime"

    def __init__(self, member: Member, path: Path, session_factory: Callable[[Path, int], Any] | None = None):
        self.path = Path(path)
        self._factory = session_factory or make_session
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        # a file onnxruntime refuses fails here, while torch can still take over
        meta = self.session().get_modelmeta().custom_metadata_map
        has_bn = any(isinstance(m, _BN) for m in member.model.modules())
        self.folded = has_bn and meta.get("medseg.batchnorm_nodes") == "0"

    def session(self) -> Any:
        threads = torch.get_num_threads()
        with self._lock:
            if threads not in self._sessions:
                self._sessions[threads] = self._factory(self.path, threads)
            return self._sessions[threads]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from medseg.models.onnx_export import INPUT_NAME, OUTPUT_NAME

        feed = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.session().run([OUTPUT_NAME], {INPUT_NAME: feed})[0]
        return torch.from_numpy(out).to(x.device)


def make_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session with every graph optimisation (NCHWc layouts, fusions) and ``threads``
    intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_unusable(member: Member, device: torch.device, precision: str, requested: str) -> str | None:
    """Why onnxruntime cannot run ``member`` as asked (None: it can be tried)."""
    if device.type != "cpu":
        return f"the device is {device} (the onnxruntime backend runs on the CPU)"
    if precision != "fp32":
        return f"the precision is {precision} (the onnxruntime backend runs fp32)"
    if requested == "auto" and not member.checkpoint:
        return "a model in memory stays on PyTorch unless backend='onnxruntime' is asked for"
    return None


def build_backend(
    member: Member,
    requested: str,
    device: torch.device,
    precision: str,
    channels_last: bool = True,
    fold_bn: bool = True,
    stride: int = 32,
    cache: Path | None = None,
) -> TorchBackend | OnnxBackend:
    """The backend ``requested`` ("auto", "torch", "onnxruntime") for ``member``; see the module docstring."""
    if requested not in BACKENDS:
        raise InferenceError(f"unknown backend {requested!r}; valid: {', '.join(BACKENDS)}")
    torch_backend = lambda: TorchBackend(member, device, precision, channels_last, fold_bn, stride)  # noqa: E731
    if requested == "torch":
        return torch_backend()
    who = member.name or f"{member.spec.arch} model in memory"
    why = onnx_unusable(member, device, precision, requested)
    if why is None:
        try:
            return _onnx_backend(member, cache)
        except Exception as e:  # noqa: BLE001 - any failure of export or session: PyTorch still runs the model
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
    if requested == "onnxruntime":
        raise InferenceError(f"cannot run {who} in onnxruntime: {why}")
    if member.checkpoint and not why.startswith(("the device", "the precision")):
        log.warning("%s runs in PyTorch, not onnxruntime: %s", who, why)
    return torch_backend()


def _onnx_backend(member: Member, cache: Path | None) -> OnnxBackend:
    try:  # missing: say so before exporting anything
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError(f"onnxruntime is not installed or does not import ({e}): pip install onnxruntime") from e
    from medseg.inference.onnx_cache import cached_onnx

    path = cached_onnx(member, cache)
    try:
        return OnnxBackend(member, path)
    except Exception as first:  # noqa: BLE001 - a file that matched its hash but does not load: export again once
        log.warning("onnxruntime could not load %s (%s): exporting again", path, first)
        path.unlink(missing_ok=True)
        return OnnxBackend(member, cached_onnx(member, cache))
