"""A member's ONNX file exported in a child process, for the background warm-up of a viewer's Predictor.

torch's exporter (the trace, its graph passes, the checker, the rewrite) is Python and C++ that holds the
GIL for long stretches: exported from a thread of the viewer's own process, Unet-ResNet34 held it for up
to 0.4 s at a time, 100-130 ms again and again over 2.4 s, and the viewer's event loop froze for as long
(``benchmarks/bench_gui_responsiveness.py``). A child process has its own interpreter: the viewer's
thread only waits on a pipe. The child rebuilds the member from a pickle of its spec and weights that the
parent writes beside the cache (a temporary name, removed after), runs
:func:`~medseg.inference.onnx_cache.cached_onnx` at the lowest CPU priority (from before its imports)
with one thread, and the parent picks the file up by the same cache key it computes itself.

A member the child cannot rebuild (a model that is not what its spec builds, weights that do not load
into it, a payload that does not pickle), or a child that cannot run (a frozen application whose
executable is not Python, a child killed), is exported in the parent as before, with an info line saying
why. An export that fails in the child raises :class:`~medseg.errors.OnnxExportError` with the child's
last message. ``stop()`` turning true does not kill the child: the export under way ends into the cache
(a whole file, found next time), and the caller is told None.
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

DONE, STOPPED = 0, -1  # outcomes of a child run besides UNREADABLE
# the child's own exit statuses (Python's 1 is any uncaught error, such as medseg not importing there)
UNREADABLE = 3  # it cannot rebuild the member: export in the parent instead
FAILED = 4  # the export itself failed
_POLL_S = 0.2
_TAIL = 2000  # characters of the child's output kept for the error


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
            torch.save(_payload(member), payload)
        except Exception as e:  # noqa: BLE001 - whatever does not pickle is exported here instead
            outcome, why = UNREADABLE, f"{type(e).__name__}: {e}"
        else:
            outcome, why = _run_child(payload, folder, opset, stop)
    finally:
        payload.unlink(missing_ok=True)
    if outcome == STOPPED or (stop is not None and stop()):
        return None
    if outcome == UNREADABLE:
        log.info("exporting %s in this process (a child process cannot rebuild it: %s)", _who(member), why)
        return cached_onnx(member, folder, opset)
    found = find_cached(folder, prefix)
    if found is None:
        raise OnnxExportError(f"the export of {_who(member)} in a child process ended without a file in {folder}")
    return found


# the child lowers its priority before it imports anything: importing torch and medseg is ~2 s of CPU that
# took a core from the viewer's forwards at full priority when the niceness came after the imports
_BOOT = f"""import os, sys
try:
    os.nice(19)
except (AttributeError, OSError):  # no nice() on Windows; not allowed here
    pass
from {__name__} import _main
sys.exit(_main(sys.argv[1:]))
"""


def _run_child(payload: Path, folder: Path, opset: int, stop: Callable[[], bool] | None) -> tuple[int, str]:
    """Runs the child to its end: (``DONE``, its output's last line), (``STOPPED``, ...) when ``stop()`` turned
    true meanwhile, (``UNREADABLE``, why) when it could not rebuild the member; raises
    :class:`~medseg.errors.OnnxExportError` when the export failed."""
    cmd = [sys.executable, "-c", _BOOT, str(payload), str(folder), str(opset)]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:  # no interpreter to start (a frozen application's executable is not Python)
        return UNREADABLE, f"cannot start {sys.executable}: {e}"
    with proc:
        stopped = False
        while True:
            try:
                out, _ = proc.communicate(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                stopped = stopped or (stop is not None and stop())
        text = (out or b"").decode(errors="replace").strip()
    log.debug("the export's child process (exit %s) said: %s", proc.returncode, " | ".join(text.splitlines()))
    last = text.splitlines()[-1] if text else "no output"
    if proc.returncode == UNREADABLE:
        return UNREADABLE, last
    if stopped:
        return STOPPED, last
    if proc.returncode == FAILED:
        raise OnnxExportError(f"the export in a child process failed: {last}")
    if proc.returncode != 0:  # the child never got to export (no medseg there, killed): the parent exports
        return UNREADABLE, f"the child process ended with exit {proc.returncode}: {last}"
    return DONE, last


def _class_name(model: torch.nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _payload(member: Member) -> dict:
    """What the child rebuilds the member from: the spec and the weights, not the module (smp's classes
    are made at run time in medseg.models and pickle cannot name them in another process); only tensors,
    strings and numbers, so the child reads it with ``weights_only``."""
    return {
        "spec": member.spec.to_dict(),
        "state": member.model.state_dict(),
        "model_class": _class_name(member.model),
        "classmap": member.classmap.to_json(),
        "preprocessing": member.preprocessing.to_dict(),
        "name": member.name,
    }


def _rebuild(payload: Path) -> Member:
    """The member the parent pickled, built as its spec says (no weights fetched) with its weights loaded;
    a model of another class than the parent's is refused (its export would not be the parent's)."""
    from medseg.classmap import ClassMap
    from medseg.models import create_model
    from medseg.models.spec import ModelSpec, Preprocessing

    d = torch.load(payload, weights_only=True)  # tensors, strings and numbers: nothing a pickle could run
    spec = ModelSpec.from_dict(d["spec"])
    model = create_model(spec, load_weights=False)
    if _class_name(model) != d["model_class"]:
        raise TypeError(f"the spec builds a {_class_name(model)}, the model to export is a {d['model_class']}")
    model.load_state_dict(d["state"], strict=True)
    classmap, pre = ClassMap.from_json(d["classmap"]), Preprocessing.from_dict(d["preprocessing"])
    return Member(model.eval(), spec, classmap, pre, d["name"], True)


def _who(member: Member) -> str:
    return member.name or f"{member.spec.arch} model in memory"


def _main(argv: list[str]) -> int:
    payload, folder, opset = Path(argv[0]), Path(argv[1]), int(argv[2])
    # the priority _BOOT set, for the parent's debug log (a test holds it to the lowest)
    print(f"niceness {os.nice(0) if hasattr(os, 'nice') else 'unknown'}", flush=True)
    torch.set_num_threads(1)
    try:
        member = _rebuild(payload)
    except Exception as e:  # noqa: BLE001 - told to the parent, which exports itself
        print(_one_line(e), flush=True)
        return UNREADABLE
    try:
        print(cached_onnx(member, folder, opset), flush=True)
    except Exception as e:  # noqa: BLE001 - the parent raises it as an export error
        print(_one_line(e), flush=True)
        return FAILED
    return DONE


def _one_line(e: BaseException) -> str:
    """The exception as the last line of the child's output, which the parent reports."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:_TAIL]
