"""Opening a dataset for review as one job: reopen its workspace, or create it by indexing the dataset.

:func:`iter_open_or_create` is a job of :mod:`medseg.jobs` (the app's Dataset dock runs it): it ends with
``Result(workspace)``, open and ready, or with ``Cancelled``. A cancelled create leaves no half-made
workspace (:mod:`medseg.workspace.create` removes what it wrote); reopening checks the source files in one
call that is not interrupted, and a cancel that came meanwhile closes the workspace before the job ends.
"""

from __future__ import annotations

from pathlib import Path

from medseg.jobs import CancelToken, Job, Message, Progress, Result, Started, check
from medseg.workspace.store import DB_NAME


def is_workspace(folder: str | Path) -> bool:
    return (Path(folder) / DB_NAME).is_file()


def iter_open_or_create(folder: str | Path, workspace: str | Path, *, cancel: CancelToken | None = None) -> Job:
    """Open ``folder`` if it is a workspace, else the workspace ``workspace`` if it exists, else create
    ``workspace`` from the dataset ``folder`` (``Workspace.iter_create``'s events)."""
    from medseg.workspace.workspace import Workspace

    target = Path(folder) if is_workspace(folder) else Path(workspace)
    if not is_workspace(target):
        yield from Workspace.iter_create(target, folder, cancel=cancel)
        return
    yield Started("workspace open", None, {"workspace": str(target)})
    yield Message(f"opening {target} and checking its source files")
    yield Progress(0, None, "open", str(target))
    check(cancel, what="opening the workspace")
    ws = Workspace.open(target)
    try:
        check(cancel, what="opening the workspace")
    except BaseException:
        ws.close()
        raise
    yield Result(ws)
