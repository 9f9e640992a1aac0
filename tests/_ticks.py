"""How long the Qt event loop goes without running: the gaps between ticks of a 10 ms QTimer.

A frozen viewer is a long gap. The test suite and the responsiveness
benchmark share this so they measure the same thing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from qtpy.QtCore import QTimer


@dataclass
class TickMonitor:
    interval_ms: int = 10
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._timer = QTimer()
        self._timer.setInterval(self.interval_ms)
        self._timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def start(self) -> TickMonitor:
        self.times.clear()
        self.times.append(time.perf_counter())
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        self.times.append(time.perf_counter())

    def gaps_ms(self) -> list[float]:
        return [1000 * (b - a) for a, b in zip(self.times, self.times[1:])]

    def max_gap_ms(self) -> float:
        return max(self.gaps_ms(), default=0.0)

    def worst(self, n: int = 5) -> list[float]:
        return sorted(self.gaps_ms(), reverse=True)[:n]


class MainThreadCalls:
    """Counts calls of a function on the GUI thread (which must stay free of model work)."""

    def __init__(self, monkeypatch, owner, name: str):
        self.main, self.other = 0, 0
        original = getattr(owner, name)
        gui = threading.main_thread()

        def wrapped(*args, **kwargs):
            if threading.current_thread() is gui:
                self.main += 1
            else:
                self.other += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)
