"""Memory freed by worker threads (a prediction's activations) is given back once predictions pause."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from napari_medseg import _memory

pytestmark = pytest.mark.gui


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_what_a_thread_freed_goes_back_to_the_system():
    def churn():  # many blocks below the mmap threshold, freed: glibc keeps them in this thread's arena
        blocks = [np.ones(64 * 1024, np.uint8) for _ in range(3000)]
        del blocks

    t = threading.Thread(target=churn)
    t.start()
    t.join()
    kept = _resident()
    assert _memory.release_free_memory()
    assert kept - _resident() > 100e6  # most of the ~200 MB the thread had freed


def test_the_trim_waits_until_predictions_pause(qtbot, monkeypatch):
    calls = []
    monkeypatch.setattr(_memory, "release_free_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(_memory, "IDLE_MS", 50)
    monkeypatch.setattr(_memory, "_TIMER", None)
    _memory.trim_when_idle()
    _memory.postpone_trim()  # a prediction started: none under it
    qtbot.wait(150)
    assert calls == []
    for _ in range(3):  # a burst of predictions ending: one trim after the last
        _memory.trim_when_idle()
        qtbot.wait(10)
    qtbot.waitUntil(lambda: calls == [1], timeout=2000)
    qtbot.wait(150)
    assert calls == [1]
