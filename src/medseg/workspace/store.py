"""The workspace database: schema, migrations and connection settings.

Settings, and why:
  * ``journal_mode=WAL``: readers never block the writer nor see a half-done
    transaction, so a viewer and a trainer can share one workspace.
  * ``synchronous=FULL``: every commit is fsynced before it returns, so a
    saved correction survives power loss too, not only a killed process
    (NORMAL would be consistent but could drop the last commits on power
    loss). Saves are interactive and a bulk import is one transaction, so the
    extra fsync per commit costs nothing noticeable.
  * ``foreign_keys=ON``: a revision, status entry or score cannot name a
    sample that does not exist.
  * ``busy_timeout``: a writer waits for another process's transaction
    instead of failing; writes start with ``BEGIN IMMEDIATE`` so two writers
    queue up at the start instead of deadlocking on a read-to-write upgrade.

The schema version lives in the ``schema_version`` table (one row per applied
migration). Opening a workspace applies pending migrations; a workspace made by
a newer medseg is refused instead of being misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from medseg.errors import WorkspaceError

DB_NAME = "workspace.sqlite"
BUSY_TIMEOUT_MS = 30_000

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (
    id TEXT PRIMARY KEY,
    image_path TEXT NOT NULL,
    mask_paths TEXT NOT NULL,
    mask_kind TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    "group" TEXT NOT NULL DEFAULT '',
    image_sha256 TEXT NOT NULL,
    mask_source_sha256 TEXT NOT NULL,
    source_stat TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'unreviewed'
        CHECK (status IN ('unreviewed', 'accepted', 'corrected', 'excluded')),
    reason TEXT,
    head_revision INTEGER REFERENCES revisions(id),
    position INTEGER NOT NULL
);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    parent_id INTEGER REFERENCES revisions(id),
    mask_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    author TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('imported', 'manual', 'auto-fix', 'model', 'revert')),
    note TEXT,
    changed TEXT NOT NULL DEFAULT '{}',
    n_changed INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX revisions_sample ON revisions(sample_id, id);
CREATE TABLE findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL,
    source TEXT NOT NULL,
    "check" TEXT NOT NULL,
    severity TEXT NOT NULL,
    value REAL,
    message TEXT NOT NULL,
    path TEXT,
    fix TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX findings_sample ON findings(sample_id);
CREATE INDEX findings_source ON findings(source);
CREATE TABLE scores (
    method TEXT NOT NULL,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    score REAL,
    details TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    PRIMARY KEY (method, sample_id)
);
CREATE TABLE model_runs (
    run_id TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE run_revisions (
    run_id TEXT NOT NULL REFERENCES model_runs(run_id) ON DELETE CASCADE,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    revision_id INTEGER NOT NULL REFERENCES revisions(id),
    PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE status_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    status TEXT NOT NULL,
    reason TEXT,
    time TEXT NOT NULL,
    author TEXT NOT NULL
);
CREATE INDEX status_log_sample ON status_log(sample_id, id);
"""

# Volume labels (CT, MRI): a revision of a volume sample names its grid in ``revisions.volume`` (JSON shape and
# voxel type; NULL for a 2-D mask) and stores one content-addressed blob per slice; ``volume_slices`` holds a
# row only for the slices that differ from the parent revision (the first revision holds every slice), so a
# corrected slice costs one blob and one row, not the volume. See medseg.workspace.volumes.
_V2 = """
ALTER TABLE revisions ADD COLUMN volume TEXT;
CREATE TABLE volume_slices (
    revision_id INTEGER NOT NULL REFERENCES revisions(id),
    z INTEGER NOT NULL CHECK (z >= 0),
    sha256 TEXT NOT NULL,
    PRIMARY KEY (revision_id, z)
) WITHOUT ROWID;
"""

# version -> SQL script. Append new versions; never edit a released one.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2}
SCHEMA_VERSION = max(MIGRATIONS)

# Indexes that only speed reads up, made on open where missing (a workspace of an older medseg gets them on its
# first open, once: 0.1 s at 100,000 samples) rather than by a migration, so an older medseg still opens the
# workspace. The workspace's order (``ORDER BY position``: the sample list, the review queue's columns, the
# source check) sorted every sample on each read without one; counts and lists by status read the index alone.
INDEX_WAIT_MS = 1_000
INDEXES = {
    "samples_position": "samples(position)",
    "samples_status": "samples(status, position)",
}


def now() -> str:
    """UTC time, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def connect(db_path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection with the workspace settings; ``create`` makes a new database and its schema."""
    db_path = Path(db_path)
    if not create and not db_path.is_file():
        raise WorkspaceError(f"{db_path.parent}: not a workspace (no {DB_NAME} in it)")
    try:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
        # check_same_thread=False: a GUI worker thread may use the workspace; Workspace serialises calls.
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise WorkspaceError(
                f"{db_path}: cannot use write-ahead logging (journal mode stays {mode!r}); "
                "is the workspace on a network file system?"
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, db_path)
        add_indexes(conn)
    except sqlite3.DatabaseError as e:
        raise WorkspaceError(f"{db_path}: not a readable workspace database ({e})") from None
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot across several SELECTs."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not has:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, db_path: Path) -> None:
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise WorkspaceError(
            f"{db_path}: workspace schema version {current} is newer than this medseg "
            f"understands ({SCHEMA_VERSION}); update medseg to open it"
        )
    if current == SCHEMA_VERSION:
        return
    with write(conn):
        current = schema_version(conn)  # another process may have migrated while we waited
        if current == 0:
            conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        for version in sorted(v for v in MIGRATIONS if v > current):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now()))


def add_indexes(conn: sqlite3.Connection) -> list[str]:
    """Make the read indexes (``INDEXES``) the workspace lacks; their names. A workspace that cannot be written
    now (a read-only file, another process's write going on for over ``INDEX_WAIT_MS``) opens without them:
    they only speed reads up, and the next open makes them."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    missing = [name for name in INDEXES if name not in have]
    if not missing:
        return []
    conn.execute(f"PRAGMA busy_timeout = {INDEX_WAIT_MS}")
    try:
        with write(conn):
            for name in missing:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {INDEXES[name]}")
    except sqlite3.OperationalError:
        return []
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return missing


def _statements(script: str) -> list[str]:
    # executescript would COMMIT our transaction; split on ';' (the schema holds none inside strings).
    return [s.strip() for s in script.split(";") if s.strip()]


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA integrity_check`` and ``foreign_key_check`` report; empty when the database is sound."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    problems = [] if rows == ["ok"] else rows
    for r in conn.execute("PRAGMA foreign_key_check").fetchall():
        problems.append(f"table {r[0]} row {r[1]} names a missing row in {r[2]}")
    return problems
