"""Which dataset layout a folder holds, and ``open_dataset`` to index it.

The layouts and their detection order are listed once, in
:mod:`medseg.datasets.registry` (``layout_names()`` for their names; each
layout's description says what it expects). A folder holding a single
sub-folder (as archives often unpack) is looked into. A folder whose layout is
recognised always opens: files that cannot be used are listed in
``Dataset.problems`` and the rest is indexed. A folder with no recognised
layout (empty, or only loose files) raises ReadError.
"""

from __future__ import annotations

from pathlib import Path

from medseg import process_pool
from medseg.classmap import ClassMap
from medseg.datasets import groups as grp
from medseg.datasets import registry
from medseg.datasets.dataset import MASK_BINARY, MASK_IDS, Dataset
from medseg.datasets.files import is_junk, numeric_key
from medseg.datasets.layout import Layout
from medseg.errors import DatasetError, ReadError

GROUP_BY = ("auto", "stem", "frames", "similar", "pattern")


def detect_layout(folder: str | Path) -> str | None:
    """The layout name of ``folder`` (or of its only sub-folder), or None; never raises."""
    try:
        folder = Path(folder)
    except TypeError:
        return None
    found = _resolve(folder)
    return found[1].name if found else None


def is_dataset_folder(folder: str | Path) -> bool:
    """Cheap check (folder names and a few headers) that ``open_dataset`` would take ``folder``."""
    return detect_layout(folder) is not None


def open_dataset(
    folder: str | Path,
    layout: str | None = None,
    *,
    group_by: str = "auto",
    group_pattern: str | None = None,
    classmap: ClassMap | None = None,
    pool=None,
) -> Dataset:
    """Index a dataset folder: samples, class map, groups and problems; no pixels are decoded.

    ``layout``: one of ``registry.layout_names()`` (UnknownLayoutError, a
    DatasetError, for any other), or None to detect it. ``group_by``: "auto"
    (the layout's own grouping, e.g. UW-Madison case or Montgomery patient;
    frame blocks for integer stems, else the stem), "stem", "frames" (see
    ``groups.frame_blocks``), "similar" (look-alike images whatever their
    names, ``groups.similar_groups``) or "pattern" (``group_pattern`` regex on
    the stem).
    ``classmap`` replaces the inferred one (e.g. to name the foreground class,
    or to declare ids). ``pool``: worker processes (:mod:`medseg.process_pool`) for grouping by image content.
    """
    folder = Path(folder)
    if group_by not in GROUP_BY:
        raise DatasetError(f"unknown group_by {group_by!r}; valid: {', '.join(GROUP_BY)}")
    if group_by == "pattern" and not group_pattern:
        raise DatasetError("group_by='pattern' needs group_pattern, a regex applied to each file stem")
    forced = registry.get_layout(layout) if layout is not None else None
    if not folder.exists():
        raise ReadError(folder, "no such folder")
    if not folder.is_dir():
        raise ReadError(folder, f"is a file, not a dataset folder; {_expected()}")

    found = _resolve(folder)
    if forced is None:
        if found is None:
            raise ReadError(folder, f"no known dataset layout here ({_listing(folder)}); {_expected()}")
        root, chosen = found
    else:
        root, chosen = (found[0] if found and found[1] is forced else folder), forced

    with process_pool.using(pool):
        samples, problems, inferred = chosen.index(root)
    if classmap is not None:
        _apply_classmap(samples, classmap)
    samples.sort(key=lambda s: numeric_key(s.id))
    _assign_groups(samples, chosen, group_by, group_pattern, pool)
    return Dataset(root, chosen.name, classmap or inferred, samples, problems)


def _resolve(folder: Path, depth: int = 1) -> tuple[Path, Layout] | None:
    try:
        if not folder.is_dir():
            return None
        layout = registry.detect_here(folder)
        if layout is not None:
            return folder, layout
        if depth > 0:
            subdirs = [p for p in folder.iterdir() if p.is_dir() and not is_junk(p)]
            files = [p for p in folder.iterdir() if p.is_file() and not is_junk(p)]
            if len(subdirs) == 1 and not files:
                return _resolve(subdirs[0], depth - 1)
    except (OSError, ValueError):  # permissions, broken links, NUL in a path
        return None
    return None


def _expected() -> str:
    return "expected one of: " + "; ".join(lay.description for lay in registry.layouts())


def _listing(folder: Path, limit: int = 8) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not is_junk(p))
    if not entries:
        return "the folder is empty"
    more = f", ... ({len(entries)} entries)" if len(entries) > limit else ""
    return "found " + ", ".join(entries[:limit]) + more


def _apply_classmap(samples, classmap: ClassMap) -> None:
    for s in samples:
        s.classmap = classmap
        if s.mask_kind in (MASK_BINARY, MASK_IDS):
            s.mask_kind = MASK_BINARY if classmap.task == "binary" else MASK_IDS


def _assign_groups(samples, layout: Layout, group_by: str, pattern: str | None, pool=None) -> None:
    ids = [s.id for s in samples]
    if group_by == "auto" and pattern:
        group_by = "pattern"
    if group_by == "auto":
        if layout.auto_group is not None:
            names = [layout.auto_group(i) for i in ids]
        elif len(ids) > 1 and all(i.isdigit() for i in ids):
            names = grp.frame_blocks([s.image_path for s in samples], ids=ids, pool=pool)
        else:
            names = ids
    elif group_by == "stem":
        names = ids
    elif group_by == "pattern":
        names = grp.stem_groups(ids, pattern)
    elif group_by == "similar":
        names = grp.similar_groups([s.image_path for s in samples], ids=ids, pool=pool)
    else:
        names = grp.frame_blocks([s.image_path for s in samples], ids=ids, pool=pool)
    for s, name in zip(samples, names):
        s.group = name
