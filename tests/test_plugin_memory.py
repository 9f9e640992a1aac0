"""Memory freed by worker threads (a prediction's activations) is given back once predictions pause."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from napari_medseg import _memory

pytestmark = pytest.mark.gui
MAIN = threading.main_thread()


# Run in a fresh interpreter: in a long test session the allocator's arenas already hold free memory of
# earlier tests, and how much a thread's churn adds to the resident size (and trimming gives back) varies.
_CHURN = """
import threading
import numpy as np
from napari_medseg import _memory

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def churn():  # many blocks below the mmap threshold, freed: glibc keeps them in this thread's arena
    blocks = [np.ones(64 * 1024, np.uint8) for _ in range(3000)]
    del blocks

before = resident()
t = threading.Thread(target=churn)
t.start()
t.join()
kept = resident()
assert _memory.release_free_memory()
print(before, kept, resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_what_a_thread_freed_goes_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", _CHURN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, kept, after = (int(v) for v in done.stdout.split())
    assert kept - before > 50e6  # the thread's freed blocks stayed resident (glibc keeps them in its arena)
    assert kept - after > 0.8 * (kept - before)  # and the trim gave most of them back


def test_the_trim_waits_until_predictions_pause(qtbot):
    # its own IdleTrim: predictions of earlier tests ending now reach the module's timer, not this one
    calls = []
    # 1 per trim, made off the GUI thread (the event loop does not wait for it)
    trim = _memory.IdleTrim(50, release=lambda: calls.append(int(threading.current_thread() is not MAIN)) or True)
    trim.idle()
    trim.postpone()  # a prediction started: none under it
    qtbot.wait(150)
    assert calls == []
    for _ in range(3):  # a burst of predictions ending: one trim after the last
        trim.idle()
        qtbot.wait(10)
    qtbot.waitUntil(lambda: calls == [1], timeout=2000)
    qtbot.wait(150)
    assert calls == [1]


def test_predictions_ending_and_starting_drive_the_shared_timer(qtbot):
    _memory.trim_when_idle()
    shared = _memory._TIMER
    assert isinstance(shared, _memory.IdleTrim) and shared._timer.isActive()
    assert shared._timer.interval() == _memory.IDLE_MS
    _memory.postpone_trim()
    assert not shared._timer.isActive()
    _memory.trim_when_idle()
    assert _memory._TIMER is shared and shared._timer.isActive()
