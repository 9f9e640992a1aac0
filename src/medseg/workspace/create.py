"""Making a workspace: index the dataset, hash its files, import every mask as revision 1.

The imported revision is the mask as the layout reads it (``Sample.load_mask``):
class ids for id masks, 0/1 for grey binary masks. Binarising a grey mask
re-assigns pixels; its ``BinariseReport`` goes into the revision's note
(one sentence) and details (the whole report), so "42 grey levels -> background"
is visible in the history. The raw values are not lost: the source file's
SHA-256 is kept and ``Workspace.source_sample(id)`` reads the file again, which
is what QC's grey-noise check looks at.

Samples whose files the indexer could not use, and samples whose mask cannot be
decoded, are stored as findings with source "index" (they have no revision).

A volume sample (CT, MRI) imports its label volume slice by slice, one blob per
distinct slice (:mod:`medseg.workspace.volumes`); a label off its image's grid is a
``grid_mismatch`` finding (:mod:`medseg.workspace.volume_import`).

``iter_create`` is a job of :mod:`medseg.jobs`: ``Progress`` of the stages "index",
"import" (one per sample) and "commit", a ``Message`` per mask that cannot be
imported, then ``Result(workspace)``. The workspace is marked "creating" until
the one final transaction marks it "ready"; a create that is cancelled, closed
early or fails removes what it wrote. A killed one
cannot: its folder keeps the "creating" state, and every message about it says
the one thing to do, create it again (:func:`interrupted_message`); that create
replaces the unfinished workspace (unless the process that made it still runs).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import medseg
from medseg.datasets.dataset import PROBLEM_SEVERITY
from medseg.errors import WorkspaceError
from medseg.findings import WARNING, Finding
from medseg.io.loader import suffix_of
from medseg.jobs import CancelToken, Message, Progress, Result, Started, check
from medseg.process_pool import worker_pool
from medseg.workspace import volume_import
from medseg.workspace.annotations import finding_rows, insert_findings
from medseg.workspace.blobs import BlobStore
from medseg.workspace.create_import import iter_imported, sample_row
from medseg.workspace.records import IMPORTED, UNREVIEWED
from medseg.workspace.sources import HashCache
from medseg.workspace.store import DB_NAME, connect, now, write
from medseg.workspace.volumes import insert_slices


def refuse_inside(ws: Path, dataset_root: Path, *, discover: bool = True) -> None:
    """DestinationError when ``ws`` is, is inside or holds the dataset it reviews, or (``discover``) lies in
    another dataset's source folders or another workspace (:mod:`medseg.destinations`)."""
    from medseg.destinations import check_destination

    check_destination(ws, sources=[(dataset_root, "the dataset it reviews")], purpose="a workspace", discover=discover)


def interrupted_message(root: Path, dataset_root: str | None) -> str:
    """What every message about a workspace whose create was killed says: the one thing to do."""
    return (
        f"{root}: creating this workspace was interrupted before it finished; create it again with "
        f"`medseg workspace create {dataset_root or 'DATASET'} {root}` (Workspace.create in Python), "
        "which replaces the unfinished workspace"
    )


def creating_elsewhere(meta: dict) -> bool:
    """True when the create that marked this workspace "creating" still runs (in another process)."""
    from medseg.folder_swap import owner_alive

    tag = meta.get("create_owner")
    return bool(tag) and owner_alive(tag) is True


def _clear_interrupted(ws_root: Path) -> None:
    """Remove what a killed create left (state "creating", its process gone) so that this create starts over."""
    import sqlite3

    db = ws_root / DB_NAME
    if not db.is_file():
        return
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not a database we can read: "already a workspace" or the open names what is wrong
    if meta.get("state") != "creating":
        return
    if creating_elsewhere(meta):
        raise WorkspaceError(
            f"{ws_root}: another medseg process is creating this workspace right now; "
            "open it when that create has finished"
        )
    _remove_partial(ws_root, made_folder=False)


