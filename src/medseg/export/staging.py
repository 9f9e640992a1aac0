"""The hidden folder an export is written into, swapped in whole, and the recovery after a killed export.

An export is written into ``.NAME.medseg-export-TAG.partial`` beside the
target ``NAME``; when every file and the manifest are on disk, a previous
export at ``NAME`` is moved to ``.NAME.medseg-export-TAG.old``, the staging
folder renamed to ``NAME`` and the old one deleted. ``TAG`` names the
exporting process (pid and start time, :mod:`medseg.folder_swap`), so the
next export to the same target, or any check of it, tells what a killed
export left from what an export running in another process is writing:
:func:`recover_export` puts a previous export hidden by an interrupted swap
back and removes the staging and old folders of dead exports only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medseg.errors import ExportError
from medseg.folder_swap import SwapNames, owner_tag, recover, swap_in

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "medseg-export"
NAMES = SwapNames(new=".{name}.medseg-export-{tag}.partial", old=".{name}.medseg-export-{tag}.old")


def is_medseg_export(folder: Path) -> bool:
    """True when ``folder`` holds a manifest written by an export."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == MANIFEST_KIND


def recover_export(target: Path) -> bool:
    """Undo what exports to ``target`` killed half-way left; whether a previous export was put back."""
    return recover(Path(target), NAMES, is_medseg_export)


class Staging:
    """A hidden sibling folder that becomes ``target`` on ``commit``; ``abort`` removes it."""

    def __init__(self, target: Path, overwrite: bool = False):
        self.target, self.overwrite = target, overwrite
        recover_export(target)
        tag = owner_tag()
        self.path = NAMES.new_path(target, tag)
        self._old = NAMES.old_path(target, tag)
        self.path.mkdir()
        self.done = False

    def commit(self) -> None:
        """Swap the staged export into place; the previous export (if any) is removed only after."""
        if self.target.exists():
            if self.target.is_dir() and not any(self.target.iterdir()):
                self.target.rmdir()
            elif not (self.overwrite and is_medseg_export(self.target)):
                # something else appeared there while the export ran: never replace it
                raise ExportError(f"{self.target} was filled by something else during the export; nothing was replaced")
        swap_in(self.path, self.target, self._old)
        self.done = True

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.path, ignore_errors=True)


__all__ = ["MANIFEST_KIND", "MANIFEST_NAME", "NAMES", "Staging", "is_medseg_export", "recover_export"]
