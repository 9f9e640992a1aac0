"""What the workspace stores about samples besides their labels: QC findings, scores, model runs.

Functions over an open connection; ``Workspace`` wraps them (holding its lock).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable

from medseg.errors import WorkspaceError
from medseg.findings import Finding, json_safe
from medseg.workspace.records import ModelRun
from medseg.workspace.store import now, write


def add_findings(conn: sqlite3.Connection, findings: Iterable, source: str, replace: bool = True) -> int:
    """Store ``findings`` under ``source`` ("qc", "index", ...); ``replace`` first drops every
    finding of that source, so a new run replaces the previous run's. Returns how many were stored."""
    rows = finding_rows(findings, source)
    with write(conn):
        if replace:
            conn.execute("DELETE FROM findings WHERE source = ?", (source,))
        insert_findings(conn, rows)
    return len(rows)


def finding_rows(findings: Iterable, source: str) -> list[tuple]:
    if not source or not isinstance(source, str):
        raise WorkspaceError(f"a findings source must be a non-empty string, got {source!r}")
    rows = []
    for f in findings:
        if not isinstance(f, Finding):
            raise WorkspaceError(f"add_findings takes medseg.findings.Finding objects, got {type(f).__name__}")
        d = f.to_dict()
        rows.append(
            (
                d["sample_id"],
                source,
                d["check"],
                d["severity"],
                d["value"],
                d["message"],
                d["path"],
                d["fix"],
                json.dumps(d["details"]),
            )
        )
    return rows


def insert_findings(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Insert ``finding_rows`` inside the caller's transaction."""
    conn.executemany(
        'INSERT INTO findings (sample_id, source, "check", severity, value, message, '
        "path, fix, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def findings(
    conn: sqlite3.Connection, sample_id: str | None = None, source: str | None = None, check: str | None = None
) -> list:
    where, args = _filters(sample_id=sample_id, source=source, check=check)
    rows = conn.execute(f"SELECT * FROM findings {where} ORDER BY id", args).fetchall()
    return [
        Finding(
            sample_id=r["sample_id"],
            check=r["check"],
            severity=r["severity"],
            message=r["message"],
            value=r["value"],
            path=r["path"],
            fix=r["fix"],
            details=json.loads(r["details"]),
        )
        for r in rows
    ]


def _filters(**conditions) -> tuple[str, list]:
    parts, args = [], []
    for column, value in conditions.items():
        if value is not None:
            parts.append(f'"{column}" = ?')
            args.append(value)
    return ("WHERE " + " AND ".join(parts)) if parts else "", args


def set_scores(
    conn: sqlite3.Connection, method: str, scores: dict[str, float], details: dict[str, dict] | None = None
) -> None:
    """The scores of ``method`` become exactly ``scores`` (earlier ones of that method are dropped)."""
    if not method or not isinstance(method, str):
        raise WorkspaceError(f"a score method must be a non-empty string, got {method!r}")
    details = details or {}
    unknown = sorted(set(details) - set(scores))
    if unknown:
        raise WorkspaceError(f"score details for samples without a score: {', '.join(map(str, unknown[:5]))}")
    known = {r[0] for r in conn.execute("SELECT id FROM samples")}
    missing = sorted(str(s) for s in scores if str(s) not in known)
    if missing:
        raise WorkspaceError(
            f"scores for samples the workspace does not hold: {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    created = now()
    values = [_score(v, s) for s, v in scores.items()]  # a bad score refused before anything is written
    # each row's details made into JSON as it is inserted: a list of them all was the peak of QC's main process
    rows = ((method, str(s), v, json.dumps(json_safe(details.get(s, {}))), created) for s, v in zip(scores, values))
    with write(conn):
        conn.execute("DELETE FROM scores WHERE method = ?", (method,))
        conn.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", rows)


def _score(value, sample_id) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise WorkspaceError(f"score of sample {sample_id} is not a number: {value!r}") from None
    return v if math.isfinite(v) else None  # NaN (e.g. Dice of two empty masks) is stored as unknown


def scores(conn: sqlite3.Connection, method: str) -> dict[str, float | None]:
    rows = conn.execute("SELECT sample_id, score FROM scores WHERE method = ? ORDER BY rowid", (method,))
    return {r[0]: r[1] for r in rows}


def score_details(conn: sqlite3.Connection, method: str) -> dict[str, dict]:
    rows = conn.execute("SELECT sample_id, details FROM scores WHERE method = ? ORDER BY rowid", (method,))
    return {r[0]: json.loads(r[1]) for r in rows}


def score_methods(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT method FROM scores ORDER BY method")]


def record_model_run(
    conn: sqlite3.Connection, run_id: str, checkpoint_path, kind: str, revisions: dict[str, int]
) -> ModelRun:
    """Record that run ``run_id`` (training, prediction, ranking: ``kind``) used these revisions."""
    if not run_id or not kind:
        raise WorkspaceError("a model run needs a run_id and a kind")
    created = now()
    with write(conn):
        if conn.execute("SELECT 1 FROM model_runs WHERE run_id = ?", (run_id,)).fetchone():
            raise WorkspaceError(f"model run {run_id!r} is already recorded")
        conn.execute("INSERT INTO model_runs VALUES (?, ?, ?, ?)", (run_id, str(checkpoint_path), kind, created))
        for sample_id, revision_id in revisions.items():
            row = conn.execute("SELECT sample_id FROM revisions WHERE id = ?", (int(revision_id),)).fetchone()
            if row is None or row[0] != str(sample_id):
                raise WorkspaceError(
                    f"model run {run_id!r}: revision {revision_id} is not a revision of sample {sample_id!r}"
                )
            conn.execute("INSERT INTO run_revisions VALUES (?, ?, ?)", (run_id, str(sample_id), int(revision_id)))
    return ModelRun(run_id, str(checkpoint_path), kind, created, {str(k): int(v) for k, v in revisions.items()})


def model_runs(conn: sqlite3.Connection, sample_id: str | None = None) -> list[ModelRun]:
    """Every recorded run (oldest first); with ``sample_id``, only runs that used that sample."""
    runs = conn.execute("SELECT * FROM model_runs ORDER BY created, run_id").fetchall()
    used: dict[str, dict[str, int]] = {r["run_id"]: {} for r in runs}
    for r in conn.execute("SELECT run_id, sample_id, revision_id FROM run_revisions ORDER BY rowid"):
        used[r[0]][r[1]] = r[2]
    return [
        ModelRun(r["run_id"], r["checkpoint"], r["kind"], r["created"], used[r["run_id"]])
        for r in runs
        if sample_id is None or sample_id in used[r["run_id"]]
    ]
