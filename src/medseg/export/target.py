"""Where an export may go, and how it gets there without ever leaving a half-written dataset.

An export is written into a hidden staging folder beside ``out`` and renamed
into place only when every file and the manifest are on disk. A failure, an
exception or an interrupted generator removes the staging folder; a previous
export at ``out`` (replaced only with ``overwrite=True``) stays until the new
one is complete, and is restored if the final swap fails.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from medseg.errors import ExportError

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "medseg-export"


def _resolved(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser().resolve()))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def is_medseg_export(folder: Path) -> bool:
    """True when ``folder`` holds a manifest written by this module."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == MANIFEST_KIND


def check_target(out: str | Path, *, dataset_root: str | Path, workspace_root: str | Path,
                 overwrite: bool) -> Path:
    """The resolved output folder, or ExportError saying why writing there is refused."""
    target = _resolved(out)
    for what, root in (("source dataset", dataset_root), ("workspace", workspace_root)):
        r = _resolved(root)
        if _inside(target, r):
            raise ExportError(f"refusing to export into {target}: it is inside the {what} folder {r}; "
                              "choose a folder outside it")
        if _inside(r, target):
            raise ExportError(f"refusing to export into {target}: it contains the {what} folder {r}, "
                              "which an export must never replace; choose another folder")
    if target.exists() and not target.is_dir():
        raise ExportError(f"refusing to export into {target}: it is a file, not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise ExportError(f"refusing to export into {target}: the folder is not empty "
                              "(pass overwrite=True / --overwrite to replace a previous medseg export)")
        if not is_medseg_export(target):
            raise ExportError(f"refusing to overwrite {target}: it is not empty and holds no medseg export "
                              f"{MANIFEST_NAME}, so it is not a previous export; only those are replaced")
    if not target.parent.is_dir():
        raise ExportError(f"cannot export into {target}: its parent folder {target.parent} does not exist")
    return target


class Staging:
    """A hidden sibling folder that becomes ``target`` on ``commit``; ``abort`` removes it."""

    def __init__(self, target: Path, overwrite: bool = False):
        self.target, self.overwrite = target, overwrite
        tag = uuid.uuid4().hex[:10]
        self.path = target.parent / f".{target.name}.medseg-export-{tag}.partial"
        self._old = target.parent / f".{target.name}.medseg-export-{tag}.old"
        self.path.mkdir()
        self.done = False

    def commit(self) -> None:
        """Swap the staged export into place; the previous export (if any) is removed only after."""
        moved_old = False
        if self.target.exists():
            if self.target.is_dir() and not any(self.target.iterdir()):
                self.target.rmdir()
            elif not (self.overwrite and is_medseg_export(self.target)):
                # something else appeared there while the export ran: never replace it
                raise ExportError(f"{self.target} was filled by something else during the export; "
                                  "nothing was replaced")
            else:
                os.replace(self.target, self._old)
                moved_old = True
        try:
            os.replace(self.path, self.target)
        except BaseException:
            if moved_old:
                os.replace(self._old, self.target)
            raise
        self.done = True
        if moved_old:
            shutil.rmtree(self._old, ignore_errors=True)

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.path, ignore_errors=True)
