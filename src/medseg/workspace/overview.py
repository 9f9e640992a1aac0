"""Counts and health checks over a workspace database (``Workspace.summary`` / ``check_integrity``)."""

from __future__ import annotations

import sqlite3

from medseg.workspace import volumes
from medseg.workspace.blobs import BlobStore
from medseg.workspace.records import STATUSES
from medseg.workspace.store import integrity_problems, read, schema_version


def counts(conn: sqlite3.Connection) -> dict:
    """Samples by status, revisions by origin, findings by check / severity / source, runs and score methods."""
    with read(conn) as c:
        by_status = dict.fromkeys(STATUSES, 0)
        by_status.update(dict(c.execute("SELECT status, COUNT(*) FROM samples GROUP BY status").fetchall()))
        origins = dict(c.execute("SELECT origin, COUNT(*) FROM revisions GROUP BY origin").fetchall())
        return {
            "schema_version": schema_version(c),
            "n_samples": sum(by_status.values()),
            "by_status": by_status,
            "n_revisions": sum(origins.values()),
            "revisions_by_origin": origins,
            "by_check": dict(c.execute('SELECT "check", COUNT(*) FROM findings GROUP BY "check"').fetchall()),
            "by_severity": dict(c.execute("SELECT severity, COUNT(*) FROM findings GROUP BY severity").fetchall()),
            "findings_by_source": dict(c.execute("SELECT source, COUNT(*) FROM findings GROUP BY source").fetchall()),
            "score_methods": [r[0] for r in c.execute("SELECT DISTINCT method FROM scores ORDER BY method")],
            "n_model_runs": c.execute("SELECT COUNT(*) FROM model_runs").fetchone()[0],
            **_volume_counts(c),
        }


def _volume_counts(c: sqlite3.Connection) -> dict:
    """Volume samples, their slices (at the head) and the slice files their revisions share."""
    heads = c.execute(
        "SELECT r.volume FROM samples s JOIN revisions r ON r.id = s.head_revision WHERE r.volume IS NOT NULL"
    ).fetchall()
    return {
        "n_volumes": c.execute("SELECT COUNT(*) FROM samples WHERE mask_kind = ?", (volumes.VOLUME,)).fetchone()[0],
        "n_slices": sum(volumes.VolumeInfo.from_json(r[0]).shape[0] for r in heads),
        "n_slice_files": c.execute("SELECT COUNT(DISTINCT sha256) FROM volume_slices").fetchone()[0],
    }


def integrity(conn: sqlite3.Connection, blobs: BlobStore | None) -> list[str]:
    """SQLite's integrity and foreign-key checks, every head being its sample's newest revision, every
    volume revision's slice rows resolving to the volume its row names, and (with ``blobs``) every 2-D
    mask file and volume slice file reading back with the hash its row names."""
    problems = integrity_problems(conn)
    with read(conn) as c:
        stale = c.execute(
            "SELECT s.id FROM samples s WHERE s.head_revision IS NOT "
            "(SELECT MAX(id) FROM revisions r WHERE r.sample_id = s.id)"
        ).fetchall()
        shas = [r[0] for r in c.execute("SELECT DISTINCT mask_sha256 FROM revisions WHERE volume IS NULL")]
    problems += [f"sample {r[0]}: head is not its newest revision" for r in stale]
    volume_problems, slice_shas = volumes.integrity(conn)
    problems += volume_problems
    if blobs is not None:
        problems += [p for p in map(blobs.verify, [*shas, *sorted(slice_shas)]) if p]
    return problems
