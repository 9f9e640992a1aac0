"""QC's decoding pass and the pair work of the checks that compare samples, in worker processes.

Decoding a sample and running the per-sample checks is numpy, scipy and PIL
work on small arrays, where the interpreter's own per-call cost is most of
the time and threads wait on the GIL (a second decoding thread gave nothing on
this 2-core machine). Worker processes each open the source themselves (a
workspace read-only, without its source check: the parent's check is handed
over), examine chunks of samples with the same function the serial pass uses,
and send back each sample's findings, measures and timings. The parent
receives chunks in sample order, at most ``2 * processes`` in flight, so
memory stays bounded and a cancel stops the pass between samples. The same
processes then take the pair work of the dataset-wide checks (:meth:`Workers.map`):
neighbour fit's camera moves (:mod:`medseg.qc.signal_neighbours`) and the
duplicate checks' confirmation and judgement of hash candidates
(:mod:`medseg.qc.duplicates_disagree`), each task carrying the thumbnails it needs.

The processes are those of :mod:`medseg.process_pool` (forked from a process running one thread, spawned
from the app, which runs QC in a thread), each started with :func:`_start`. A forked worker never touches
the parent's open workspace: it opens its own and leaves through ``os._exit``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medseg import process_pool

CHUNK = 64  # samples a task: findings and small measures back (pictures go to the worker's file), ~0.5 s of work
MIN_SAMPLES = 1000  # below this, spawning processes (about a second each) costs more than it saves


def default_processes() -> int:
    """Every CPU (the parent mostly waits on the workers), at most 4: each worker holds ~120 MB (its
    imports and a chunk's decoded samples), and QC keeps to 1 GB in all."""
    return min(4, os.cpu_count() or 1)


def use_pool(processes: int, n: int, minimum: int = MIN_SAMPLES) -> bool:
    return processes > 1 and n >= minimum


def _recipe(src) -> tuple:
    """What a worker needs to open the same source: picklable, without the parent's open connection."""
    if getattr(src, "in_workspace", False):
        return ("workspace", str(src.root), sorted(src._missing), sorted(src._changed))
    return ("dataset", src.dataset)


_STATE: dict = {}


def _start(
    recipe: tuple, check_names: list[str], features: list[str], params: dict, names: set[str], folder: str
) -> None:
    from medseg.qc.checks_registry import CHECKS
    from medseg.qc.examine import examiner
    from medseg.qc.sources import DatasetSource, WorkspaceSource

    if recipe[0] == "workspace":
        from medseg.workspace import Workspace

        _, root, missing, changed = recipe
        ws = Workspace.open(Path(root), verify="none")
        src = WorkspaceSource(ws)
        src._missing, src._changed = set(missing), set(changed)
        _STATE["ws"] = ws
    else:
        src = DatasetSource(recipe[1])
    per_sample = [CHECKS[name] for name in check_names]
    _STATE["path"] = path = os.path.join(folder, f"{os.getpid()}.bin")
    _STATE["fd"], _STATE["end"] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), 0
    _STATE["examine"] = examiner(src, per_sample, features, params, names)


def _chunk(ids: list[str]) -> list[tuple]:
    import pickle

    from medseg.qc.spill import SPILLED, Written

    examine = _STATE["examine"]
    out = []
    for sid in ids:
        found, measured, spent = examine(sid)
        for key in SPILLED & measured.keys():  # the picture-holding measures go to this worker's own file
            blob = memoryview(pickle.dumps(measured[key], protocol=pickle.HIGHEST_PROTOCOL))
            at, done = _STATE["end"], 0
            while done < len(blob):
                done += os.pwrite(_STATE["fd"], blob[done:], at + done)
            measured[key] = Written(_STATE["path"], at, len(blob))
            _STATE["end"] = at + len(blob)
        out.append((sid, (found, measured, spent)))
    return out


class Workers:
    """The worker processes of one QC run: the decoding pass (:meth:`examine`), then the pair work of the
    checks that compare samples (:meth:`map`). Closing it stops them, dropping what has not started."""

    def __init__(self, src, per_sample, features: list[str], params: dict, names: set[str], processes: int):
        # each worker's file of measures (medseg.qc.spill.Written), removed when the pool closes: the
        # parent's tables keep them open until they close
        self._folder = tempfile.mkdtemp(prefix="medseg-qc-")
        init = (_recipe(src), [c.name for c in per_sample], list(features), params, set(names), self._folder)
        self.processes = processes
        self._pool = process_pool.executor(processes, _start, init)

    def map(self, fn, tasks) -> Iterator:
        """``fn(task)`` for each task (``fn`` a module-level function), in order, at most ``2 * processes``
        in flight; tasks are drawn from the iterable only as results are taken."""
        return process_pool.ordered_map(self._pool, fn, tasks, 2 * self.processes - 1)

    def examine(self, ids: list[str]) -> Iterator[tuple]:
        """(sample id, (findings, measures, timings)) for every id in order."""
        for done in self.map(_chunk, (ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK))):
            yield from done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._folder, ignore_errors=True)
