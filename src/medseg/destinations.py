"""Where medseg may write: the one guard every writer calls before it writes anything.

Never written, whatever the flags:

* **A dataset's source tree.** Explicit roots are what the command reads, passed as
  ``sources``: a dataset folder, the folder holding an input image, a DICOM series
  folder, a workspace's ``dataset_root``. The destination may not be one, be inside
  one, or contain one. Other datasets are found from the destination itself, by
  walking up its ancestors with cheap checks (folder names and a few entries, no
  indexing): the folders a known layout keeps its images and masks in, as each
  layout of :mod:`medseg.datasets.registry` declares them
  (``images/`` + ``masks/`` and the other names the pair layouts accept,
  ``Original/`` + ``Ground Truth/``, ``CXR_png/`` + ``ManualMask/``, ``imagesTr/``
  + ``labelsTr/`` + ``imagesTs/`` and ``dataset.json``, ``train/`` + ``train.csv``),
  the dataset folder itself as an output folder, and, as the folder written into,
  a folder of DICOM files or a flat folder where images and their ``<stem>_mask``
  files lie side by side. A folder that merely holds a dataset's folders is not a
  source: ``~/out`` and ``~/report.json`` are fine when ``~`` holds ``images/``
  and ``masks/``; ``~/masks/out`` is not.
* **A workspace's internals**: the folder holding ``workspace.sqlite`` and
  everything in it. The project's own jobs write into three areas of it
  (``runs/``: ranking folds, ``predictions/``: the ranking's stored predictions,
  ``drafts/``: unsaved edits) and say so with ``internal=True``; a destination a
  user chose is refused there as well.

A folder medseg wrote (one with an ownership record, see :mod:`medseg.ownership`,
or a medseg export's manifest) is not taken for a dataset when the destination is
that folder itself, so a previous export or prediction folder can be written again;
its data folders stay protected from other writers.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import DestinationError

WORKSPACE_DB = "workspace.sqlite"  # medseg.workspace.store.DB_NAME (a test keeps the two equal)
WORKSPACE_JOB_AREAS = ("runs", "predictions", "drafts")
EXPORT_MANIFEST, EXPORT_KIND = "manifest.json", "medseg-export"  # medseg.export.target's (tested equal)
OWNERSHIP_NAME = ".medseg-outputs.jsonl"
_PROBE = 64  # folder entries looked at per cheap check
_RASTERS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Protected:
    """A path no writer may touch; ``what`` names it for a message, ``home`` is the folder a suggested
    destination is put beside."""

    path: Path
    what: str
    home: Path
    workspace: bool = False
    detail: str = ""
    tree: bool = True  # False: only writing straight into the folder is refused (see _explicit)


def resolved(p: str | os.PathLike) -> Path:
    """Absolute, user expanded, links followed (also for paths that do not exist yet)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(p))))


def check_destination(
    dest: str | os.PathLike,
    *,
    sources: Iterable = (),
    workspaces: Iterable = (),
    purpose: str = "output",
    internal: bool = False,
    file: bool = False,
    discover: bool = True,
) -> Path:
    """The resolved destination, or DestinationError naming it and the path it would harm.

    ``sources``: paths the command reads (files mean the folder holding them),
    or ``(path, what)`` pairs naming them for the message ("the source
    dataset"); a workspace folder among them counts as a workspace. ``workspaces``:
    workspace roots. ``purpose`` names what is written ("predictions", "the
    export", "a QC report"). ``internal``: the caller is one of medseg's own
    jobs writing into a workspace's job areas (never a path a user typed).
    ``file``: the destination is one file, not a folder written into.
    ``discover=False`` checks only the explicit roots (a workspace re-attached
    to its moved dataset is itself a workspace, and is not being written).
    """
    target = resolved(dest)
    into = target.parent if file else target
    for prot in _explicit(sources, workspaces):
        relation = _relation(target, prot.path) if prot.tree else ("is" if into == prot.path else None)
        if relation == "is" and into != target:
            relation = "is inside"
        if relation is not None and not (internal and prot.workspace and _in_job_area(target, prot.path)):
            raise _refusal(target, prot, relation, purpose, internal)
    for node in (target, *target.parents) if discover else ():
        prot = _discovered(node, target, into)
        if prot is None:
            continue
        if prot.workspace and internal and _in_job_area(target, prot.path):
            continue
        raise _refusal(target, prot, "is" if node == target else "is inside", purpose, internal)
    return target


def suggestion(home: Path, purpose: str) -> Path:
    """A folder beside ``home`` named for what is written (``cvc-predictions`` beside ``cvc``)."""
    slug = "".join(c if c.isalnum() else "-" for c in purpose.lower()).strip("-")
    for article in ("a-", "an-", "the-"):
        slug = slug[len(article) :] if slug.startswith(article) else slug
    return home.parent / f"{home.name}-{slug or 'output'}"


