"""The export's record of itself: ``manifest.json`` (every sample, every hash) and ``CHANGES.md``.

The manifest lists every sample of the workspace, exported or not: source
files and their sha256, the exported files and theirs, review status and
exclusion reason, the revision history in brief (how many, which origins and
authors, pixels changed per class between the imported mask and the exported
one) and the QC findings. ``CHANGES.md`` says the same in a few lines a
person reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medseg import __version__
from medseg.classmap import ClassMap
from medseg.export.files import sha256_path
from medseg.export.item import SplitPlan, Written
from medseg.export.target import MANIFEST_KIND
from medseg.workspace.masks import changed_pixels as workspace_changed_pixels
from medseg.workspace.records import ACCEPTED, CORRECTED, EXCLUDED, IMPORTED, STATUSES, UNREVIEWED

MANIFEST_VERSION = 1
_LISTED = 40  # rows per section of CHANGES.md; the manifest has them all


def changed_pixels(before: np.ndarray | None, after: np.ndarray, classmap: ClassMap) -> dict[str, int] | None:
    """Pixels that entered or left each class between two masks, by class name (None: not comparable).

    Counted as the workspace counts a revision's changes (a pixel moved from
    class a to class b counts for both).
    """
    if before is None or before.shape != after.shape:
        return None
    per_id, _ = workspace_changed_pixels(before, after, classmap)
    return {c.name: int(per_id.get(c.id, 0)) for c in classmap.classes}


def revision_summary(
    revisions: list,
    head_mask: np.ndarray,
    imported_mask: np.ndarray | None,
    classmap: ClassMap,
    *,
    changed_slices: Callable[[int], list[int]] | None = None,
) -> dict[str, Any]:
    """The sample's history in brief. ``changed_slices`` (a volume's: revision id -> the slices it changed
    against its parent) adds those per revision and the slices that differ between import and head."""
    changed = changed_pixels(imported_mask, head_mask, classmap)
    imported = next((r for r in revisions if r.origin == IMPORTED), None)
    volume = {}
    if changed_slices is not None:
        volume["slices_changed_vs_imported"] = differing_slices(imported_mask, head_mask)
    summary = {
        "count": len(revisions),
        "origins": dict(Counter(r.origin for r in revisions)),
        "authors": sorted({r.author for r in revisions if r.author}),
        "imported": imported.id if imported is not None else None,
        "head": revisions[-1].id if revisions else None,
        "head_mask_sha256": revisions[-1].mask_sha256 if revisions else None,
        "changed_vs_imported": changed,
        "n_changed_vs_imported": None if changed is None else sum(changed.values()),
        "history": [
            {
                "id": r.id,
                "parent": r.parent_id,
                "origin": r.origin,
                "author": r.author,
                "created": _iso(r.created),
                "note": r.note,
                "n_changed": r.n_changed,
                **({"changed_slices": changed_slices(r.id)} if changed_slices is not None else {}),
            }
            for r in revisions
        ],
    }
    return {**summary, **volume}


def differing_slices(before: np.ndarray | None, after: np.ndarray) -> list[int] | None:
    """The z of the slices where two (Z, Y, X) label volumes differ (None: not comparable)."""
    if before is None or before.shape != after.shape:
        return None
    return [int(z) for z in np.flatnonzero((before != after).reshape(after.shape[0], -1).any(axis=1))]


def slice_ranges(zs: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    runs: list[list[int]] = []
    for z in sorted(zs):
        if runs and z == runs[-1][1] + 1:
            runs[-1][1] = z
        else:
            runs.append([z, z])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def source_entry(record, mask_hashes: dict[str, str | None]) -> dict[str, Any]:
    image = Path(record.image_path)
    return {
        "image": {
            "path": str(image),
            "sha256": sha256_path(image),
            "sha256_at_import": getattr(record, "image_sha256", None),
        },
        "masks": [
            {
                "key": str(k),
                "path": str(p),
                "sha256": mask_hashes.get(str(p)),
                "sha256_at_import": (getattr(record, "mask_source_sha256", None) or {}).get(str(k)),
            }
            for k, p in (record.mask_paths or {}).items()
        ],
    }


def sample_entry(
    record,
    *,
    stem: str | None,
    written: Written | None,
    root: Path,
    source: dict,
    revisions: dict,
    findings: Iterable,
    left_out: str | None,
    part: str | None,
    status_log: Iterable = (),
) -> dict[str, Any]:
    return {
        "id": record.id,
        "export_id": stem,
        "status": record.status,
        "reason": record.reason,
        "group": record.group,
        **({"geometry": record.geometry} if getattr(record, "geometry", None) else {}),
        "split": part,
        "exported": None
        if written is None
        else {
            "images": [f.to_dict(root) for f in written.images],
            "masks": [f.to_dict(root) for f in written.masks],
        },
        "left_out": left_out,
        "source": source,
        "revisions": revisions,
        "status_log": [
            {"status": c.status, "reason": c.reason, "time": _iso(c.time), "author": c.author} for c in status_log
        ],
        "findings": [
            {"check": f.check, "severity": f.severity, "message": f.message, "value": f.value} for f in findings
        ],
    }


def build_manifest(
    *,
    fmt: str,
    ws,
    classmap: ClassMap,
    options: dict,
    samples: list[dict],
    files: list[dict],
    split: SplitPlan | None,
    extra: dict | None = None,
) -> dict[str, Any]:
    statuses = Counter(s["status"] for s in samples)
    exported = [s for s in samples if s["exported"] is not None]
    pixels: Counter = Counter()
    for s in exported:
        pixels.update(s["revisions"]["changed_vs_imported"] or {})
    return {
        "kind": MANIFEST_KIND,
        "manifest_version": MANIFEST_VERSION,
        "medseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "format": fmt,
        "workspace": str(ws.root),
        "dataset_root": str(ws.dataset_root),
        "classmap": classmap.to_dict(),
        "options": options,
        "counts": {
            "samples": len(samples),
            "exported": len(exported),
            "by_status": {k: statuses.get(k, 0) for k in STATUSES},
            "exported_by_status": dict(Counter(s["status"] for s in exported)),
            "excluded_reasons": dict(Counter(s["reason"] or "no reason" for s in samples if s["status"] == EXCLUDED)),
            "left_out": len(samples) - len(exported),
        },
        "pixels_changed": {k: int(v) for k, v in pixels.items()},
        "split": split.to_dict() if split is not None else None,
        "files": files,
        **(extra or {}),
        "samples": samples,
    }


def summary_line(m: dict) -> str:
    c = m["counts"]
    by = c["by_status"]
    px = ", ".join(f"{v:,} {k}" for k, v in m["pixels_changed"].items() if v)
    reasons = ", ".join(f"{n} {r}" for r, n in Counter(c["excluded_reasons"]).most_common())
    parts = [
        f"{by[CORRECTED]} corrected" + (f" ({px} pixels changed)" if px else ""),
        f"{by[EXCLUDED]} excluded" + (f" ({reasons})" if reasons else ""),
        f"{by[ACCEPTED]} accepted",
        f"{by[UNREVIEWED]} unreviewed",
    ]
    return f"{c['samples']} samples: {', '.join(parts)}; {c['exported']} exported as {m['format']}."


def changes_markdown(m: dict) -> str:
    lines = [
        f"# Changes in this export ({m['format']})",
        "",
        (
            f"Exported by medseg {m['medseg_version']} on {m['created']} from workspace `{m['workspace']}` "
            f"(dataset `{m['dataset_root']}`)."
        ),
        "",
        summary_line(m),
        "",
    ]
    if m.get("mask_values"):
        lines += [m["mask_values"]["note"], ""]
    if m["split"]:
        lines += [_split_line(m["split"]), ""]
    corrected = [s for s in m["samples"] if s["exported"] and (s["revisions"]["n_changed_vs_imported"] or 0) > 0]
    if corrected:
        # volumes: which slices to look at, as well as how many voxels
        slices = any("slices_changed_vs_imported" in s["revisions"] for s in corrected)
        lines += [
            "## Masks changed since import",
            "",
            "| sample | status | revisions | pixels changed | by |" + (" slices changed |" if slices else ""),
            "|---|---|---|---|---|" + ("---|" if slices else ""),
        ]
        for s in corrected[:_LISTED]:
            r = s["revisions"]
            px = ", ".join(f"{k} {v:,}" for k, v in (r["changed_vs_imported"] or {}).items() if v)
            origins = ", ".join(f"{k} {v}" for k, v in r["origins"].items())
            row = f"| {s['id']} | {s['status']} | {r['count']} ({origins}) | {px} | {', '.join(r['authors']) or '-'} |"
            if slices:
                row += f" {slice_ranges(r.get('slices_changed_vs_imported') or []) or '-'} |"
            lines.append(row)
        lines += _more(len(corrected)) + [""]
    left = [s for s in m["samples"] if s["exported"] is None]
    if left:
        lines += ["## Not exported", ""]
        lines += [f"- {s['id']}: {s['left_out']}" for s in left[:_LISTED]] + _more(len(left)) + [""]
    lines += ["Every sample, file hash, revision and QC finding is in `manifest.json`.", ""]
    return "\n".join(lines)


def _split_line(split: dict) -> str:
    if "folds" in split:
        sizes = " / ".join(str(len(f["val"])) for f in split["folds"])
        return f"Split: {split['k']} group-aware folds (seed {split['seed']}), validation sizes {sizes}."
    return (
        f"Split: group-aware (seed {split['seed']}), {len(split['train'])} train / {len(split['val'])} val; "
        "no group is on both sides."
    )


def _more(n: int) -> list[str]:
    return [f"- ... and {n - _LISTED} more (see manifest.json)"] if n > _LISTED else []


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value
