"""Where the Dataset dock keeps a dataset's workspace: beside the dataset, ``<dataset>.medseg``.

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
