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


def trim_when_idle() -> None:
    """Release free memory once ``IDLE_MS`` pass without another call (main thread)."""
    global _TIMER
    if _TIMER is None:
        from qtpy.QtCore import QTimer

        _TIMER = QTimer()
        _TIMER.setSingleShot(True)
        _TIMER.setInterval(IDLE_MS)
        _TIMER.timeout.connect(lambda: release_free_memory())
    _TIMER.start()


def postpone_trim() -> None:
    """A prediction starts: no trim under it (main thread)."""
    if _TIMER is not None:
        _TIMER.stop()