def default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def iter_create(
    path,
    dataset_root,
    *,
    layout=None,
    group_by="auto",
    author=None,
    open_workspace,
    cancel: CancelToken | None = None,
    workers: int | None = None,
):
    """``Workspace.iter_create``'s body; ``open_workspace(root, verify=)`` opens the finished workspace
    (passed in, so this module never imports the Workspace class that imports it). ``workers``: processes
    for the per-file work (:func:`medseg.process_pool.worker_pool`: None chooses, 0 or 1 does it here)."""
    from medseg.datasets import open_dataset

    ws_root, given = Path(path).absolute(), Path(dataset_root).absolute()
    _clear_interrupted(ws_root)
    if (ws_root / DB_NAME).exists():
        raise WorkspaceError(
            f"{ws_root}: already a workspace; open it (medseg workspace info {ws_root}, Workspace.open)"
        )
    refuse_inside(ws_root, given)
    if ws_root.exists() and (not ws_root.is_dir() or any(ws_root.iterdir())):
        raise WorkspaceError(f"{ws_root}: exists and is not an empty folder; a workspace needs a new or empty one")
    yield Started("workspace create", None, {"dataset": str(given), "workspace": str(ws_root)})
    yield Message(f"indexing {given}")
    yield Progress(0, None, "index", str(given))
    check(cancel, what="workspace create")
    with ExitStack() as stack:
        # the pool is sized by the dataset's files, which indexing lists; started once for grouping and import
        pool = stack.enter_context(worker_pool(_count_files(given), workers))
        ds = open_dataset(given, layout, group_by=group_by, pool=pool)
        root = ds.root.absolute()
        refuse_inside(ws_root, root)
        if not ds.samples:
            raise _nothing_to_review(ds)
        yield from _write(ws_root, ds, root, group_by, author or default_author(), open_workspace, cancel, pool)


def _write(ws_root: Path, ds, root: Path, group_by: str, author: str, open_workspace, cancel, pool):
    from medseg.folder_swap import owner_tag

    made_folder = not ws_root.exists()
    ws_root.mkdir(parents=True, exist_ok=True)
    conn = None
    try:
        conn = connect(ws_root / DB_NAME, create=True)
        with write(conn):
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("state", "creating"),
                    ("dataset_root", str(root)),
                    ("layout", ds.layout),
                    ("group_by", group_by),
                    ("classmap", ds.classmap.to_json()),
                    ("created", now()),
                    ("created_by", author),
                    ("medseg_version", medseg.__version__),
                    ("create_owner", owner_tag()),
                ],
            )
        samples, findings = [], [_problem_finding(p) for p in ds.problems]
        yield from _import(ds, root, BlobStore(ws_root / "masks"), samples, findings, cancel, pool)
        _stop(pool)
        yield Message("writing the workspace database")
        yield Progress(len(samples), len(samples), "commit")
        check(cancel, len(samples), len(samples), "workspace create")
        _commit(conn, samples, finding_rows(findings, "index"), author)
        conn.close()
        conn = None
        ws = open_workspace(ws_root, verify="none")
    except BaseException:
        if conn is not None:
            conn.close()
        _stop(pool)  # before removing: no worker writes a blob after
        _remove_partial(ws_root, made_folder)
        raise
    yield Result(ws)


def _stop(pool) -> None:
    """Wait for the tasks a worker runs, drop the queued ones (shutting down twice is harmless)."""
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _count_files(folder: Path, limit: int = 2 * 10**6) -> int:
    """About how many files ``folder`` holds (two levels down, at most ``limit``): enough to choose whether
    worker processes pay for themselves, without indexing it twice."""
    n = 0
    try:
        with os.scandir(folder) as top:
            for entry in top:
                n += 1
                if entry.is_dir(follow_symlinks=False):
                    with os.scandir(entry.path) as sub:
                        n += sum(1 for _ in sub)
                if n >= limit:
                    break
    except OSError:
        pass  # indexing names what is wrong
    return n


def _nothing_to_review(ds) -> WorkspaceError:
    """A workspace of no samples would be created without a word and reviewed in vain: refused, nothing
    written, the dataset's problems named (e.g. volumes in a 2-D layout)."""
    shown = "; ".join(f"{p.path}: {p.message}" for p in ds.problems[:5])
    more = f" (and {len(ds.problems) - 5} more problems: medseg index {ds.root})" if len(ds.problems) > 5 else ""
    why = f": {shown}{more}" if shown else ": no image was found"
    return WorkspaceError(f"{ds.root}: no sample to review in this {ds.layout} dataset, no workspace created{why}")


