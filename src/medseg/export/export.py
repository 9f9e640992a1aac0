"""Export a workspace's cleaned dataset: the selected samples' head revisions, their source images, a manifest.

``iter_export`` is a job of :mod:`medseg.jobs`: ``Started``, a ``Progress``
per workspace sample (stage "sample") and one while the manifest is written
(stage "finishing"), then ``Result(ExportResult)``; ``export_dataset`` runs it
to the end. Nothing appears at ``out`` until the whole export, manifest
included, is written (:mod:`medseg.export.target`); a cancel, closing the
generator early, an exception, or Ctrl-C leaves ``out`` as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from medseg.datasets.split import kfold_by_group, split_by_group
from medseg.errors import ExportError
from medseg.export.files import safe_stems, sha256_path
from medseg.export.formats import FORMATS, get_writer
from medseg.export.item import ExportItem, SplitPlan, Written
from medseg.export.manifest import (
    build_manifest,
    changes_markdown,
    revision_summary,
    sample_entry,
    source_entry,
    summary_line,
)
from medseg.export.mask_out import mask_problem, spatial_shape
from medseg.export.mask_values import check_option, resolve
from medseg.export.target import MANIFEST_NAME, Staging, check_target
from medseg.jobs import CancelToken, Job, Progress, Result, Started, check, run
from medseg.workspace.records import DEFAULT_EXPORT_STATUSES as DEFAULT_STATUSES
from medseg.workspace.records import EXCLUDED, IMPORTED, STATUSES
from medseg.workspace.split_groups import split_groups

CHANGES_NAME = "CHANGES.md"


@dataclass(frozen=True)
class ExportResult:
    out: Path
    n_samples: int
    manifest_path: Path
    summary_text: str


def _check_options(fmt: str, statuses: Sequence[str], split) -> tuple[str, ...]:
    get_writer(fmt)  # ExportError listing the formats
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    bad = [s for s in statuses if s not in STATUSES]
    if bad or not statuses:
        raise ExportError(f"unknown status(es) {bad or statuses!r}; valid: {', '.join(STATUSES)}")
    if split is not None and not isinstance(split, int):
        fr = list(split)
        if len(fr) != 2 or any(not isinstance(f, (int, float)) or f <= 0 for f in fr):
            raise ExportError(f"split must be two positive (train, val) fractions or a number of folds, got {split!r}")
    elif isinstance(split, int) and (isinstance(split, bool) or split < 2):
        raise ExportError(f"a k-fold split needs k >= 2 folds, got {split!r}")
    return statuses


def make_split(stems_groups: dict[str, str], split, seed: int) -> SplitPlan:
    """A group-aware split of the exported stems (``stems_groups``: stem -> group)."""
    items = [SimpleNamespace(id=s, group=g) for s, g in stems_groups.items()]
    try:
        if isinstance(split, int):
            folds = [([i.id for i in tr], [i.id for i in va]) for tr, va in kfold_by_group(items, split, seed)]
            part_of = {s: f"fold{k}" for k, (_, va) in enumerate(folds) for s in va}
            return SplitPlan("kfold_by_group", seed, folds, part_of, k=split)
        fractions = [float(f) for f in split]
        train, val = split_by_group(items, fractions, seed)
    except ValueError as e:
        raise ExportError(f"cannot split the exported samples by group: {e}") from None
    folds = [([i.id for i in train], [i.id for i in val])]
    part_of = {**{i.id: "train" for i in train}, **{i.id: "val" for i in val}}
    return SplitPlan("split_by_group", seed, folds, part_of, fractions=fractions)


def iter_export(
    ws,
    out: str | Path,
    fmt: str = "folders",
    *,
    statuses: Sequence[str] = DEFAULT_STATUSES,
    include_excluded: bool = False,
    split=None,
    seed: int = 0,
    overwrite: bool = False,
    mask_scale: int = 1,
    mask_values: str = "source",
    cancel: CancelToken | None = None,
) -> Job:
    """Write the cleaned dataset into ``out``: a job yielding progress, then ``Result(ExportResult)``.

    ``statuses`` says which review states are exported (``include_excluded``
    adds "excluded"); ``split`` is None, (train, val) fractions, or a number
    of folds, always by the samples' groups. ``mask_values``: "source" (a
    binary dataset stored as 0/255 is written as 0/255, see
    :mod:`medseg.export.mask_values`) or "ids" (class ids); formats with their
    own label convention (nnU-Net, MONAI) write ids either way, and the
    manifest's ``mask_values`` and the summary say what was written.
    ``mask_scale=255`` (folders only) spreads ids over 0..255 for viewing.
    """
    statuses = _check_options(fmt, statuses, split)
    check_option(mask_values)
    target = check_target(out, dataset_root=ws.dataset_root, workspace_root=ws.root, overwrite=overwrite)
    wanted = set(statuses) | ({EXCLUDED} if include_excluded else set())
    classmap = ws.classmap
    ids = list(ws.sample_ids())
    records = {sid: ws.sample(sid) for sid in ids}
    selected = [sid for sid in ids if records[sid].status in wanted]
    if not selected:
        raise ExportError(
            f"nothing to export: none of the workspace's {len(ids)} samples has status {' or '.join(sorted(wanted))}"
        )
    stems = safe_stems(selected)
    groups = split_groups(ws)  # duplicates across groups found by QC join their groups
    if split is not None:  # fail before writing anything when the groups cannot be split so
        make_split({stems[sid]: groups[sid] for sid in selected}, split, seed)
    options = {
        "statuses": list(statuses),
        "include_excluded": include_excluded,
        "seed": seed,
        "split": split if split is None or isinstance(split, int) else list(split),
        "mask_scale": mask_scale,
        "mask_values": mask_values,
        "overwrite": overwrite,
    }
    values = resolve(mask_values, classmap, [records[sid] for sid in selected], get_writer(fmt), mask_scale)
    yield Started("export", len(ids), {"out": str(target), "format": fmt, "mask_values": values.written})
    staging = Staging(target, overwrite)
    try:
        writer = get_writer(fmt)(staging.path, classmap, mask_scale=values.scale, name=target.name)
        written: dict[str, Written] = {}
        pending: dict[str, dict] = {}
        problems: list[str] = []
        mask_hashes: dict[str, str | None] = {}
        for done, sid in enumerate(ids, 1):
            check(cancel, done - 1, len(ids), "export")
            rec = records[sid]
            for p in (rec.mask_paths or {}).values():
                if str(p) not in mask_hashes:  # one CSV may hold every sample's RLE masks
                    mask_hashes[str(p)] = sha256_path(p)
            source = source_entry(rec, mask_hashes)
            # the records' head revisions are the snapshot exported, even if an editor saves meanwhile
            revs = [r for r in ws.revisions(sid) if rec.head_revision is None or r.id <= rec.head_revision]
            head = ws.mask_at(rec.head_revision) if rec.head_revision is not None else ws.current_mask(sid)
            imported = next((r for r in revs if r.origin == IMPORTED), None)
            imported_mask = ws.mask_at(imported.id) if imported is not None else None
            volume = bool(getattr(rec, "is_volume", False)) or len(spatial_shape(head, classmap)) == 3
            left_out, w = _left_out(rec, wanted, source), None
            if left_out is None:
                problem = mask_problem(head, classmap)
                if problem is not None:
                    problems.append(f"{sid}: {problem}")
                    left_out = problem
                else:
                    item = ExportItem(
                        sid,
                        stems[sid],
                        rec,
                        head,
                        lambda sid=sid: ws.image(sid),
                        volume=volume,
                    )
                    w = written[stems[sid]] = writer.write(item)
            pending[sid] = {
                "record": rec,
                "stem": stems[sid] if w else None,
                "written": w,
                "source": source,
                "revisions": revision_summary(
                    revs, head, imported_mask, classmap, changed_slices=ws.changed_slices if volume else None
                ),
                "findings": ws.findings(sample_id=sid),
                "left_out": left_out,
                "status_log": ws.status_history(sid),
            }
            yield Progress(done, len(ids), "sample", sid)
        if problems:
            raise ExportError(
                f"{len(problems)} mask(s) cannot be exported as the class map says (fix them, "
                "e.g. with the QC auto-fixes, or exclude them); nothing was written:\n  "
                + "\n  ".join(problems[:20])
                + ("\n  ..." if len(problems) > 20 else "")
            )
        if not written:
            raise ExportError(
                "nothing to export: every selected sample was left out ("
                + "; ".join(f"{k}: {v['left_out']}" for k, v in list(pending.items())[:5])
                + ")"
            )
        yield Progress(len(ids), len(ids), "finishing")
        check(cancel, len(ids), len(ids), "export")
        plan = None
        if split is not None:
            plan = make_split(
                {stems[sid]: groups[sid] for sid in pending if pending[sid]["written"] is not None}, split, seed
            )
        files = [f.to_dict(staging.path) for f in writer.finish(written, plan, options)]
        samples = [
            sample_entry(root=staging.path, part=plan.part_of.get(p["stem"]) if plan and p["stem"] else None, **p)
            for p in pending.values()
        ]
        manifest = build_manifest(
            fmt=fmt,
            ws=ws,
            classmap=classmap,
            options=options,
            samples=samples,
            files=files,
            split=plan,
            extra={**writer.manifest_extra(), "mask_values": values.to_dict()},
        )
        (staging.path / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (staging.path / CHANGES_NAME).write_text(changes_markdown(manifest), encoding="utf-8")
        staging.commit()
    finally:
        staging.abort()
    text = summary_line(manifest) + f" {values.note} Written to {target}." + writer.result_note(plan)
    yield Result(ExportResult(target, len(written), target / MANIFEST_NAME, text))


def _left_out(rec, wanted: set[str], source: dict) -> str | None:
    if rec.status not in wanted:
        why = rec.status + (f": {rec.reason}" if rec.reason else "")
        return f"status {why} (not among the exported statuses)"
    now, then = source["image"]["sha256"], source["image"]["sha256_at_import"]
    if now is None:
        return f"source image {rec.image_path} is missing"
    if then and now != then:
        return f"source image {rec.image_path} changed since the workspace imported it"
    return None


def export_dataset(
    ws,
    out: str | Path,
    fmt: str = "folders",
    *,
    statuses: Sequence[str] = DEFAULT_STATUSES,
    include_excluded: bool = False,
    split=None,
    seed: int = 0,
    overwrite: bool = False,
    mask_scale: int = 1,
    mask_values: str = "source",
    progress: Callable[[Progress], None] | None = None,
) -> ExportResult:
    """Run :func:`iter_export` to the end; ``progress`` is called with every ``Progress``."""

    def relay(event) -> None:
        if progress is not None and isinstance(event, Progress):
            progress(event)

    return run(
        iter_export(
            ws,
            out,
            fmt,
            statuses=statuses,
            include_excluded=include_excluded,
            split=split,
            seed=seed,
            overwrite=overwrite,
            mask_scale=mask_scale,
            mask_values=mask_values,
        ),
        on_event=relay,
    )


__all__ = ["DEFAULT_STATUSES", "FORMATS", "STATUSES", "ExportResult", "export_dataset", "iter_export", "make_split"]
