"""Reads a large workspace repeats as it opens: the samples' order and statuses are indexed (a workspace of an
older medseg gets the indexes on its next open; a database that cannot be written is left without them), and the
summary's counts are read once per state of the workspace, again after any write, this connection's or
another's (issue 19 item 4: several docks ask for them as a 100,000-sample workspace opens)."""

from __future__ import annotations

import sqlite3

import pytest
from _workspace_data import make_binary

from medseg.qc import Finding
from medseg.workspace import Workspace, overview, store
from medseg.workspace.records import ACCEPTED


@pytest.fixture
def ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_binary(tmp_path / "data", n=4)) as w:
        yield w


def _indexes(root) -> set[str]:
    with sqlite3.connect(root / store.DB_NAME) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def _plan(conn: sqlite3.Connection, sql: str, *args) -> str:
    return " / ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_the_workspace_order_and_statuses_are_read_from_indexes(ws):
    assert set(store.INDEXES) <= _indexes(ws.root)
    with sqlite3.connect(ws.root / store.DB_NAME) as c:
        order = _plan(c, "SELECT rowid FROM samples ORDER BY position")
        assert "samples_position" in order and "TEMP B-TREE" not in order  # no sort of every sample per read
        by_status = _plan(c, "SELECT id FROM samples WHERE status = ? ORDER BY position", ACCEPTED)
        assert "samples_status" in by_status and "TEMP B-TREE" not in by_status


def test_an_older_workspace_gets_the_indexes_on_its_next_open(ws):
    root, ids = ws.root, ws.sample_ids()
    ws.close()
    with sqlite3.connect(root / store.DB_NAME) as c:  # as an older medseg made it
        for name in store.INDEXES:
            c.execute(f"DROP INDEX {name}")
    assert not set(store.INDEXES) & _indexes(root)
    with Workspace.open(root, verify="none") as w:
        assert set(store.INDEXES) <= _indexes(root)
        assert w.sample_ids() == ids and w.check_integrity() == []


def test_add_indexes_gives_up_on_a_database_it_cannot_write(ws, tmp_path):
    for name in store.INDEXES:
        with sqlite3.connect(ws.root / store.DB_NAME) as c:
            c.execute(f"DROP INDEX {name}")
    ro = sqlite3.connect(f"{(ws.root / store.DB_NAME).as_uri()}?mode=ro", uri=True)
    try:
        assert store.add_indexes(ro) == []  # opened without them, no error
    finally:
        ro.close()
    rw = sqlite3.connect(ws.root / store.DB_NAME)
    try:
        assert store.add_indexes(rw) == list(store.INDEXES) and store.add_indexes(rw) == []
    finally:
        rw.close()


def test_the_summary_counts_are_read_once_per_state_of_the_workspace(ws, monkeypatch):
    reads = []
    real = overview.counts
    monkeypatch.setattr(overview, "counts", lambda conn: reads.append(1) or real(conn))
    first = ws.summary()
    assert ws.summary() == first and len(reads) == 1  # nothing written: not read again
    first["by_status"]["accepted"] = 99  # the caller's copy
    assert ws.summary()["by_status"]["accepted"] == 0 and len(reads) == 1

    ws.set_status("2", ACCEPTED)  # this connection's write
    assert ws.summary()["by_status"]["accepted"] == 1 and len(reads) == 2
    with Workspace.open(ws.root, verify="none") as other:  # another connection's (or process's) write
        other.add_findings([Finding("3", "full_mask", "error", "all foreground")], source="qc")
    now = ws.summary()
    assert len(reads) == 3 and now["by_check"] == {"full_mask": 1} and now["findings_by_source"] == {"qc": 1}
    with sqlite3.connect(ws.root / store.DB_NAME) as c:  # not even medseg
        c.execute("UPDATE samples SET status = 'excluded', reason = 'r' WHERE id = '1'")
    assert ws.summary()["by_status"]["excluded"] == 1 and len(reads) == 4
    kept, fresh = ws.summary(), real(ws._conn)
    assert {k: kept[k] for k in fresh} == fresh
