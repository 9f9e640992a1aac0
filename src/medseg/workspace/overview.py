"""Counts and health checks over a workspace database (``Workspace.summary`` / ``check_integrity``)."""

from __future__ import annotations

import copy
import sqlite3
from collections import Counter

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
        by_check: Counter[str] = Counter()
        by_severity: Counter[str] = Counter()
        by_source: Counter[str] = Counter()
        info_by_check: Counter[str] = Counter()  # listed for the user's information: no problem with the label
        # one pass over the findings for the three counts (three GROUP BYs read them three times)
        for check, severity, source, n in c.execute(
            'SELECT "check", severity, source, COUNT(*) FROM findings GROUP BY "check", severity, source'
        ):
            by_check[check] += n
            by_severity[severity] += n
            by_source[source] += n
            if severity == "info":
                info_by_check[check] += n
        return {
            "schema_version": schema_version(c),
            "n_samples": sum(by_status.values()),
            "by_status": by_status,
            "n_revisions": sum(origins.values()),
            "revisions_by_origin": origins,
            "by_check": dict(sorted(by_check.items())),
            "by_severity": dict(sorted(by_severity.items())),
            "info_by_check": dict(sorted(info_by_check.items())),
            "findings_by_source": dict(sorted(by_source.items())),
            "score_methods": [r[0] for r in c.execute("SELECT DISTINCT method FROM scores ORDER BY method")],
            "n_model_runs": c.execute("SELECT COUNT(*) FROM model_runs").fetchone()[0],
            **_volume_counts(c),
        }


class Counts:
    """:func:`counts` of one connection, read again only after a write, by this connection or another: several
    docks ask for them as a workspace opens and each read passes over every sample, revision and finding
    (0.5 s at 100,000). ``PRAGMA data_version`` moves with another connection's commit, ``total_changes``
    with this one's writes (a rolled-back write too: read again, never stale)."""

    def __init__(self) -> None:
        self.state: tuple[int, int] | None = None
        self.value: dict = {}

    def __call__(self, conn: sqlite3.Connection) -> dict:
        state = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
        if state != self.state:
            self.value, self.state = counts(conn), state
        return copy.deepcopy(self.value)  # the caller's to change


def _volume_counts(c: sqlite3.Connection) -> dict:
    """Volume samples, their slices (at the head) and the slice files their revisions share."""
    n_volumes = c.execute("SELECT COUNT(*) FROM samples WHERE mask_kind = ?", (volumes.VOLUME,)).fetchone()[0]
    # the heads' grids only where there are volumes: the join visits every sample's head (2-D ones too)
    heads = (
        c.execute(
            "SELECT r.volume FROM samples s JOIN revisions r ON r.id = s.head_revision WHERE r.volume IS NOT NULL"
        ).fetchall()
        if n_volumes
        else []
    )
    return {
        "n_volumes": n_volumes,
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
