"""Worker processes for per-file work that Python threads cannot spread over cores (the GIL).

Decoding small PNGs, hashing and histogramming are each a few hundred microseconds of mostly Python-held
work; threads gave nothing on them. A pool of processes does, once there are enough files to pay for starting
it (each worker imports numpy and Pillow: about a second), hence ``MIN_ITEMS``.

Workers are forked on Linux from a process running one thread (a script, the CLI): nothing is imported again,
and the caller's script is not run again in the workers (which "spawn" does to a script without an
``if __name__ == "__main__":`` guard). With other threads (the napari app runs jobs in worker threads) a fork
could copy a lock another thread holds, so there they are spawned. Work is sent in chunks (one pickle per
chunk, not per file) and results come back in the order asked, so a pooled run stores what a serial one does.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

from medseg.errors import MedsegError

_CURRENT: ContextVar[Executor | None] = ContextVar("medseg_process_pool", default=None)
MIN_ITEMS = 2000  # fewer files than this are done in the calling process: starting workers costs more
CHUNK = 256  # files a task: large enough that pickling is a small part of it, small enough to cancel quickly


def default_workers() -> int:
    """One worker a core this process may use (the caller's own process mostly waits on them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def worker_pool(items: int, workers: int | None = None) -> Iterator[Executor | None]:
    """A process pool for ``items`` files, or None where the work is better done here: ``workers`` 0 or 1,
    a single core, or (``workers`` None, chosen here) fewer than ``MIN_ITEMS`` files. Leaving the block waits
    for the running tasks and drops the queued ones, so nothing a worker writes lands after it."""
    n = default_workers() if workers is None else workers
    if n <= 1 or (workers is None and items < MIN_ITEMS):
        yield None
        return
    pool = executor(n)
    try:
        # start the workers now, while the caller holds little: a forked worker's copy of what its parent
        # held grows as reference counts and the collector write to it (a create's file listings)
        list(pool.map(int, range(n)))
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def executor(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """``workers`` processes, forked or spawned as the module doc says; ``initializer(*initargs)`` runs in each
    as it starts (what a worker keeps for all its tasks: QC's open workspace, :mod:`medseg.qc.pool`)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(_start_method()),
        initializer=initializer,
        initargs=initargs,
    )


@contextmanager
def using(pool: Executor | None) -> Iterator[None]:
    """Make ``pool`` what :func:`current` gives inside the block (for code behind an interface that does not
    pass one, as a dataset layout's ``index(root)``)."""
    token = _CURRENT.set(pool)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Executor | None:
    return _CURRENT.get()


def _start_method() -> str:
    alone = threading.active_count() == 1
    return "fork" if sys.platform.startswith("linux") and alone else "spawn"


def chunked(items: Sequence, size: int | None = None) -> list[Sequence]:
    size = size or CHUNK
    return [items[i : i + size] for i in range(0, len(items), size)]


def ordered_map(pool: Executor | None, fn: Callable, chunks: Iterable, ahead: int | None = None) -> Iterator:
    """``fn(chunk)`` for each chunk, in order: in ``pool`` with at most ``ahead`` chunks queued besides the one
    waited for (bounded memory; chunks are drawn from the iterable only as results are taken), or here when
    ``pool`` is None. Closing the generator cancels the chunks queued and not started."""
    if pool is None:
        yield from map(fn, chunks)
        return
    ahead = ahead or 2 * default_workers() + 2
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(fn, chunk))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def portable(e: BaseException) -> BaseException:
    """``e`` if it survives a pickle round trip (the way back from a worker), else a MedsegError with its
    message: an exception whose ``__init__`` takes other arguments than its ``args`` (ReadError(path, reason))
    would otherwise reach the caller as a TypeError about unpickling, hiding which file was wrong."""
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # noqa: BLE001 - any failure to travel is the same failure
        return MedsegError(str(e))
    return e
