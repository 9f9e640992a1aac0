"""Where the Dataset dock keeps a dataset's workspace: beside the dataset, ``<dataset>.medseg``; and room for
the long jobs that run beside the user's work on a large one.

The dock's jobs are the engine's own (``medseg.workspace.open_job.iter_open_or_create``, ``medseg.qc.run_qc``),
run by ``napari_medseg._jobs.start_job``.
"""

from __future__ import annotations

from pathlib import Path

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
