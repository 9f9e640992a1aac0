"""A workspace as training data: each sample's current label revision, not the source masks.

This is how fine-tuning learns from the user's corrections. The snapshot is
taken once, when training starts: every sample is pinned to the revision that
was current then (its content-addressed blob), so a viewer saving new
corrections while a trainer runs changes neither the run nor its record, and
the run can say exactly which labels it saw (``record_run``). Samples hold
paths only, never the SQLite connection, so they pickle into DataLoader
worker processes and torchrun ranks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.datasets.dataset import UNREADABLE, Problem, VolumeFacts
from medseg.workspace.records import TRAINABLE_STATUSES


def is_workspace(path: str | Path) -> bool:
    from medseg.workspace.store import DB_NAME

    return bool(path) and (Path(path) / DB_NAME).is_file()


@dataclass(frozen=True)
class WorkspaceSample(VolumeFacts):
    """One sample pinned to one label revision; loads like a dataset ``Sample``."""

    id: str
    image_path: Path
    group: str
    revision: int
    mask_sha256: str
    blob_root: Path
    mask_kind: str = "binary"
    extra: dict = field(default_factory=dict)

    def load_image(self):
        from medseg.io import load

        return load(self.image_path)

    def load_mask(self) -> np.ndarray:
        if self.is_volume:  # stored slice by slice: the workspace assembles the pinned revision's volume
            from medseg.workspace import Workspace

            with Workspace.open(self.workspace_root, verify="none") as ws:
                return ws.mask_at(self.revision)
        from medseg.workspace.blobs import BlobStore

        return BlobStore(self.blob_root).get(self.mask_sha256)

    @property
    def workspace_root(self) -> Path:
        return self.blob_root.parent


@dataclass
class WorkspaceDataset:
    """The dataset-like view the trainer takes (``samples``, ``classmap``, ``root``, ``problems``)."""

    root: Path
    dataset_root: Path
    classmap: Any
    samples: list[WorkspaceSample]
    problems: list[Problem]
    statuses: tuple[str, ...]
    layout: str = "workspace"
    by_status: dict[str, int] = field(default_factory=dict)  # every sample of the workspace, by review status

    def problems_by_kind(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    @property
    def revisions(self) -> dict[str, int]:
        return {s.id: s.revision for s in self.samples}

    def record_run(self, run_id: str, checkpoint: str | Path, kind: str = "train") -> None:
        """Write into the workspace which revision of each sample this run used."""
        from medseg.workspace import Workspace

        with Workspace.open(self.root, verify="none") as ws:
            ws.record_model_run(run_id, str(checkpoint), kind, self.revisions)


def open_workspace_dataset(path: str | Path, statuses: list[str] | tuple[str, ...] | None = None) -> WorkspaceDataset:
    """Snapshot a workspace's trainable samples (status in ``statuses``; default: all but excluded).

    Samples whose source image changed or vanished since import are left out and
    listed as problems, as a dataset folder lists unreadable files.
    """
    from medseg.workspace import Workspace

    wanted = tuple(statuses or TRAINABLE_STATUSES)
    from medseg.workspace.split_groups import split_groups

    with Workspace.open(path) as ws:
        changed = {c.sample_id: c for c in ws.source_changes}
        groups = split_groups(ws)  # duplicates across groups found by QC join their groups
        samples, problems = [], []
        records = ws.samples()
        for rec in records:
            if rec.status not in wanted or rec.head_revision is None:
                continue
            change = changed.get(rec.id)
            if change is not None and Path(change.path) == rec.image_path:
                # its labels were drawn on an image that is no longer there as it was
                problems.append(
                    Problem(
                        rec.image_path,
                        UNREADABLE,
                        f"sample {rec.id}: source image {change.kind} since the workspace imported it",
                    )
                )
                continue
            revision = ws.revision(rec.head_revision)
            samples.append(
                WorkspaceSample(
                    rec.id,
                    rec.image_path,
                    groups[rec.id],
                    revision.id,
                    revision.mask_sha256,
                    ws.root / "masks",
                    rec.mask_kind,
                    {"geometry": rec.geometry} if getattr(rec, "geometry", None) else {},
                )
            )
        by_status = dict(Counter(r.status for r in records))
        return WorkspaceDataset(ws.root, ws.dataset_root, ws.classmap, samples, problems, wanted, by_status=by_status)
