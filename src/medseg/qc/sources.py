"""Where QC reads samples from: a bare dataset (masks from the source files) or a workspace
(masks from the head revisions; the source files only for the raw grey values).

Both hand out :class:`~medseg.qc.checks_base.SampleView` objects and the
findings indexing already made, and a workspace stores the run's findings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medseg.datasets.dataset import MASK_VOLUME
from medseg.errors import MaskError
from medseg.io import load as load_image
from medseg.qc.checks_base import SampleView
from medseg.qc.checks_files import KIND_TO_CHECK, problem_finding, stem
from medseg.qc.findings import Finding


def read_raw(sample, classmap) -> dict:
    """The sample's mask as its layout reads it, plus what the stored values were.

    Keys: ``mask`` (class ids / channels), ``raw`` and ``raw_report`` (single
    grey binary file: values as stored and the report of binarising them),
    ``raw_reports`` (one report per class file), ``raw_bad_ids`` (id masks:
    [(id, pixels)] the class map lacks), ``mask_path``.
    """
    paths = list(sample.mask_paths.values())
    if sample.mask_kind in ("binary", "ids"):
        return read_raw_file(sample.mask_kind, paths, classmap)
    out = {"mask_path": str(paths[0]) if paths else None}
    if sample.mask_kind == "merge":
        mask, reports = sample.load_mask(return_report=True)
        out.update(mask=mask, raw_reports=reports)
    else:
        out["mask"] = sample.load_mask()
    return out


def read_raw_file(mask_kind: str, paths: list, classmap) -> dict:
    """:func:`read_raw` of a sample whose mask is one file ("binary" or "ids" ``mask_kind``), from the
    file's path alone: a workspace need not build the sample first."""
    from medseg.io.masks import binarise, read_mask, read_mask_values

    out = {"mask_path": str(paths[0]) if paths else None}
    if mask_kind == "binary":
        path = Path(paths[0])
        raw = read_mask_values(path)
        if _clean_binary(raw):
            out.update(mask=(raw > 0).astype(np.uint8), raw=raw)  # nothing for binarise to decide
            return out
        try:
            mask, report = binarise(raw)
        except ValueError as e:
            raise MaskError(path, str(e)) from None
        out.update(mask=mask, raw=raw, raw_report=report)
    else:
        path = Path(paths[0])
        raw = read_mask(path, classmap)
        values, counts = np.unique(raw, return_counts=True)
        valid = {0, *classmap.ids}
        out.update(mask=raw, raw_bad_ids=[(int(v), int(c)) for v, c in zip(values, counts) if int(v) not in valid])
    return out


def _clean_binary(raw: np.ndarray) -> bool:
    """An 8-bit mask holding only 0 and 255 (or only 0 and 1): a bincount is 10x cheaper than binarise's
    np.unique, and most masks are clean."""
    if raw.dtype != np.uint8:
        return False
    present = set(np.flatnonzero(np.bincount(raw.ravel(), minlength=256)).tolist())
    return present <= {0, 255} or present <= {0, 1}


def _image(loaded) -> tuple[np.ndarray, bool, str]:
    return loaded.array, bool(loaded.rgb), loaded.source


def read_volume(sample) -> dict:
    """A volume sample's label as its file holds it, with the file's own grid and the decoded image's.

    The label is read without the sample's grid check (``Sample.load_mask`` refuses a label off its
    image's grid): QC reports the mismatch as ``grid_mismatch`` and still checks the label alone.
    """
    from medseg.io.volume_geometry import Geometry
    from medseg.io.volume_labels import read_label_volume

    (path,) = sample.mask_paths.values()
    ids, label_grid = read_label_volume(path)
    image = sample.load_image()
    try:
        geometry = Geometry.from_image(image)
    except ValueError:  # an image that is no volume: the grid indexing read from its header
        geometry = sample.geometry
    return {
        "mask": ids,
        "image": image.array,
        "rgb": bool(image.rgb),
        "geometry": geometry or label_grid,
        "label_geometry": label_grid,
        "mask_path": str(path),
    }


class DatasetSource:
    in_workspace = False

    def __init__(self, dataset):
        self.dataset = dataset
        self.classmap = dataset.classmap
        self.root = Path(dataset.root)
        self._by_id = {s.id: s for s in dataset.samples}

    def sample_ids(self) -> list[str]:
        return [s.id for s in self.dataset.samples]

    def group(self, sid: str) -> str:
        return self._by_id[sid].group

    def path(self, sid: str) -> str:
        return str(self._by_id[sid].image_path)

    def index_findings(self) -> list[Finding]:
        return [problem_finding(p.kind, p.path, p.message) for p in self.dataset.problems]

    def change_findings(self) -> list[Finding]:
        return []  # a bare dataset has no imported state to differ from

    def load(self, sid: str, want_raw: bool) -> SampleView:
        s = self._by_id[sid]
        if getattr(s, "is_volume", False):
            parts = read_volume(s)
            return SampleView(
                sid, parts.pop("mask"), self.classmap, group=s.group, image_path=str(s.image_path), **parts
            )
        parts = read_raw(s, self.classmap)
        array, rgb, _ = _image(s.load_image())
        return SampleView(
            sid,
            parts.pop("mask"),
            self.classmap,
            image=array,
            rgb=rgb,
            group=s.group,
            image_path=str(s.image_path),
            **parts,
        )

    def save(self, findings: list[Finding], ran: set[str], scores: dict | None = None) -> None:
        """A bare dataset stores nothing: QC never writes next to the source files."""


