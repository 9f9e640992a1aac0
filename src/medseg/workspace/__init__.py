"""The annotation store: samples, label revisions, review status, QC findings and scores
(SQLite + content-addressed masks)."""

from medseg.workspace.blobs import mask_sha256
from medseg.workspace.records import (
    ORIGINS,
    STATUSES,
    ModelRun,
    Revision,
    SampleRecord,
    SourceChange,
    StatusChange,
)
from medseg.workspace.workspace import Workspace

__all__ = [
    "ORIGINS",
    "STATUSES",
    "ModelRun",
    "Revision",
    "SampleRecord",
    "SourceChange",
    "StatusChange",
    "Workspace",
    "mask_sha256",
]
