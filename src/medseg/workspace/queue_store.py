"""The review queue's order kept in the workspace between opens, and dropped by every write that could change it.

Ordering 100,000 samples reads every score and finding (seconds); the order changes only when a score, a
finding or a sample's label, group or place does, which is rare next to opening the queue. ``queue_cache``
holds one row per kind of queue asked for (score method, checks, rule version: the ``key``), its
``payload`` the arrays :mod:`medseg.qc.queue_cache` computed.

Invalidation is the database's own: triggers on ``scores``, ``findings`` and ``samples`` (rows added or
removed; ``head_revision``, ``group``, ``position`` or ``id`` changed; a status change does not re-order,
the queue filters by status itself) empty the table whoever writes, this process or another one, whatever
medseg version. The triggers fire per row but test ``EXISTS`` first, so a bulk write (QC's scores) costs a
lookup in an empty table per row once the first row has emptied it.

A computed order may be stale before it is stored (a QC run stored scores while it was computed); so an
order is stored only when the ``pending`` row written before its columns were read is still there: a
write in between deleted it with everything else (:func:`begin`, :func:`store`).
"""

from __future__ import annotations

import sqlite3
import uuid

from medseg.workspace.store import read, write

_TABLE = "CREATE TABLE IF NOT EXISTS queue_cache (key TEXT PRIMARY KEY, payload BLOB NOT NULL)"
_DROP = "WHEN EXISTS (SELECT 1 FROM queue_cache) BEGIN DELETE FROM queue_cache; END"
_TRIGGERS = {
    "queue_cache_scores_added": "AFTER INSERT ON scores",
    "queue_cache_scores_changed": "AFTER UPDATE ON scores",
    "queue_cache_scores_removed": "AFTER DELETE ON scores",
    "queue_cache_findings_added": "AFTER INSERT ON findings",
    "queue_cache_findings_changed": "AFTER UPDATE ON findings",
    "queue_cache_findings_removed": "AFTER DELETE ON findings",
    "queue_cache_samples_added": "AFTER INSERT ON samples",
    "queue_cache_samples_removed": "AFTER DELETE ON samples",
    "queue_cache_samples_changed": 'AFTER UPDATE OF head_revision, "group", position, id ON samples',
}
PENDING = "pending:"


def _install(conn: sqlite3.Connection) -> None:
    conn.execute(_TABLE)
    for name, when in _TRIGGERS.items():
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {when} {_DROP}")


def load(conn: sqlite3.Connection, key: str) -> tuple[bytes | None, int, list[tuple[int, str]]]:
    """(the stored payload of ``key`` or None, the number of samples, [(position, status)] of the samples whose
    status is not "unreviewed"), read in one snapshot. The payload holds the samples' ids and places (they
    drop it when they change); statuses are read here, as only a few of 100,000 are usually set."""
    with read(conn) as c:
        cur = c.cursor()
        cur.row_factory = None
        has = cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue_cache'").fetchone()
        row = cur.execute("SELECT payload FROM queue_cache WHERE key = ?", (key,)).fetchone() if has else None
        if row is None:
            return None, 0, []
        n = cur.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        set_ = cur.execute("SELECT position, status FROM samples WHERE status != 'unreviewed'").fetchall()
        return bytes(row[0]), n, set_


def begin(conn: sqlite3.Connection) -> str | None:
    """Mark the start of a computation (before its columns are read); its token, or None where the workspace
    cannot be written (read-only file): the queue is then computed at every open."""
    token = PENDING + uuid.uuid4().hex
    try:
        with write(conn) as c:
            _install(c)
            c.execute("INSERT INTO queue_cache (key, payload) VALUES (?, x'')", (token,))
    except sqlite3.OperationalError:  # read-only or locked past the busy timeout: a cache is not worth failing for
        return None
    return token


def store(conn: sqlite3.Connection, token: str | None, key: str, payload: bytes) -> bool:
    """Keep ``payload`` under ``key`` if nothing that orders the queue was written since :func:`begin` gave
    ``token``; whether it was kept."""
    if token is None:
        return False
    try:
        with write(conn) as c:
            if c.execute("DELETE FROM queue_cache WHERE key = ?", (token,)).rowcount != 1:
                return False  # a write in between emptied the table: this order may be stale
            c.execute("INSERT OR REPLACE INTO queue_cache (key, payload) VALUES (?, ?)", (key, payload))
    except sqlite3.OperationalError:
        return False
    return True


def clear(conn: sqlite3.Connection) -> None:
    """Forget every stored order (the next open computes it)."""
    with write(conn) as c:
        _install(c)
        c.execute("DELETE FROM queue_cache")


def details(conn: sqlite3.Connection, method: str, sample_id: str) -> str | None:
    """The stored details JSON of ``sample_id``'s score under ``method``; None when it has no score row."""
    row = conn.execute("SELECT details FROM scores WHERE method = ? AND sample_id = ?", (method, sample_id)).fetchone()
    return None if row is None else row[0]


def findings(conn: sqlite3.Connection, sample_id: str) -> list[tuple]:
    """``sample_id``'s findings as the rows of ``listing.queue_columns``, in the stored order."""
    return conn.execute(
        'SELECT sample_id, "check", severity, value, message, path, fix, details FROM findings '
        "WHERE sample_id = ? ORDER BY id",
        (sample_id,),
    ).fetchall()
