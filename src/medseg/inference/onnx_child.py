"""A member's ONNX file exported in a child process, for the background warm-up of a viewer's Predictor.

torch's exporter (the trace, its graph passes, the checker, the rewrite) is Python and C++ that holds the
GIL for long stretches: exported from a thread of the viewer's own process, Unet-ResNet34 held it for up
to 0.4 s at a time, 100-130 ms again and again over 2.4 s, and the viewer's event loop froze for as long
(``benchmarks/bench_gui_responsiveness.py``). A child process has its own interpreter: the viewer's
thread only waits on a pipe. The child reads the member from a pickle the parent writes beside the cache
(a temporary name, removed after; the model's classes must be importable there, as smp's and medseg's
are), runs :func:`~medseg.inference.onnx_cache.cached_onnx` at the lowest CPU priority with one thread,
and the parent picks the file up by the same cache key it computes itself.

A member the child cannot rebuild (a class defined in a notebook or a test function, a payload that does
not pickle) is exported in the parent as before, with an info line saying why. An export that fails in
the child raises :class:`~medseg.errors.OnnxExportError` with the child's last message. ``stop()`` turning
true does not kill the child: the export under way ends into the cache (a whole file, found next time),
and the caller is told None.

    python -m medseg.inference.onnx_child PAYLOAD FOLDER
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

from medseg.errors import OnnxExportError
from medseg.inference.members import Member
from medseg.inference.onnx_cache import OPSET, cache_dir, cache_key, cached_onnx, find_cached

log = logging.getLogger(__name__)

UNREADABLE = 3  # the child's exit status when it cannot rebuild the member: export in the parent instead
_POLL_S = 0.2
_TAIL = 2000  # characters of the child's output kept for the error


class _Unreadable(Exception):
    pass


def cached_onnx_in_child(
    member: Member, folder: Path | None = None, stop: Callable[[], bool] | None = None, opset: int = OPSET
) -> Path | None:
    """:func:`~medseg.inference.onnx_cache.cached_onnx` with the export run in a child process; None when
    ``stop()`` turned true while it ran (the child still finishes its file)."""
    folder = cache_dir() if folder is None else Path(folder)
    prefix = f"{member.spec.arch}-{cache_key(member, opset)}"
    found = find_cached(folder, prefix) if folder.is_dir() else None
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    # a temporary name the cache's pruning knows: a payload left by a killed process goes after a day
    payload = folder / f".{prefix}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.pt"
    try:
        try:
            torch.save(member, payload)
        except Exception as e:  # noqa: BLE001 - whatever does not pickle is exported here instead
            raise _Unreadable(f"{type(e).__name__}: {e}") from e
        stopped = _run_child(payload, folder, opset, stop)
    except _Unreadable as e:
        log.info("exporting %s in this process (a child process cannot rebuild it: %s)", _who(member), e)
        return cached_onnx(member, folder, opset)
    finally:
        payload.unlink(missing_ok=True)
    if stopped:
        return None
    found = find_cached(folder, prefix)
    if found is None:
        raise OnnxExportError(f"the export of {_who(member)} in a child process ended without a file in {folder}")
    return found


def _run_child(payload: Path, folder: Path, opset: int, stop: Callable[[], bool] | None) -> bool:
    """Runs the child to its end; whether ``stop()`` turned true meanwhile."""
    cmd = [sys.executable, "-m", __name__, str(payload), str(folder), str(opset)]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        stopped = False
        while True:
            try:
                out, _ = proc.communicate(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                stopped = stopped or (stop is not None and stop())
        text = (out or b"").decode(errors="replace").strip()
    if proc.returncode == UNREADABLE:
        raise _Unreadable(text.splitlines()[-1] if text else f"exit {UNREADABLE}")
    if proc.returncode != 0 and not stopped:
        last = text.splitlines()[-1] if text else "no output"
        raise OnnxExportError(f"the export in a child process failed (exit {proc.returncode}): {last[-_TAIL:]}")
    return stopped


def _who(member: Member) -> str:
    return member.name or f"{member.spec.arch} model in memory"


def _main(argv: list[str]) -> int:
    payload, folder, opset = Path(argv[0]), Path(argv[1]), int(argv[2])
    try:
        os.nice(19)  # the viewer's forwards come first
    except (AttributeError, OSError):  # no nice() on Windows; not allowed here
        pass
    torch.set_num_threads(1)
    try:
        member = torch.load(payload, weights_only=False)
    except Exception as e:  # noqa: BLE001 - told to the parent, which exports itself
        print(f"{type(e).__name__}: {e}", flush=True)
        return UNREADABLE
    try:
        print(cached_onnx(member, folder, opset), flush=True)
    except Exception as e:  # noqa: BLE001 - the parent raises it as an export error
        print(f"{type(e).__name__}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
