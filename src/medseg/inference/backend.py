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
errors. Two things make it faster than onnxruntime's default session on a plain
export: the cached file has its decoder concatenations split
(:mod:`medseg.inference.onnx_graph`), and a tile shape seen again runs in a
session fixed to that shape (:class:`OnnxBackend`).

Exporting takes seconds (Unet-ResNet34: the trace, the checker, the session's
graph optimisation), which a batch over many files pays once but a viewer
would wait for on its first prediction. ``warm_up="background"`` (with
``"auto"``) returns a :class:`WarmingBackend`: PyTorch runs the first forwards
at once while a thread has a child process export the network
(:mod:`medseg.inference.onnx_child`: the exporter holds the GIL for up to 0.4 s
at a time, which in the viewer's process froze its event loop), then builds its
session, and the forwards after that run in onnxruntime. A model the child
cannot rebuild is exported in the thread: it traces a copy it makes itself
(``write_onnx``), never the live network, whose weights it only reads (nothing
writes them once PyTorch has prepared its own network: eval mode, no
gradients); the tracer's state is per thread, and the one flag torch's exporter
sets for the whole process only turns smp's PSPNet pooling into its
``interpolate(mode="area")`` form, the same average. Exports in this process
are serialised (torch's exporter swaps a module function while it runs:
:func:`~medseg.inference.onnx_cache.cached_onnx`), and background exports by
child processes run one at a time (they compete for the same cores); an
export asked for now (a batch's, a re-scoring's) never waits behind a
background child, which runs at the lowest priority: on a busy machine a
re-scoring waited half a minute behind a live prediction's export.

Both backends take prepared tiles (N, C, H, W) float32 and return the logits;
the Predictor's ``forward_tiles`` adds activation, TTA and member stacking
around them, so live prediction, TTA, ensembles and the sliding window all go
through here.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections import OrderedDict
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
WARM_UPS = ("now", "background")
_CHILD_EXPORTS = threading.Lock()  # background exports by child processes, one at a time (module doc)
# the background warm-up exports in a child process: in a thread, the exporter holds the GIL for up to
# 0.4 s at a time and a viewer's event loop stops as long (see medseg.inference.onnx_child)
EXPORT_IN_CHILD = True


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
    """The member's network exported to ONNX, run by onnxruntime CPU sessions whose intra-op threads follow
    ``torch.get_num_threads()``.

    The exported graph takes any batch, height and width, and onnxruntime optimises it for that: the decoder's
    resize sizes stay computed from ``Shape`` nodes, so each resize leaves its NCHWc layout and comes back
    (Unet-ResNet34: 10 ``ReorderOutput`` + 5 ``ReorderInput`` nodes, ~10 % of a 512x512 forward at one thread).
    A session told the input's exact shape (free dimension overrides) folds those sizes to constants and keeps
    the whole decoder in NCHWc (one reorder at the end). So a shape the backend sees a second time gets a
    session of its own (built in ~0.2-0.3 s; the sliding window and live prediction repeat one tile shape),
    and a shape seen once runs in the general session. Each session holds the weights and its buffers (~200 MB
    for Unet-ResNet34): at most ``max_shaped`` shaped sessions are kept besides the general one, and a shape
    whose session was dropped for another is not given one again (shapes taking turns would otherwise rebuild
    a session on every forward).
    """

    name = "onnxruntime"
    max_shaped = 2
    _max_remembered = 256

    def __init__(self, member: Member, path: Path, session_factory: Callable[..., Any] | None = None):
        self.path = Path(path)
        self._factory = session_factory
        self._general: dict[int, Any] = {}
        self._shaped: OrderedDict[tuple[int, tuple[int, ...]], Any] = OrderedDict()
        self._seen: set[tuple[int, tuple[int, ...]]] = set()
        self._dropped: set[tuple[int, tuple[int, ...]]] = set()
        self._lock = threading.Lock()
        # a file onnxruntime refuses fails here, while torch can still take over
        general = self.session()
        meta = general.get_modelmeta().custom_metadata_map
        has_bn = any(isinstance(m, _BN) for m in member.model.modules())
        self.folded = has_bn and meta.get("medseg.batchnorm_nodes") == "0"
        # the names of the input's free dimensions, by axis (None: fixed in the graph, or unnamed)
        self._free = [d if isinstance(d, str) and d else None for d in general.get_inputs()[0].shape]

    def session(self, shape: tuple[int, ...] | None = None) -> Any:
        """The session for the current thread count and an input of ``shape``: its own when the shape was
        asked for before (see the class docstring), else the general one (also for ``shape=None``)."""
        threads = torch.get_num_threads()
        factory = self._factory or make_session
        dims = self._overrides(shape) if shape is not None else None
        with self._lock:
            key = (threads, tuple(int(n) for n in shape)) if dims else None
            if key is not None and key in self._shaped:
                self._shaped.move_to_end(key)
                return self._shaped[key]
            if key is not None and key in self._seen and key not in self._dropped:
                if len(self._shaped) >= self.max_shaped:
                    self._dropped.add(self._shaped.popitem(last=False)[0])
                try:
                    self._shaped[key] = made = factory(self.path, threads, dims)
                    return made
                except Exception as e:  # noqa: BLE001 - the general session still runs this shape
                    self._dropped.add(key)
                    log.warning("onnxruntime could not fix %s to the shape %s: %s", self.path, key[1], _reason(e))
            if key is not None and len(self._seen) < self._max_remembered:
                self._seen.add(key)
            if threads not in self._general:
                self._general[threads] = factory(self.path, threads)
            return self._general[threads]

    def _overrides(self, shape: tuple[int, ...] | None) -> dict[str, int] | None:
        """``{dimension name: size}`` fixing the input's free dimensions at ``shape`` (None: nothing to fix)."""
        if shape is None or len(shape) != len(self._free):
            return None
        dims: dict[str, int] = {}
        for name, size in zip(self._free, shape):
            if name is not None:
                if dims.setdefault(name, int(size)) != int(size):
                    return None  # one name for two different sizes: not a shape one session can fix
        return dims or None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from medseg.models.onnx_export import INPUT_NAME, OUTPUT_NAME

        feed = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.session(feed.shape).run([OUTPUT_NAME], {INPUT_NAME: feed})[0]
        return torch.from_numpy(out).to(x.device)


def make_session(path: Path, threads: int, dims: dict[str, int] | None = None) -> Any:
    """An onnxruntime CPU session with every graph optimisation (NCHWc layouts, fusions) and ``threads``
    intra-op threads; ``dims`` fixes the input's free dimensions by name (a session for that shape only)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    for name, size in (dims or {}).items():
        options.add_free_dimension_override_by_name(name, int(size))
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
    warm_up: str = "now",
) -> TorchBackend | OnnxBackend | WarmingBackend:
    """The backend ``requested`` ("auto", "torch", "onnxruntime") for ``member``; ``warm_up`` "background"
    makes "auto" a :class:`WarmingBackend`. See the module docstring."""
    if requested not in BACKENDS:
        raise InferenceError(f"unknown backend {requested!r}; valid: {', '.join(BACKENDS)}")
    if warm_up not in WARM_UPS:
        raise InferenceError(f"unknown warm_up {warm_up!r}; valid: {', '.join(WARM_UPS)}")
    torch_backend = lambda: TorchBackend(member, device, precision, channels_last, fold_bn, stride)  # noqa: E731
    if requested == "torch":
        return torch_backend()
    why = onnx_unusable(member, device, precision, requested)
    if why is None and requested == "auto" and warm_up == "background":
        # PyTorch's network first: an unfoldable model is converted in place, before the thread reads it
        return WarmingBackend(member, torch_backend(), cache)
    if why is None:
        try:
            return _onnx_backend(member, cache)
        except Exception as e:  # noqa: BLE001 - any failure of export or session: PyTorch still runs the model
            why = _reason(e)
    if requested == "onnxruntime":
        raise InferenceError(f"cannot run {_who(member)} in onnxruntime: {why}")
    if member.checkpoint and not why.startswith(("the device", "the precision")):
        log.warning("%s runs in PyTorch, not onnxruntime: %s", _who(member), why)
    return torch_backend()


class WarmingBackend:
    """PyTorch now, onnxruntime once a background thread has exported ``member``'s network and built its
    session; see the module docstring. ``done`` is set when that thread ends, switched or not; an
    export that fails logs one warning and PyTorch goes on. :meth:`close` returns at once: an export under way
    finishes into the cache (a whole file, useful next time), but no session is built and nothing switches."""

    def __init__(self, member: Member, torch_backend: TorchBackend, cache: Path | None = None):
        self._current: TorchBackend | OnnxBackend = torch_backend
        self.done = threading.Event()
        self._closed = threading.Event()
        # the thread holds this object weakly: a Predictor dropped while exporting builds no session
        self._thread = threading.Thread(
            target=_warm,
            args=(weakref.ref(self), member, cache, self._closed, self.done),
            name=f"medseg-onnx-export-{member.spec.arch}",
            daemon=True,
        )
        self._thread.start()

    @property
    def name(self) -> str:
        return self._current.name

    @property
    def folded(self) -> bool:
        return self._current.folded

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._current(x)  # one read: a switch between two forwards, never inside one

    def close(self) -> None:
        self._closed.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the background export has ended (switched, failed or closed) within ``timeout``."""
        return self.done.wait(timeout)


def _warm(ref, member: Member, cache: Path | None, closed: threading.Event, done: threading.Event) -> None:
    stop = lambda: closed.is_set() or ref() is None  # noqa: E731
    _yield_cpu()
    try:
        backend = None if stop() else _onnx_backend(member, cache, stop, in_child=EXPORT_IN_CHILD)
        owner = ref()
        if backend is not None and owner is not None and not closed.is_set():
            owner._current = backend  # the torch copy goes with the last forward that holds it
            log.info("%s switched to onnxruntime (%s)", _who(member), backend.path)
    except Exception as e:  # noqa: BLE001 - whatever failed, PyTorch goes on running the model
        if not stop():
            log.warning("%s runs in PyTorch, not onnxruntime: %s", _who(member), _reason(e))
    finally:
        done.set()


def _yield_cpu() -> None:
    """Lower this thread's CPU priority where the OS allows it per thread (Linux: a thread id is a process
    id to setpriority): the forwards being shown come first, the export takes the cycles left over."""
    native = getattr(threading, "get_native_id", None)
    if native is None or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = native()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except OSError:
        pass  # not allowed here: the export runs at the same priority


def _who(member: Member) -> str:
    return member.name or f"{member.spec.arch} model in memory"


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _onnx_backend(
    member: Member, cache: Path | None, stop: Callable[[], bool] | None = None, in_child: bool = False
) -> OnnxBackend | None:
    """The onnxruntime backend of ``member`` (exported into the cache if needed, ``in_child``: by a child
    process, :mod:`medseg.inference.onnx_child`); None when ``stop()`` turned true while exporting."""
    try:  # missing: say so before exporting anything
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError(f"onnxruntime is not installed or does not import ({e}): pip install onnxruntime") from e
    from medseg.inference.onnx_cache import cached_onnx
    from medseg.inference.onnx_child import cached_onnx_in_child

    def export() -> Path | None:
        if stop is not None and stop():
            return None
        if not in_child:
            return cached_onnx(member, cache)
        with _CHILD_EXPORTS:  # a stop while waiting for its turn exports nothing
            return None if stop is not None and stop() else cached_onnx_in_child(member, cache, stop)

    path = export()
    if path is None or (stop is not None and stop()):
        return None
    try:
        return OnnxBackend(member, path)
    except Exception as first:  # noqa: BLE001 - a file that matched its hash but does not load: export again once
        log.warning("onnxruntime could not load %s (%s): exporting again", path, first)
        path.unlink(missing_ok=True)
        path = export()  # the same way as the first: a viewer's export again in a child, and stoppable
        return None if path is None or (stop is not None and stop()) else OnnxBackend(member, path)
