"""What the workspace hands out: plain dataclasses, detached from the database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.datasets.dataset import MASK_VOLUME

# The review states of a sample: the one spelling every layer imports (the schema's CHECK lists the same).
STATUSES = ("unreviewed", "accepted", "corrected", "excluded")
UNREVIEWED, ACCEPTED, CORRECTED, EXCLUDED = STATUSES
# A model learns from every sample not excluded; an export writes the same ones unless told otherwise
# (in this order, which its manifest records).
TRAINABLE_STATUSES = (UNREVIEWED, ACCEPTED, CORRECTED)
DEFAULT_EXPORT_STATUSES = (ACCEPTED, CORRECTED, UNREVIEWED)

# How a revision was made: imported from the dataset, edited by hand, a QC auto-fix, a model's prediction
# copied in, a revert to an earlier revision.
ORIGINS = ("imported", "manual", "auto-fix", "model", "revert")
IMPORTED, MANUAL, AUTO_FIX, MODEL, REVERT = ORIGINS
CHANGE_KINDS = ("changed", "missing")


def check_status(status: str) -> None:
    if status not in STATUSES:
        from medseg.errors import WorkspaceError

        raise WorkspaceError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")


@dataclass(frozen=True)
class SampleRecord:
    """One sample as the workspace knows it. Paths are absolute, under the dataset root."""

    id: str
    image_path: Path
    mask_paths: dict[Any, Path]
    group: str
    image_sha256: str
    status: str
    reason: str | None
    head_revision: int | None
    mask_source_sha256: dict[str, str] = field(default_factory=dict)
    mask_kind: str = "binary"
    # A volume sample's image grid (medseg.io.volume_geometry.Geometry.to_dict()); None for a 2-D sample.
    geometry: dict | None = None

    @property
    def is_volume(self) -> bool:
        return self.mask_kind == MASK_VOLUME


@dataclass(frozen=True)
class Revision:
    """One saved label state of a sample.

    ``changed`` maps a foreground class id to the pixels whose membership in
    that class differs from the parent revision (a pixel moved from class 1 to
    class 2 counts once for each); ``n_changed`` counts pixels whose label
    differs at all. The first (imported) revision has no parent: both are
    empty. ``details`` holds facts about how the content was made, e.g. the
    binarise report of an imported grey mask.
    """

    id: int
    sample_id: str
    parent_id: int | None
    mask_sha256: str
    created: str
    author: str
    origin: str
    note: str | None
    changed: dict[int, int]
    n_changed: int
    details: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, r) -> Revision:
        """From a ``revisions`` table row."""
        return cls(
            id=r["id"],
            sample_id=r["sample_id"],
            parent_id=r["parent_id"],
            mask_sha256=r["mask_sha256"],
            created=r["created"],
            author=r["author"],
            origin=r["origin"],
            note=r["note"],
            changed={int(k): v for k, v in json.loads(r["changed"]).items()},
            n_changed=r["n_changed"],
            details=json.loads(r["details"]),
        )


def insert_revision(
    conn,
    sample_id: str,
    parent_id: int | None,
    sha: str,
    *,
    author: str,
    origin: str,
    note: str | None,
    changed: dict[int, int],
    n_changed: int,
    details: dict,
    volume: str | None = None,
) -> Revision:
    """Insert a revision row (``volume``: a volume revision's grid as JSON) and make it the sample's head,
    inside the caller's transaction; the Revision."""
    from medseg.workspace.store import now

    created = now()
    rev_id = conn.execute(
        "INSERT INTO revisions (sample_id, parent_id, mask_sha256, created, author, origin, note, "
        "changed, n_changed, details, volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sample_id,
            parent_id,
            sha,
            created,
            author,
            origin,
            note,
            json.dumps(changed),
            n_changed,
            json.dumps(details),
            volume,
        ),
    ).lastrowid
    conn.execute("UPDATE samples SET head_revision = ? WHERE id = ?", (rev_id, sample_id))
    return Revision(rev_id, sample_id, parent_id, sha, created, author, origin, note, changed, n_changed, details)


@dataclass(frozen=True)
class SourceChange:
    """A source file that differs from (``changed``) or vanished since (``missing``) the last import."""

    sample_id: str
    path: Path
    kind: str


@dataclass(frozen=True)
class StatusChange:
    sample_id: str
    status: str
    reason: str | None
    time: str
    author: str


@dataclass(frozen=True)
class ModelRun:
    """A model run (training, prediction, ranking) and the revision of each sample it used."""

    run_id: str
    checkpoint: str
    kind: str
    created: str
    revisions: dict[str, int]
