"""``Workspace``: one dataset's review state, kept beside it and never inside it.

A workspace folder holds ``workspace.sqlite`` (see :mod:`medseg.workspace.store`)
and ``masks/`` (see :mod:`medseg.workspace.blobs`). Source files are only read.
Volume samples (CT, MRI) store their labels slice by slice, a revision holding only
the slices it changed (:mod:`medseg.workspace.volumes`).

Saving a label is: canonicalise the mask, write its blob durably, then in one
transaction insert the revision and move the sample's head to it. A kill at
any point leaves the previous head or the new one; the worst left behind is an
unreferenced blob, which ``gc`` removes.

Several ``Workspace`` objects, in one process or several, may use one folder
at once; each holds its own connection. One object may be used from several
threads (its calls are serialised).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import WorkspaceError
from medseg.jobs import CancelToken, Job, run
from medseg.workspace import annotations as ann
from medseg.workspace import overview
from medseg.workspace import volumes as vol
from medseg.workspace.blobs import BlobStore, mask_sha256
from medseg.workspace.create import creating_elsewhere, default_author, interrupted_message, refuse_inside
from medseg.workspace.locking import locked
from medseg.workspace.masks import canonical_mask, changed_pixels
from medseg.workspace.records import (
    CORRECTED,
    EXCLUDED,
    MANUAL,
    REVERT,
    ModelRun,
    Revision,
    SourceChange,
    StatusChange,
    check_status,
    insert_revision,
)
from medseg.workspace.row_methods import RowMethods
from medseg.workspace.sources import VERIFY_MODES, check_sources, source_rows, store_restat
from medseg.workspace.store import (
    DB_NAME,
    connect,
    now,
    write,
)
from medseg.workspace.volume_methods import VolumeMethods, check_origin


class Workspace(RowMethods, VolumeMethods):
    """Open with :meth:`open`, make with :meth:`create` / :meth:`iter_create`; use as a context manager."""

    def __init__(self, root: Path, conn, *, source_changes: list[SourceChange] | None = None):
        self.root = Path(root)
        self._conn = conn
        self._lock = threading.RLock()
        self._counts = overview.Counts()
        self._blobs = BlobStore(self.root / "masks")
        self.meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
        if self.meta.get("state") != "ready":
            conn.close()
            self._conn = None
            if creating_elsewhere(self.meta):
                raise WorkspaceError(
                    f"{self.root}: this workspace is still being created by another medseg "
                    "process; open it when that create has finished"
                )
            raise WorkspaceError(interrupted_message(self.root, self.meta.get("dataset_root")))
        self.dataset_root = Path(self.meta["dataset_root"])
        self.classmap = ClassMap.from_json(self.meta["classmap"])
        self.layout = self.meta["layout"]
        self.group_by = self.meta["group_by"]
        self.source_changes: list[SourceChange] = list(source_changes or [])

    # opening and closing ------------------------------------------------------
    @classmethod
    def iter_create(
        cls,
        path,
        dataset_root,
        *,
        layout=None,
        group_by="auto",
        author=None,
        cancel: CancelToken | None = None,
        workers: int | None = None,
    ) -> Job:
        """Index ``dataset_root`` and import every sample's mask, as a job (:mod:`medseg.jobs`): progress of
        the stages "index", "import" and "commit", then ``Result(workspace)``; a cancel (``cancel``) or an
        early close leaves no workspace (:mod:`medseg.workspace.create`). ``workers``: processes for the
        per-file work (None: one a core on large datasets; 0 or 1: none)."""
        from medseg.workspace.create import iter_create

        return iter_create(
            path,
            dataset_root,
            layout=layout,
            group_by=group_by,
            author=author,
            open_workspace=cls.open,
            cancel=cancel,
            workers=workers,
        )

    @classmethod
    def create(cls, path, dataset_root, *, layout=None, group_by="auto", author=None, workers=None) -> Workspace:
        job = cls.iter_create(path, dataset_root, layout=layout, group_by=group_by, author=author, workers=workers)
        return run(job)

    @classmethod
    def open(cls, path, *, dataset_root=None, verify: str = "stat") -> Workspace:
        """Open a workspace; ``source_changes`` lists source files changed or gone since import.

        ``dataset_root`` re-attaches a dataset that moved. ``verify``: "stat"
        (re-hash files whose size or mtime moved), "hash" (re-hash all), "none".
        """
        if verify not in VERIFY_MODES:
            raise WorkspaceError(f"unknown verify mode {verify!r}; valid: {', '.join(VERIFY_MODES)}")
        root = Path(path).absolute()
        conn = connect(root / DB_NAME)
        try:
            if dataset_root is not None:
                new_root = Path(dataset_root).absolute()
                if not new_root.is_dir():
                    raise WorkspaceError(f"{new_root}: dataset folder does not exist")
                refuse_inside(root, new_root, discover=False)  # the workspace stays where it is
                with write(conn):
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'dataset_root'", (str(new_root),))
            ws = cls(root, conn)
        except BaseException:
            conn.close()
            raise
        with ws._lock:
            ws.source_changes = check_sources(conn, ws.dataset_root, verify)
        return ws

    @locked
    def source_rows(self) -> list[dict]:
        """Each sample's recorded source paths, hashes and stats (what a source check compares)."""
        return source_rows(self._conn)

    @locked
    def store_restat(self, restat: dict[str, dict]) -> None:
        """Keep refreshed stats of source files whose content a check found unchanged."""
        store_restat(self._conn, restat)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Workspace:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, dataset={str(self.dataset_root)!r})"

    @locked
    def source_sample(self, sample_id: str):
        """The sample as a :class:`medseg.datasets.Sample`, to read its source files through the layout
        (e.g. QC looking at the raw grey values the imported revision binarised)."""
        from medseg.datasets import Sample

        r = self._sample_row(sample_id)
        rec = self._record(r)
        return Sample(
            rec.id,
            rec.image_path,
            rec.mask_paths,
            rec.group,
            json.loads(r["extra"]),
            classmap=self.classmap,
            mask_kind=rec.mask_kind,
        )

    def image(self, sample_id: str):
        """The source image (:class:`medseg.io.types.ImageData`); ReadError naming the file if it is gone."""
        from medseg.io import load

        return load(self.sample(sample_id).image_path)

    # masks and revisions ------------------------------------------------------------
    @locked
    def current_mask(self, sample_id: str) -> np.ndarray:
        """The label of the sample's head revision (see :meth:`mask_at`)."""
        return self.mask_at(self._head_of(sample_id))

    @locked
    def mask_at(self, revision_id: int) -> np.ndarray:
        """The label of a revision: (H, W) or (H, W, C) for 2-D samples, (Z, Y, X) class ids for volumes."""
        rev = self.revision(revision_id)
        info = vol.info_of(self._conn, rev.id)
        return self._blobs.get(rev.mask_sha256) if info is None else self._read_volume(rev.id, info)

    @locked
    def revision(self, revision_id: int) -> Revision:
        row = self._conn.execute("SELECT * FROM revisions WHERE id = ?", (int(revision_id),)).fetchone()
        if row is None:
            raise WorkspaceError(f"{self.root}: no revision {revision_id}")
        return Revision.from_row(row)

    @locked
    def revisions(self, sample_id: str) -> list[Revision]:
        """Every revision of the sample, oldest first."""
        self._sample_row(sample_id)
        rows = self._conn.execute("SELECT * FROM revisions WHERE sample_id = ? ORDER BY id", (str(sample_id),))
        return [Revision.from_row(r) for r in rows]

    @locked
    def revision_ends(self) -> dict[str, tuple[tuple[int, str], tuple[int, str]]]:
        """Every sample's first (imported) and head revision as (id, mask_sha256), in one query: what a pass
        over the whole workspace (the dataset overview) reads instead of each sample's revisions."""
        rows = self._conn.execute(
            "SELECT s.id, f.id, f.mask_sha256, h.id, h.mask_sha256 FROM samples s"
            " JOIN revisions h ON h.id = s.head_revision"
            " JOIN revisions f ON f.id = (SELECT MIN(id) FROM revisions WHERE sample_id = s.id)"
        )
        return {r[0]: ((r[1], r[2]), (r[3], r[4])) for r in rows}

    @locked
    def save_revision(
        self,
        sample_id: str,
        mask,
        *,
        origin: str,
        author: str | None = None,
        note: str | None = None,
        details: dict | None = None,
    ) -> Revision:
        """Save ``mask`` as the sample's new head revision (atomic, durable when it returns).

        A mask identical to the head is not a new revision: the head is
        returned. A "manual" save marks the sample "corrected". For a volume
        sample ``mask`` is (Z, Y, X) and only the slices that differ from the
        head are written (``details["slices"]`` lists them).
        """
        check_origin(origin)
        sample_id = str(sample_id)
        row = self._sample_row(sample_id)
        if row["mask_kind"] == vol.VOLUME:
            return self._save_volume(row, mask, origin, author, note, details)
        canon = canonical_mask(mask, self.classmap, sample_id)
        sha = self._blobs.put(canon, mask_sha256(canon))  # durable before any row names it
        author = author or default_author()
        with write(self._conn) as c:
            head_id = c.execute("SELECT head_revision FROM samples WHERE id = ?", (sample_id,)).fetchone()[0]
            changed, n_changed = {}, 0
            if head_id is not None:
                head = Revision.from_row(c.execute("SELECT * FROM revisions WHERE id = ?", (head_id,)).fetchone())
                if head.mask_sha256 == sha:
                    return head
                parent = self._blobs.get(head.mask_sha256)
                if parent.shape != canon.shape:
                    raise WorkspaceError(
                        f"sample {sample_id}: mask shape {canon.shape} differs from the "
                        f"current revision's {parent.shape}"
                    )
                changed, n_changed = changed_pixels(parent, canon, self.classmap)
            revision = insert_revision(
                c,
                sample_id,
                head_id,
                sha,
                author=author,
                origin=origin,
                note=note,
                changed=changed,
                n_changed=n_changed,
                details=dict(details or {}),
            )
            if origin == MANUAL:
                self._set_status(sample_id, CORRECTED, None, author)
        return revision

    @locked
    def revert(
        self, sample_id: str, revision_id: int, *, author: str | None = None, note: str | None = None
    ) -> Revision:
        """A new head revision (origin "revert") with the content of ``revision_id``."""
        target = self.revision(revision_id)
        if target.sample_id != str(sample_id):
            raise WorkspaceError(f"revision {revision_id} belongs to sample {target.sample_id!r}, not to {sample_id!r}")
        info = vol.info_of(self._conn, target.id)
        if info is not None:
            return self._revert_volume(str(sample_id), target, info, author, note)
        return self.save_revision(
            sample_id,
            self._blobs.get(target.mask_sha256),
            origin=REVERT,
            author=author,
            note=note or f"revert to revision {revision_id}",
            details={"reverted_to": int(revision_id)},
        )

    # review status ------------------------------------------------------------------
    @locked
    def set_status(self, sample_id: str, status: str, reason: str | None = None, *, author: str | None = None) -> None:
        """Set the review status; "excluded" needs a reason. Every change is logged."""
        check_status(status)
        if status == EXCLUDED and not (reason and str(reason).strip()):
            raise WorkspaceError(
                f"sample {sample_id}: excluding a sample needs a reason (e.g. 'image unusable: motion blur')"
            )
        self._sample_row(sample_id)
        with write(self._conn):
            self._set_status(str(sample_id), status, reason, author or default_author())

    def _set_status(self, sample_id: str, status: str, reason: str | None, author: str) -> None:
        row = self._conn.execute("SELECT status, reason FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if (row["status"], row["reason"]) == (status, reason):
            return
        self._conn.execute("UPDATE samples SET status = ?, reason = ? WHERE id = ?", (status, reason, sample_id))
        self._conn.execute(
            "INSERT INTO status_log (sample_id, status, reason, time, author) VALUES (?, ?, ?, ?, ?)",
            (sample_id, status, reason, now(), author),
        )

    @locked
    def status_history(self, sample_id: str) -> list[StatusChange]:
        """Every status the sample had, oldest first (the import's "unreviewed" included)."""
        self._sample_row(sample_id)
        rows = self._conn.execute("SELECT * FROM status_log WHERE sample_id = ? ORDER BY id", (str(sample_id),))
        return [StatusChange(r["sample_id"], r["status"], r["reason"], r["time"], r["author"]) for r in rows]

    # findings, scores, model runs -----------------------------------------------------
    @locked
    def add_findings(self, findings, source: str, replace: bool = True) -> int:
        return ann.add_findings(self._conn, findings, source, replace)

    @locked
    def findings(self, sample_id: str | None = None, source: str | None = None, check: str | None = None) -> list:
        return ann.findings(self._conn, sample_id, source, check)

    @locked
    def set_scores(self, method: str, scores: dict[str, float], details: dict[str, dict] | None = None) -> None:
        ann.set_scores(self._conn, method, scores, details)

    @locked
    def scores(self, method: str) -> dict[str, float | None]:
        return ann.scores(self._conn, method)

    @locked
    def score_details(self, method: str) -> dict[str, dict]:
        return ann.score_details(self._conn, method)

    @locked
    def score_methods(self) -> list[str]:
        return ann.score_methods(self._conn)

    @locked
    def record_model_run(self, run_id: str, checkpoint_path, kind: str, revisions: dict[str, int]) -> ModelRun:
        return ann.record_model_run(self._conn, run_id, checkpoint_path, kind, revisions)

    @locked
    def model_runs(self, sample_id: str | None = None) -> list[ModelRun]:
        return ann.model_runs(self._conn, sample_id)

    # overview and upkeep ----------------------------------------------------------------
    @locked
    def summary(self) -> dict:
        """Counts by status, revision origin, finding check/severity/source; changed sources; provenance. The
        counts are read again only after a write (:class:`medseg.workspace.overview.Counts`)."""
        return {
            "root": str(self.root),
            "dataset_root": str(self.dataset_root),
            "layout": self.layout,
            "task": self.classmap.task,
            "classes": self.classmap.names,
            "created": self.meta.get("created"),
            "medseg_version": self.meta.get("medseg_version"),
            **self._counts(self._conn),
            "source_changes": dict(Counter(ch.kind for ch in self.source_changes)),
        }

    @locked
    def check_integrity(self, blobs: bool = True) -> list[str]:
        """Problems found, empty when sound: SQLite's own checks, heads, and (``blobs``) every mask file."""
        return overview.integrity(self._conn, self._blobs if blobs else None)

    @locked
    def gc(self, min_age_s: float = 600.0) -> tuple[int, int]:
        """Remove mask blobs no revision names and leftover temp files; (files, bytes) removed.

        Files younger than ``min_age_s`` are kept: another process may have just
        written one and not yet committed the revision naming it.
        """
        return self._blobs.gc(vol.referenced(self._conn), min_age_s)
