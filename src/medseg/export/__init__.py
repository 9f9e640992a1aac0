"""Cleaned-dataset export: plain folders, nnU-Net raw, MONAI datalist, with a manifest of every change."""

from medseg.export.export import (
    DEFAULT_STATUSES,
    FORMATS,
    STATUSES,
    ExportResult,
    export_dataset,
    iter_export,
    make_split,
)
from medseg.export.formats import format_names, get_writer, register_format, unregister_format
from medseg.export.target import is_medseg_export
from medseg.export.writer import ExportWriter

__all__ = [
    "DEFAULT_STATUSES",
    "FORMATS",
    "STATUSES",
    "ExportResult",
    "ExportWriter",
    "export_dataset",
    "format_names",
    "get_writer",
    "is_medseg_export",
    "iter_export",
    "make_split",
    "register_format",
    "unregister_format",
]