# ------------------------------------------------------------------ explicit roots
def _explicit(sources: Iterable, workspaces: Iterable) -> list[Protected]:
    out = []
    for raw in sources:
        raw, what = raw if isinstance(raw, tuple) else (raw, None)
        if raw is None:
            continue
        p = resolved(raw)
        if what is not None:
            out.append(Protected(p, what, p))
        elif p.is_file():
            # an input file's folder is often the working folder: writing into a sub-folder of it touches
            # no source file, writing files straight into it could (c.png beside its c_mask.png)
            out.append(Protected(p.parent, f"the folder holding the input {p.name}", p.parent, tree=False))
        elif (p / WORKSPACE_DB).is_file():
            out.append(Protected(p, "the workspace", p, workspace=True))
            data = workspace_dataset_root(p)
            if data is not None:
                out.append(Protected(data, "the workspace's dataset folder", data))
        else:  # a folder, or a source gone since (a moved dataset is still never written over)
            out.append(Protected(p, "the source folder", p))
    for raw in workspaces:
        if raw is not None:
            root = resolved(raw)
            out.append(Protected(root, "the workspace", root, workspace=True))
            data = workspace_dataset_root(root)
            if data is not None:
                out.append(Protected(data, "the workspace's dataset folder", data))
    return out


def workspace_dataset_root(root: Path) -> Path | None:
    """The dataset folder a workspace records (read-only look into its database), or None."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{(root / WORKSPACE_DB).as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'dataset_root'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return resolved(row[0]) if row and row[0] else None


def _relation(target: Path, protected: Path) -> str | None:
    if target == protected:
        return "is"
    if protected in target.parents:
        return "is inside"
    if target in protected.parents:
        return "contains"
    return None


def _in_job_area(target: Path, ws_root: Path) -> bool:
    return any(target == ws_root / a or (ws_root / a) in target.parents for a in WORKSPACE_JOB_AREAS)


# ------------------------------------------------------------------ discovered from the destination
def _discovered(node: Path, target: Path, into: Path) -> Protected | None:
    """What ``node`` (the destination or an ancestor) protects. Loose-file folders (a DICOM series,
    flat image + mask pairs) count only as the folder written into: a sub-folder beside a series
    changes no series file, and a stray DICOM file in ``~`` must not refuse everything below it."""
    try:
        parent_layout = _layout_data(node.parent) if node.parent != node else None
        if parent_layout is not None and node in parent_layout[1]:
            name = node.name + ("/ folder" if node.is_dir() or not node.suffix else " file")
            return Protected(
                node, f"the {name}", node.parent, detail=f"of the dataset {node.parent}, {parent_layout[0]}"
            )
        if not node.is_dir():
            return None
        if (node / WORKSPACE_DB).is_file():
            return Protected(node, "the workspace", node, workspace=True)
        if node == into == target and not is_own_folder(node):
            here = _layout_data(node)
            if here is not None:
                return Protected(node, "the dataset folder", node, detail=here[0])
        if node == into and not is_own_folder(node):
            loose = _loose_sources(node)
            if loose is not None:
                return Protected(node, loose, node)
    except OSError:  # unreadable ancestors tell nothing; the write itself will fail on them
        return None
    return None


def is_own_folder(folder: Path) -> bool:
    """A folder medseg wrote: it holds an ownership record or a medseg export manifest."""
    if (folder / OWNERSHIP_NAME).is_file():
        return True
    try:
        data = json.loads((folder / EXPORT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == EXPORT_KIND


def _layout_data(folder: Path) -> tuple[str, set[Path]] | None:
    """(layout, the folders and files it keeps source data in) when ``folder`` is a dataset root."""
    if not folder.is_dir():
        return None
    from medseg.datasets.registry import source_data

    return source_data(folder)


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return list(itertools.islice(it, _PROBE * 4))


def _loose_sources(folder: Path) -> str | None:
    """Why ``folder`` is itself source data (a DICOM series, flat image + mask pairs), or None."""
    from medseg.datasets.files import MASK_SUFFIX

    files = [e for e in _entries(folder) if not e.name.startswith(".") and e.is_file()]
    dicom = [e for e in files if e.name.lower().endswith((".dcm", ".ima"))]
    if len(dicom) < 2:
        dicom += [e for e in files[:8] if "." not in e.name and _has_dicom_magic(e.path)]
    if len(dicom) >= 2:
        return "the DICOM series folder"
    stems = {os.path.splitext(e.name)[0].lower() for e in files if e.name.lower().endswith(_RASTERS)}
    for stem in stems:
        m = MASK_SUFFIX.search(stem)
        if m and m.start() > 0 and stem[: m.start()] in stems:
            return "the folder of images and their masks"
    return None


def _has_dicom_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


# ------------------------------------------------------------------ the message
def _refusal(target: Path, prot: Protected, relation: str, purpose: str, internal: bool) -> DestinationError:
    why = f"it {relation} {prot.what} {prot.path}" + (f" ({prot.detail})" if prot.detail else "")
    if not prot.workspace:
        never = "medseg never writes into a dataset's source files"
    elif internal or not _in_job_area(target, prot.path):
        never = "a workspace holds only its database, its mask revisions and medseg's own job outputs"
    else:
        never = "that folder is written only by medseg's own jobs"
    return DestinationError(
        f"refusing to write {purpose} to {target}: {why}; {never}. Choose a folder outside "
        f"it, e.g. {suggestion(prot.home, purpose)}",
        target,
        prot.path,
    )
