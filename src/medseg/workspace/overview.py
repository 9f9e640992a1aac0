"""Counts and health checks over a workspace database (``Workspace.summary`` / ``check_integrity``)."""

from __future__ import annotations

import sqlite3

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
        }


def integrity(conn: sqlite3.Connection, blobs: BlobStore | None) -> list[str]:
    """SQLite's integrity and foreign-key checks, every head being its sample's newest revision,
    and (with ``blobs``) every revision's mask file reading back with the hash its row names."""
    problems = integrity_problems(conn)
    with read(conn) as c:
        stale = c.execute(
            "SELECT s.id FROM samples s WHERE s.head_revision IS NOT "
            "(SELECT MAX(id) FROM revisions r WHERE r.sample_id = s.id)"
        ).fetchall()
        shas = [r[0] for r in c.execute("SELECT DISTINCT mask_sha256 FROM revisions")]
    problems += [f"sample {r[0]}: head is not its newest revision" for r in stale]
    if blobs is not None:
        problems += [p for p in map(blobs.verify, shas) if p]
    return problems