def _import(ds, root: Path, blobs: BlobStore, samples: list, findings: list, cancel: CancelToken | None, pool):
    n, written, done = len(ds.samples), [], 0

    def volume(s):  # imported here when its turn comes: ``done`` samples before it
        return _import_volume(s, ds.classmap, blobs, written, partial(check, cancel, done, n, "workspace create"))

    for i, (s, got) in enumerate(iter_imported(ds.samples, ds.classmap, root, blobs, pool, volume), 1):
        check(cancel, i - 1, n, "workspace create")
        done = i
        if isinstance(got, Finding):  # a volume's label that cannot be imported
            findings.append(got)
            yield Message(f"skipped {s.id}: {got.message}")
        elif isinstance(got, dict):  # a volume's revision columns
            samples.append({**sample_row(s, root, HashCache()), **got})
        elif got[0] == "finding":
            findings.append(got[1])
            yield Message(f"skipped {s.id}: {got[2]}")
        else:
            samples.append(got[1])
            written.append(got[1]["sha"])
        yield Progress(i, n, "import", s.id)
    blobs.sync_all(written)


def _import_volume(s, classmap, blobs: BlobStore, written: list, check_cancel) -> dict | Finding:
    """Store a volume sample's distinct slices; its revision's columns, or a finding."""
    label = volume_import.read_label(s, classmap)
    if isinstance(label, Finding):
        return label
    volume, stored = label
    for sha, z in volume_import.distinct(stored["slices"]).items():  # equal slices are one blob
        blobs.put(volume[z], sha, sync_dir=False, durable=False)
        written.append(sha)
        check_cancel()
    files = ", ".join(Path(p).name for p in s.mask_paths.values())
    return {**stored, "note": f"imported from {files}", "details": {}}


def _commit(conn, samples: list[dict], findings: list[tuple], author: str) -> None:
    """One transaction: statements over all samples at once (row by row was ~0.1 ms a sample); the ids
    (revisions, status log) are the ones row-by-row inserts gave, in sample order."""
    created = now()
    with write(conn):
        conn.executemany(
            'INSERT INTO samples (id, image_path, mask_paths, mask_kind, extra, "group", image_sha256, '
            "mask_source_sha256, source_stat, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (s["id"], s["image_path"], s["mask_paths"], s["mask_kind"], s["extra"], s["group"])
                + (s["image_sha256"], s["mask_source_sha256"], s["source_stat"], pos)
                for pos, s in enumerate(samples)
            ),
        )
        first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM revisions").fetchone()[0]
        conn.executemany(
            "INSERT INTO revisions (id, sample_id, parent_id, mask_sha256, created, author, origin, "
            "note, details, volume) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
            (
                (first + k, s["id"], s["sha"], created, author, IMPORTED, s["note"], json.dumps(s["details"]))
                + (s.get("volume"),)
                for k, s in enumerate(samples)
            ),
        )
        for k, s in enumerate(samples):
            if "slices" in s:  # a volume's first revision names every slice
                insert_slices(conn, first + k, dict(enumerate(s["slices"])))
        conn.executemany(
            "UPDATE samples SET head_revision = ? WHERE id = ?", ((first + k, s["id"]) for k, s in enumerate(samples))
        )
        conn.executemany(
            "INSERT INTO status_log (sample_id, status, reason, time, author) VALUES (?, ?, NULL, ?, ?)",
            ((s["id"], UNREVIEWED, created, author) for s in samples),
        )
        insert_findings(conn, findings)
        conn.execute("UPDATE meta SET value = 'ready' WHERE key = 'state'")


def _problem_finding(problem):
    name = Path(problem.path).name
    suffix = suffix_of(name)
    return Finding(
        sample_id=name[: -len(suffix)] if suffix else name,  # case_006.nii.gz -> case_006, as the sample is named
        check=problem.kind,
        severity=PROBLEM_SEVERITY.get(problem.kind, WARNING),
        message=problem.message,
        path=str(problem.path),
    )


def _remove_partial(ws_root: Path, made_folder: bool) -> None:
    """Undo a create that did not finish: only what this create wrote."""
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal"):
        (ws_root / name).unlink(missing_ok=True)
    shutil.rmtree(ws_root / "masks", ignore_errors=True)
    if made_folder:
        try:
            ws_root.rmdir()
        except OSError:
            pass
