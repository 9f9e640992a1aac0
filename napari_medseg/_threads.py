"""CPU threads for model work started from the viewer: one core is left to the GUI.

torch uses every core by default; on a small machine a prediction worker or a
training child process then starves the GUI thread and napari's drawing, and
the viewer stutters (benchmarks/bench_gui_responsiveness.py measured 2.5x the
idle worst gap with all cores busy). Training started from a shell is not
affected: these limits apply to work the widgets start.
"""

from __future__ import annotations

import os


def compute_threads() -> int:
    """Cores for model work: all but one (at least one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, cores - 1)


def limit_torch_threads() -> None:
    """Apply ``compute_threads`` to this process's torch (called in the worker before predicting)."""
    from napari_medseg._torch_guard import load_torch

    load_torch()  # done by the caller that predicts; cheap again
    import torch

    n = compute_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def child_thread_env() -> dict[str, str]:
    """Environment for a training child process, so it leaves one core to the viewer."""
    n = str(compute_threads())
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
