"""Where an export may go, and how it gets there without ever leaving a half-written dataset.

An export is written into a hidden staging folder beside ``out`` and renamed
into place only when every file and the manifest are on disk
(:mod:`medseg.export.staging`). A failure, an exception or an interrupted
generator removes the staging folder; a previous export at ``out`` (replaced
only with ``overwrite=True``) stays until the new one is complete, and is
restored if the final swap fails or the process is killed during it.
"""

from __future__ import annotations

import os
from pathlib import Path

from medseg.errors import ExportError
from medseg.export.staging import MANIFEST_KIND, MANIFEST_NAME, Staging, is_medseg_export, recover_export


def _resolved(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser().resolve()))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


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
    recover_export(target)  # a previous export hidden by a killed swap is back before it is judged
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


__all__ = ["MANIFEST_KIND", "MANIFEST_NAME", "Staging", "check_target", "is_medseg_export"]
