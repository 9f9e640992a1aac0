"""Opening a dataset for review as one job: reopen its workspace, or create it by indexing the dataset.

:func:`iter_open_or_create` is a job of :mod:`medseg.jobs` (the app's Dataset dock runs it): it ends with
``Result(workspace)``, open and ready, or with ``Cancelled``. A cancelled create leaves no half-made
workspace (:mod:`medseg.workspace.create` removes what it wrote); reopening checks the source files in one
call that is not interrupted, and a cancel that came meanwhile closes the workspace before the job ends.

With ``verify="none"`` the reopen checks nothing (the app: its first sample is on screen without waiting
for 100,000 stats, 4.4 s at 20,000 samples) and :func:`iter_check_sources` checks them afterwards as a job
of its own, a chunk of samples at a time without the workspace's lock held (the app reads the workspace
meanwhile), ending with ``Result(changes)`` and ``workspace.source_changes`` set.
"""

from __future__ import annotations

from pathlib import Path

from medseg.jobs import CancelToken, Job, Message, Progress, Result, Started, check
from medseg.workspace.sources import HashCache, find_changes
from medseg.workspace.store import DB_NAME

CHECK_CHUNK = 500  # samples checked between progress events and cancel checks


def is_workspace(folder: str | Path) -> bool:
    return (Path(folder) / DB_NAME).is_file()


def iter_open_or_create(
    folder: str | Path, workspace: str | Path, *, verify: str = "stat", cancel: CancelToken | None = None
) -> Job:
    """Open ``folder`` if it is a workspace, else the workspace ``workspace`` if it exists, else create
    ``workspace`` from the dataset ``folder`` (``Workspace.iter_create``'s events). ``verify``: the reopen's
    source check (``Workspace.open``); "none" leaves it to :func:`iter_check_sources`."""
    from medseg.workspace.workspace import Workspace

    target = Path(folder) if is_workspace(folder) else Path(workspace)
    if not is_workspace(target):
        yield from Workspace.iter_create(target, folder, cancel=cancel)
        return
    yield Started("workspace open", None, {"workspace": str(target)})
    yield Message(f"opening {target}" + ("" if verify == "none" else " and checking its source files"))
    yield Progress(0, None, "open", str(target))
    check(cancel, what="opening the workspace")
    ws = Workspace.open(target, verify=verify)
    try:
        check(cancel, what="opening the workspace")
    except BaseException:
        ws.close()
        raise
    yield Result(ws)


def iter_check_sources(workspace, *, verify: str = "stat", cancel: CancelToken | None = None) -> Job:
    """Compare every sample's source files with what was recorded (``Workspace.open``'s check, run later):
    ``Progress`` per chunk, then ``Result(changes)``; ``workspace.source_changes`` holds them and refreshed
    stats are stored. Cancelled: nothing is set or stored."""
    yield Started("source check", None, {"workspace": str(workspace.root)})
    rows = workspace.source_rows()
    root, n = workspace.dataset_root, len(rows)
    changes, restat, cache = [], {}, HashCache()
    for start in range(0, n, CHECK_CHUNK):
        check(cancel, start, n, "checking source files")
        found, moved = find_changes(rows[start : start + CHECK_CHUNK], root, verify, cache)
        changes += found
        restat.update(moved)
        yield Progress(min(start + CHECK_CHUNK, n), n, "check", None)
    check(cancel, n, n, "checking source files")
    workspace.store_restat(restat)
    workspace.source_changes = changes
    yield Result(changes)
