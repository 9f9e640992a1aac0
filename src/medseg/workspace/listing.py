"""Paging through a workspace's samples without a record per sample: what a list of 100,000 samples asks for.

A sample list (the app's Samples table) holds the samples' row keys in the workspace's order, 8 bytes a
sample (:func:`sample_keys`), and reads the rows it shows a page at a time by key (:func:`sample_rows`, a
primary-key lookup each); a ``SampleRecord`` per sample would be about 1 KB each and take a second to build
at that size. The keys are SQLite rowids: stable while the workspace is open (nothing in medseg deletes
samples or runs VACUUM), and read again whenever the list is refilled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from medseg.workspace.store import read


def sample_keys(conn: sqlite3.Connection) -> np.ndarray:
    """The row keys of every sample in the workspace's order (an int64 array)."""
    with read(conn) as c:
        n = c.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        rows = c.execute("SELECT rowid FROM samples ORDER BY position")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)


def sample_rows(conn: sqlite3.Connection, keys: Sequence[int]) -> list[tuple[str, str, str]]:
    """(id, status, group) of the samples with ``keys``, in that order; a key no sample has is left out."""
    keys = [int(k) for k in keys]
    found: dict[int, tuple[str, str, str]] = {}
    with read(conn) as c:
        for start in range(0, len(keys), 500):  # SQLite's bound-variable limit is 999 on older builds
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in c.execute(f'SELECT rowid, id, status, "group" FROM samples WHERE rowid IN ({marks})', chunk):
                found[r[0]] = (r[1], r[2], r[3])
    return [found[k] for k in keys if k in found]


def sample_key(conn: sqlite3.Connection, sample_id: str) -> int | None:
    """The row key of ``sample_id``; None when the workspace has no such sample."""
    row = conn.execute("SELECT rowid FROM samples WHERE id = ?", (str(sample_id),)).fetchone()
    return None if row is None else int(row[0])


def group_sizes(conn: sqlite3.Connection) -> dict[str, int]:
    """{group: number of samples in it}."""
    with read(conn) as c:
        return {r[0]: r[1] for r in c.execute('SELECT "group", COUNT(*) FROM samples GROUP BY "group"')}


def queue_columns(conn: sqlite3.Connection) -> dict:
    """What the review queue orders by and says, as columns in the workspace's order, read in one snapshot:
    ``ids``, ``statuses``, ``groups``, ``heads`` (head revision or None), ``positions``; ``scores`` {method:
    [(sample, score or None, scored revision or None, Dice or None, details JSON)]}; ``findings`` [(sample,
    check, severity, value, message, path, fix, details JSON)] in the stored order. SQLite reads the two
    fields of a score's details that ordering needs (``json_extract``); the JSON texts stay unparsed until an
    item is asked for (100,000 ``json.loads`` per method were most of a queue's second)."""
    with read(conn) as c:
        cur = c.cursor()
        cur.row_factory = None  # plain tuples: sqlite3.Row costs more than the columns
        rows = cur.execute(
            'SELECT id, status, "group", head_revision, position FROM samples ORDER BY position'
        ).fetchall()
        ids, statuses, groups, heads, positions = (list(col) for col in zip(*rows)) if rows else ([], [], [], [], [])
        methods = [r[0] for r in cur.execute("SELECT DISTINCT method FROM scores ORDER BY method")]
        scores = {
            m: cur.execute(
                "SELECT sample_id, score, json_extract(details, '$.revision'), json_extract(details, '$.dice'), "
                "details FROM scores WHERE method = ? ORDER BY rowid",
                (m,),
            ).fetchall()
            for m in methods
        }
        findings = cur.execute(
            'SELECT sample_id, "check", severity, value, message, path, fix, details FROM findings ORDER BY id'
        ).fetchall()
    return {
        "ids": ids,
        "statuses": statuses,
        "groups": groups,
        "heads": heads,
        "positions": positions,
        "scores": scores,
        "findings": findings,
    }
