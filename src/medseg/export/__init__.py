"""Cleaned-dataset export: plain folders, nnU-Net raw, MONAI datalist, with a manifest of every change."""

from medseg.export.export import (
    DEFAULT_STATUSES,
    FORMATS,
    STATUSES,
    ExportProgress,
    ExportResult,
    export_dataset,
    iter_export,
    make_split,
)
from medseg.export.target import is_medseg_export

__all__ = ["DEFAULT_STATUSES", "FORMATS", "STATUSES", "ExportProgress", "ExportResult", "export_dataset",
           "is_medseg_export", "iter_export", "make_split"]
