"""File-level checks: what indexing (or the workspace) already knows, turned into findings.

Indexing never stops at a bad file: it records a :class:`medseg.datasets.Problem`
and leaves the file out. Here each problem becomes a finding of one of these
checks (the problem's kind is kept in ``details["kind"]``):

* ``unreadable`` (error): unreadable headers, CSV rows that cannot be
  understood, files that fail to decode during QC, and workspace source files
  that vanished since import;
* ``missing_pair`` (warning): an image without its mask, a mask without its
  image, a CSV row naming a slice that is not on disk; the sample is left out;
* ``size_mismatch`` (error): image and mask disagree on rows x columns;
* ``grid_mismatch`` (error): an image volume and its label volume lie on
  different voxel grids (shape, or the affine beyond a micrometre at a
  corner); from indexing, and checked again when QC decodes the pair;
* ``stray_file``: two files claiming one sample id (warning), a non-image
  file inside an image or mask folder (info);
* ``source_changed`` (warning, workspaces): a source file differs from the
  one imported; the workspace keeps its imported revision.
"""

from __future__ import annotations

from pathlib import Path

from medseg.datasets import dataset as ds
from medseg.findings import ERROR, INFO, WARNING, Finding
from medseg.qc.checks_base import Check

# an indexing problem's kind (or a workspace source change) -> (QC check, severity)
KIND_TO_CHECK = {
    ds.UNREADABLE: ("unreadable", ERROR),
    ds.BAD_ROW: ("unreadable", ERROR),
    ds.IMAGE_WITHOUT_MASK: ("missing_pair", WARNING),
    ds.MASK_WITHOUT_IMAGE: ("missing_pair", WARNING),
    ds.MISSING_SLICE: ("missing_pair", WARNING),
    ds.SIZE_MISMATCH: ("size_mismatch", ERROR),
    ds.GRID_MISMATCH: ("grid_mismatch", ERROR),
    ds.UNSUPPORTED_VOLUME: ("unreadable", ERROR),
    ds.DUPLICATE_STEM: ("stray_file", WARNING),
    ds.UNSUPPORTED_FILE: ("stray_file", INFO),
    "source_changed": ("source_changed", WARNING),
    "source_missing": ("unreadable", ERROR),
}


def stem(path: str | Path) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".tar.gz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def problem_finding(kind: str, path: str | Path | None, message: str, sample_id: str | None = None) -> Finding:
    """A finding for one indexing problem (or workspace source change) of ``kind``."""
    check, severity = KIND_TO_CHECK.get(kind, ("stray_file", "warning"))
    sid = sample_id if sample_id is not None else (stem(path) if path else "")
    return Finding(sid, check, severity, message, path=str(path) if path else None, details={"kind": kind})


def _from_index(check_name: str):
    def decide(items: list[Finding], ctx, p: dict) -> list[Finding]:
        return [f for f in items if f.check == check_name]

    return decide


CHECKS = tuple(
    Check(name, "index", summary, decide=_from_index(name))
    for name, summary in (
        ("unreadable", "files that cannot be read or decoded"),
        ("missing_pair", "images without masks, masks without images"),
        ("size_mismatch", "image and mask of different sizes"),
        ("grid_mismatch", "image and label volume on different voxel grids (shape, spacing, origin, direction)"),
        ("stray_file", "files claiming a taken sample id, non-image files in image folders"),
        ("source_changed", "workspace source files changed since import"),
    )
)
