"""The Dataset dock's jobs: where a dataset's workspace lives, and the worker body that opens (or creates) it,
stopping on a cancel token at the engine's next step (QC is ``medseg.qc.run_qc`` itself, run by ``start_job``).

A cancelled create leaves no half-made workspace (``iter_create`` removes what it wrote when it is closed
before its end). Reopening checks the source files in one engine call, which is not
interrupted: a cancel during it closes the workspace as soon as it returns.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from napari_medseg._jobs import CANCELLED, JobFailed, cancellable

WORKSPACE_SUFFIX = ".medseg"


def is_workspace(folder: str | Path) -> bool:
    from medseg.workspace.store import DB_NAME

    return (Path(folder) / DB_NAME).is_file()


def default_workspace(folder: str | Path) -> Path:
    """``folder`` itself when it is a workspace, else ``<folder>.medseg`` beside it."""
    folder = Path(folder).expanduser().absolute()
    return folder if is_workspace(folder) else folder.with_name(folder.name + WORKSPACE_SUFFIX)


def open_or_create(folder: Path, workspace: Path, cancel: Any) -> Generator[Any, None, Any]:
    """Worker body: progress events, returning the opened or newly created Workspace, or ``CANCELLED``."""
    from medseg.workspace import CreateProgress, Workspace

    target = folder if is_workspace(folder) else workspace
    if is_workspace(target):
        yield CreateProgress("open", 0, 0, message=f"opening {target} and checking its source files")
        if cancel.is_set():
            return CANCELLED
        ws = Workspace.open(target)
        if cancel.is_set():
            ws.close()
            return CANCELLED
        return ws
    result = yield from cancellable(Workspace.iter_create(target, folder), cancel,
                                    lambda e: isinstance(e, Workspace))
    if result is None:
        raise JobFailed(f"creating the workspace {target} ended without a workspace")
    return result

