"""Probes for timing the real napari window: resident memory sampled in a thread, draw events, cProfile blocks."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RssSampler(threading.Thread):
    """The peak resident memory since the last ``reset`` (sampled every 10 ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.01)

    def reset(self) -> int:
        self.peak = rss_bytes()
        return self.peak


class Draws:
    """Times of the canvas's draw events."""

    def __init__(self, viewer) -> None:
        self.times: list[float] = []
        viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(
            lambda _e: self.times.append(time.perf_counter())
        )

    def after(self, t: float) -> float | None:
        return next((d for d in self.times if d >= t), None)


def profiled(enabled: bool):
    """A context that profiles the block when ``enabled`` and prints the top 15 lines by own time."""

    class _P:
        def __init__(self, title: str) -> None:
            self.title = title
            self.prof = cProfile.Profile() if enabled else None

        def __enter__(self):
            if self.prof is not None:
                self.prof.enable()
            return self

        def __exit__(self, *exc) -> None:
            if self.prof is not None:
                self.prof.disable()
                print_profile(self.title, self.prof)

    return _P


def print_profile(title: str, prof: cProfile.Profile, lines: int = 25) -> None:
    sort = "cumulative" if "made" in title else "tottime"
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(sort).print_stats(lines)
    print(f"--- profile: {title}", file=sys.stderr)
    print("\n".join(out.getvalue().splitlines()[4:]), file=sys.stderr, flush=True)
