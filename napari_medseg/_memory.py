"""Memory a finished prediction freed, given back to the system once predictions pause.

A prediction runs in a thread worker, and glibc's allocator keeps what a thread
frees in that thread's own arena for its next allocations instead of returning
it: a model's activations (a 2.5-D PlainUNet on 512x512 slices: about 150 MB a
forward pass) stay resident in every worker thread that ever predicted. Measured
in benchmarks/bench_volume_review.py: after eight live predictions of CT slices
the viewer held 511 MB more than it used; ``malloc_trim(0)`` gave it back.
Trimming after every prediction would make the next one fault those pages in
again (about 10 % of a small model's forward pass), so :func:`trim_when_idle`
waits until no prediction has ended for ``IDLE_MS``. Where the C library has no
``malloc_trim`` (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

IDLE_MS = 1500
_TRIM: Any = None  # the C function, False when the C library has none
_TIMER: Any = None


def release_free_memory() -> bool:
    """Give the allocator's free memory back to the system now; False where that cannot be done."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            _TRIM.argtypes, _TRIM.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _TRIM = False
    if not _TRIM:
        return False
    _TRIM(0)
    return True


class IdleTrim:
    """Calls ``release`` once ``interval_ms`` pass without another :meth:`idle` (main thread), in a thread of
    its own: ``malloc_trim`` walks every arena (50-100 ms measured under the fine-tuning benchmark), and ctypes
    lets go of the interpreter lock while it runs, so only the event loop would have waited for it."""

    def __init__(self, interval_ms: int, release=release_free_memory):
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(
            lambda: threading.Thread(target=release, name="medseg-malloc-trim", daemon=True).start()
        )

    def idle(self) -> None:
        self._timer.start()

    def postpone(self) -> None:
        self._timer.stop()


def trim_when_idle() -> None:
    """A prediction ended: release free memory once ``IDLE_MS`` pass without another (main thread)."""
    global _TIMER
    if _TIMER is None:
        _TIMER = IdleTrim(IDLE_MS)
    _TIMER.idle()


def postpone_trim() -> None:
    """A prediction starts: no trim under it (main thread)."""
    if _TIMER is not None:
        _TIMER.postpone()
