"""Where the GUI thread was during each long event-loop gap, and a phase's gaps between ticks.

A sampler thread looks at the GUI thread's stack whenever no tick of the 10 ms tick monitor has come for
40 ms and names its innermost frame: ``ours`` when that frame is napari-medseg's own code, ``LIB called
from ours`` when a library (napari updating a layer) does the work our code asked for, else the library
alone. Used by ``bench_gui_responsiveness.py``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = (str(REPO / "napari_medseg"), str(REPO / "src" / "medseg"))


class Sampler(threading.Thread):
    """Records the GUI thread's stack whenever the tick monitor has been silent for ``stall_ms``."""

    def __init__(self, ticks, stall_ms: float = 40.0):
        super().__init__(daemon=True)
        self.ticks, self.stall = ticks, stall_ms / 1000
        self.main_id = threading.main_thread().ident
        self.samples: list[tuple[float, str]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            time.sleep(0.01)
            times = self.ticks.times
            if times and time.perf_counter() - times[-1] > self.stall:
                stack = main_stack(self.main_id)
                if stack:
                    self.samples.append((time.perf_counter(), where(stack)))


def main_stack(thread_id: int) -> list[tuple[str, int, str]]:
    """(file, line, function) of a thread's frames, outermost first, holding its frames for microseconds.

    A frame object kept by another thread keeps that frame's locals alive after the function returns:
    a QPainter made in a paintEvent then stays active past the paint and is destroyed later from this
    thread, and Qt crashes ("QPaintDevice: Cannot destroy paint device that is being painted"; seen
    in about one run in four when this sampler used ``traceback.extract_stack``, which reads source
    files and so lets the GUI thread run on while it holds the frames). So: no file reading, plain
    attribute reads, and every reference dropped at once.
    """
    frame = sys._current_frames().get(thread_id)
    out = []
    while frame is not None:
        out.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    del frame
    return out[::-1]


def where(raw: list[tuple[str, int, str]]) -> str:
    # the benchmark's own event pumping is the driver, not the product: it never counts as ours
    stack = [
        traceback.FrameSummary(f, line, name, lookup_line=False)
        for f, line, name in raw
        if not f.endswith("_headless.py")
    ]
    if not stack:
        return "Qt event loop (inside processEvents: drawing, or waiting for the GIL)"
    inner = stack[-1]
    parts = Path(inner.filename).parts
    lib = parts[parts.index("site-packages") + 1] if "site-packages" in parts else Path(inner.filename).name
    if inner.filename.startswith(OURS):
        return f"ours: {Path(inner.filename).name}:{inner.lineno} {inner.name}"
    for f in reversed(stack):
        if f.filename.startswith(OURS):  # a library doing the work, asked by our code
            return f"{lib} called from ours: {Path(f.filename).name}:{f.lineno} {f.name}"
    return f"{lib}: {Path(inner.filename).name}:{inner.lineno} {inner.name}"


def phase_report(name: str, ticks, sampler, t0: float, t1: float, skip=()) -> dict:
    """The gaps between ticks from ``t0`` to ``t1``, leaving out those overlapping a ``skip`` interval
    (the benchmark's own forward passes on the GUI thread)."""
    times = [t for t in ticks.times if t0 <= t <= t1]
    pairs = [(a, b) for a, b in pairwise(times) if not any(a < e and s < b for s, e in skip)]
    gaps = [1000 * (b - a) for a, b in pairs]
    long = [(a, b) for a, b in pairs if b - a > 0.05]
    blamed = Counter()
    for a, b in long:
        inside = [w for t, w in sampler.samples if a <= t <= b]
        blamed[Counter(inside).most_common(1)[0][0] if inside else "(no sample)"] += 1
    p99 = statistics.quantiles(gaps, n=100)[98] if len(gaps) >= 100 else max(gaps, default=0)
    return {
        "phase": name,
        "ticks": len(times),
        "max": max(gaps, default=0.0),
        "p99": p99,
        "over50": len(long),
        "ours_over50": sum(n for w, n in blamed.items() if w.startswith("ours")),
        "via_ours_over50": sum(n for w, n in blamed.items() if " called from ours" in w),
        "blamed": blamed,
    }
