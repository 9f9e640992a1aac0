"""Where the Dataset dock keeps a dataset's workspace: beside the dataset, ``<dataset>.medseg``; and how the
long jobs on a large one (the Overview, the source check) run beside the user's work without holding it up:
a thread of their own in Qt's pool (:func:`leave_threads_for_moves`), and a pause while a job the user waits
for runs (:func:`beside_the_user`).

The dock's jobs are the engine's own (``medseg.workspace.open_job.iter_open_or_create``, ``medseg.qc.run_qc``),
run by ``napari_medseg._jobs.start_job``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medseg.workspace.open_job import is_workspace

WORKSPACE_SUFFIX = ".medseg"


def default_workspace(folder: str | Path) -> Path:
    """``folder`` itself when it is a workspace, else ``<folder>.medseg`` beside it."""
    folder = Path(folder).expanduser().absolute()
    return folder if is_workspace(folder) else folder.with_name(folder.name + WORKSPACE_SUFFIX)


# Jobs that run for minutes on 100,000 samples beside the user's work: the Overview and the source check.
LONG_JOBS = 2


def leave_threads_for_moves() -> None:
    """Give Qt's global thread pool a thread for each long job on top of one a core.

    napari's workers share that pool, which has as many threads as cores: on 2 cores the Overview and the
    source check of a large workspace filled it, and a sample's load waited for one of them to end (a Next
    press took 12 s at 20,000 samples). Called before a long job starts; never lowers a larger setting."""
    from qtpy.QtCore import QThread, QThreadPool

    pool = QThreadPool.globalInstance()
    wanted = max(1, QThread.idealThreadCount()) + LONG_JOBS
    if pool.maxThreadCount() < wanted:
        pool.setMaxThreadCount(wanted)


# The jobs a person waits for: a sample's read (to show it, or its facts), a save, the review queue
# (napari_medseg._jobs names them so).
SHOWING_SAMPLE = "Showing sample "  # napari_medseg._sample_layers.show_sample's read: it ends once the sample is shown
FOREGROUND = ("Reading ", SHOWING_SAMPLE, "Saving ", "Building the review queue")
PAUSE_S = 0.02


def user_waits(jobs: Any) -> bool:
    """Whether a job the user waits for runs in ``jobs`` (a session's :class:`napari_medseg._jobs.Jobs`)."""
    return any(j.name.startswith(FOREGROUND) for j in list(jobs.running()))


def showing_sample(jobs: Any) -> bool:
    """Whether a sample is being read to be shown (:func:`napari_medseg._sample_layers.show_sample`'s job, which
    ends once the sample is on screen) in ``jobs``."""
    return any(j.name.startswith(SHOWING_SAMPLE) for j in list(jobs.running()))


def beside_the_user(events: Iterable[Any], jobs: Any, cancel: Any) -> Iterator[Any]:
    """The events of a long job, which pauses after each while a job the user waits for runs; a cancel ends
    the pause. Python threads share one interpreter lock: the Overview's reading threads beside a sample's
    read made it wait seconds (12.5 s for a Next press at 20,000 samples on 2 loaded cores)."""
    for event in events:
        yield event
        while user_waits(jobs) and not cancel.is_set():
            time.sleep(PAUSE_S)
