"""Where and at what precision a model runs.

``resolve_device("auto")`` picks CUDA, then Apple MPS, then the CPU. An explicit
device that this machine lacks raises ``InferenceError`` saying what is there.
``resolve_precision("auto", device)`` autocasts to bf16 on GPUs that support it
(fp16 on older ones) and stays fp32 on the CPU, where reduced precision is used
only when asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from medseg.errors import InferenceError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices this process can use, CPU last."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """A usable ``torch.device`` for "auto", "cpu", "cuda", "cuda:N", "mps" (or a torch.device)."""
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise InferenceError(
            f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N, mps "
            f"(available here: {', '.join(available_devices())})"
        ) from e
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InferenceError(
                f"device {device!r} asked for but CUDA is not available "
                f"(available here: {', '.join(available_devices())})"
            )
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InferenceError(
                f"device {device!r} asked for but only {torch.cuda.device_count()} CUDA "
                f"device(s) exist (available here: {', '.join(available_devices())})"
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise InferenceError(
                f"device {device!r} asked for but Apple MPS is not available "
                f"(available here: {', '.join(available_devices())})"
            )
        return dev
    raise InferenceError(f"unsupported device type {dev.type!r} in {device!r}; valid: auto, cpu, cuda, cuda:N, mps")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision ("fp32", "bf16", "fp16") for ``precision`` on ``device``."""
    p = str(precision).strip().lower()
    if p not in PRECISIONS:
        raise InferenceError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if p != "auto":
        if p == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InferenceError(
                f"bf16 asked for but {torch.cuda.get_device_name(device)} does not support it; use fp16 or fp32"
            )
        return p
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a concrete precision, None for fp32 (no autocast)."""
    return _DTYPES[precision]


@contextlib.contextmanager
def inference_context(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast when the precision is reduced."""
    dtype = autocast_dtype(precision)
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool | None = None) -> torch.nn.Module:
    """The model in eval mode on ``device``; channels_last on GPUs (and on the CPU when asked)."""
    model.eval()
    model.to(device)
    if channels_last is None:
        channels_last = device.type != "cpu"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
