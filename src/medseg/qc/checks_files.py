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
* ``stray_file``: two files claiming one sample id (warning), a non-image
  file inside an image or mask folder (info);
* ``source_changed`` (warning, workspaces): a source file differs from the
  one imported; the workspace keeps its imported revision.
"""

from __future__ import annotations

from pathlib import Path

from medseg.qc.checks_base import Check
from medseg.qc.findings import Finding

KIND_TO_CHECK = {
    "unreadable": ("unreadable", "error"),
    "bad_row": ("unreadable", "error"),
    "image_without_mask": ("missing_pair", "warning"),
    "mask_without_image": ("missing_pair", "warning"),
    "missing_slice": ("missing_pair", "warning"),
    "size_mismatch": ("size_mismatch", "error"),
    "duplicate_stem": ("stray_file", "warning"),
    "unsupported_file": ("stray_file", "info"),
    "source_changed": ("source_changed", "warning"),
    "source_missing": ("unreadable", "error"),
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
        ("stray_file", "files claiming a taken sample id, non-image files in image folders"),
        ("source_changed", "workspace source files changed since import"),
    )
)
