"""The ``Workspace`` methods that read sample rows: listed, keyed and counted, and the review queue's columns
and stored order.

A mixin of :class:`medseg.workspace.workspace.Workspace` (it uses the workspace's connection, dataset root
and lock); the queries themselves are :mod:`medseg.workspace.listing` and :mod:`medseg.workspace.queue_store`.
"""

from __future__ import annotations

import json

import numpy as np

from medseg.errors import WorkspaceError
from medseg.workspace import listing, queue_store
from medseg.workspace import volumes as vol
from medseg.workspace.locking import locked
from medseg.workspace.records import SampleRecord, check_status
from medseg.workspace.sources import decode_mask_paths


class RowMethods:
    # samples --------------------------------------------------------------------
    @locked
    def sample_ids(self, status: str | None = None) -> list[str]:
        if status is not None:
            check_status(status)
            rows = self._conn.execute("SELECT id FROM samples WHERE status = ? ORDER BY position", (status,))
        else:
            rows = self._conn.execute("SELECT id FROM samples ORDER BY position")
        return [r[0] for r in rows]

    @locked
    def sample(self, sample_id: str) -> SampleRecord:
        return self._record(self._sample_row(sample_id))

    @locked
    def samples(self, status: str | None = None) -> list[SampleRecord]:
        if status is not None:
            check_status(status)
        rows = self._conn.execute(
            "SELECT * FROM samples WHERE ? IS NULL OR status = ? ORDER BY position", (status, status)
        )
        return [self._record(r) for r in rows]

    @locked
    def sample_keys(self) -> np.ndarray:
        """Every sample's row key in the workspace's order, 8 bytes a sample: a list of 100,000 samples pages
        through them with :meth:`sample_rows` instead of holding a record each (:mod:`medseg.workspace.listing`)."""
        return listing.sample_keys(self._conn)

    @locked
    def sample_rows(self, keys) -> list[tuple[str, str, str]]:
        """(id, status, group) of the samples with these row keys, in their order."""
        return listing.sample_rows(self._conn, keys)

    @locked
    def sample_key(self, sample_id: str) -> int | None:
        """The row key of ``sample_id`` (None when there is no such sample)."""
        return listing.sample_key(self._conn, sample_id)

    @locked
    def queue_columns(self) -> dict:
        """The review queue's inputs as columns, without a record per sample (:func:`listing.queue_columns`)."""
        return listing.queue_columns(self._conn)

    # the review queue's stored order (medseg.workspace.queue_store: dropped by any write that changes it)
    @locked
    def queue_cache_load(self, key: str) -> tuple[bytes | None, int, list[tuple[int, str]]]:
        return queue_store.load(self._conn, key)

    @locked
    def queue_cache_begin(self) -> str | None:
        return queue_store.begin(self._conn)

    @locked
    def queue_cache_store(self, token: str | None, key: str, payload: bytes) -> bool:
        return queue_store.store(self._conn, token, key, payload)

    @locked
    def queue_cache_clear(self) -> None:
        queue_store.clear(self._conn)

    @locked
    def group_sizes(self) -> dict[str, int]:
        """{group: its number of samples}."""
        return listing.group_sizes(self._conn)

    def _sample_row(self, sample_id: str):
        row = self._conn.execute("SELECT * FROM samples WHERE id = ?", (str(sample_id),)).fetchone()
        if row is None:
            n = self._conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            raise WorkspaceError(f"{self.root}: no sample {sample_id!r} among its {n} samples")
        return row

    def _record(self, r) -> SampleRecord:
        extra = json.loads(r["extra"]) if r["mask_kind"] == vol.VOLUME else {}
        return SampleRecord(
            id=r["id"],
            image_path=self.dataset_root / r["image_path"],
            mask_paths=decode_mask_paths(r["mask_paths"], self.dataset_root),
            group=r["group"],
            image_sha256=r["image_sha256"],
            status=r["status"],
            reason=r["reason"],
            head_revision=r["head_revision"],
            mask_source_sha256=json.loads(r["mask_source_sha256"]),
            mask_kind=r["mask_kind"],
            geometry=extra.get("geometry"),
        )