class _Row(NamedTuple):
    """What QC keeps of a sample's workspace record for the whole run: paths as strings, the shared strings
    interned (a SampleRecord, with its Paths, hashes and status, held 1.1 KB a sample: 110 MB at 100,000)."""

    image_path: str
    mask_paths: tuple[str, ...]  # in the record's order
    group: str
    mask_kind: str
    head_revision: int | None

    @classmethod
    def of(cls, r) -> _Row:
        return cls(
            str(r.image_path),
            tuple(str(p) for p in r.mask_paths.values()),
            sys.intern(r.group),
            sys.intern(r.mask_kind),
            r.head_revision,
        )


class WorkspaceSource:
    in_workspace = True

    def __init__(self, ws):
        self.ws = ws
        self.classmap = ws.classmap
        self.root = Path(ws.root)
        self._records = {r.id: _Row.of(r) for r in ws.samples()}
        changes = list(getattr(ws, "source_changes", None) or [])
        self._changes = changes
        self._changed = {c.sample_id for c in changes}
        self._missing = {
            c.sample_id
            for c in changes
            if c.kind == "missing"
            and c.sample_id in self._records
            and Path(c.path) == Path(self._records[c.sample_id].image_path)
        }

    def sample_ids(self) -> list[str]:
        return list(self._records)

    def group(self, sid: str) -> str:
        return self._records[sid].group

    def path(self, sid: str) -> str:
        return self._records[sid].image_path

    def index_findings(self) -> list[Finding]:
        """Indexing problems the workspace stored at creation (source "index"), under QC's check names."""
        out = []
        for f in self.ws.findings(source="index"):
            check, severity = KIND_TO_CHECK.get(f.check, (f.check, f.severity))
            sid = f.sample_id
            if f.path and sid == Path(f.path).stem:  # a problem's file named the sample: "case_006", not "case_006.nii"
                sid = stem(f.path)
            out.append(
                Finding(
                    sid,
                    check,
                    severity,
                    f.message,
                    f.value,
                    f.path,
                    f.fix,
                    {**f.details, "kind": f.check, "stored_as": "index"},
                )
            )
        return out

    def change_findings(self) -> list[Finding]:
        out = []
        for c in self._changes:
            if c.kind == "missing":
                msg = f"source file {c.path} vanished since the workspace was made; its revisions are kept"
                out.append(problem_finding("source_missing", c.path, msg, c.sample_id))
            else:
                msg = (
                    f"source file {c.path} changed since the workspace imported it; the workspace keeps "
                    "the imported revision (re-import to take the new file)"
                )
                out.append(problem_finding("source_changed", c.path, msg, c.sample_id))
        return out

    def is_volume(self, sid: str) -> bool:
        probe = getattr(self.ws, "is_volume", None)
        return bool(probe(sid)) if probe is not None else False

    def load(self, sid: str, want_raw: bool) -> SampleView:
        """The sample's view: its head mask, its image, and (``want_raw``) its source mask's stored values.

        The sample's kind, image and source mask files are the records read when the source was made (a
        sample's files do not change within a run); a query each for them was a fifth of decoding a
        small frame."""
        rec = self._records[sid]
        first_mask = rec.mask_paths[0] if rec.mask_paths else rec.image_path
        mask = self.ws.current_mask(sid)
        if rec.mask_kind == MASK_VOLUME and hasattr(self.ws, "is_volume"):
            # the head revision is stored on the image's grid; a source label off it was a finding at import
            array = None if sid in self._missing else self.ws.image(sid).array
            return SampleView(
                sid,
                mask,
                self.classmap,
                image=array,
                group=rec.group,
                image_path=rec.image_path,
                mask_path=first_mask,
                in_workspace=True,
                revision=rec.head_revision,
                geometry=self.ws.geometry(sid),
            )
        # A vanished image leaves the head mask to check; a changed source is not the one imported,
        # so its raw values say nothing about the head (source_changed reports it).
        array, rgb = None, False
        if sid not in self._missing:
            array, rgb, _ = _image(load_image(Path(rec.image_path)))  # Workspace.image's read, without its query
        parts = {"mask_path": first_mask}
        if want_raw and sid not in self._changed:
            if rec.mask_kind in ("binary", "ids"):
                parts = read_raw_file(rec.mask_kind, list(rec.mask_paths), self.classmap)
            else:
                parts = read_raw(self.ws.source_sample(sid), self.classmap)
            parts.pop("mask")
        return SampleView(
            sid,
            mask,
            self.classmap,
            image=array,
            rgb=rgb,
            group=rec.group,
            image_path=rec.image_path,
            in_workspace=True,
            revision=rec.head_revision,
            **parts,
        )

    def save(self, findings: list[Finding], ran: set[str], scores: dict | None = None) -> None:
        """This run's findings replace the previous run's for the checks that ran (one transaction;
        findings of checks not run this time are kept); then each score method's scores replace its
        previous ones ({method: (scores, details)})."""
        kept = [f for f in self.ws.findings(source="qc") if f.check not in ran]
        self.ws.add_findings(kept + findings, source="qc", replace=True)
        for method, (values, details) in (scores or {}).items():
            self.ws.set_scores(method, values, details)


def as_source(source):
    from medseg.datasets import Dataset

    if isinstance(source, Dataset):
        return DatasetSource(source)
    if hasattr(source, "current_mask") and hasattr(source, "add_findings"):
        return WorkspaceSource(source)
    raise TypeError(
        f"run_qc takes a medseg.datasets.Dataset or a medseg.workspace.Workspace, "
        f"got {type(source).__name__}; open a folder with open_dataset(path) or Workspace.open(path)"
    )
