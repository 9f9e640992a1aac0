"""Where an export may go, and how it gets there without ever leaving a half-written dataset.

An export is written into a hidden staging folder beside ``out`` and renamed
into place only when every file and the manifest are on disk
(:mod:`medseg.export.staging`). A failure, an exception or an interrupted
generator removes the staging folder; a previous export at ``out`` (replaced
only with ``overwrite``) stays until the new one is complete, and is
restored if the final swap fails or the process is killed during it.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg.errors import OPTION_WORDS, DestinationError, ExportError
from medseg.export.staging import MANIFEST_KIND, MANIFEST_NAME, Staging, is_medseg_export, recover_export


def check_target(
    out: str | Path,
    *,
    dataset_root: str | Path | None = None,
    workspace_root: str | Path | None = None,
    overwrite: bool,
    sources=(),
) -> Path:
    """The resolved output folder, or an error saying why writing there is refused.

    :func:`medseg.destinations.check_destination` refuses the source dataset, the
    workspace, what ``sources`` names, and any dataset's source folders or workspace
    found above ``out`` (DestinationError). A non-empty folder is replaced only with
    ``overwrite`` and only when it is a previous medseg export that nobody changed:
    every file in it listed in its manifest with the sha256 it still has.
    """
    from medseg.destinations import check_destination

    target = check_destination(
        out, sources=[(dataset_root, "the source dataset"), *sources], workspaces=[workspace_root], purpose="the export"
    )
    recover_export(target)  # a previous export hidden by a killed swap is back before it is judged
    if target.exists() and not target.is_dir():
        raise ExportError(f"refusing to export into {target}: it is a file, not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            if is_medseg_export(target):
                raise ExportError(
                    f"refusing to export into {target}: the folder is not empty, it holds a previous medseg export; "
                    f"choose another folder, or {OPTION_WORDS['overwrite']} to replace that export",
                    option="overwrite",
                )
            raise ExportError(
                f"refusing to export into {target}: the folder is not empty and holds no medseg export; "
                "choose an empty or new folder"
            )
        if not is_medseg_export(target):
            raise ExportError(
                f"refusing to overwrite {target}: it is not empty and holds no medseg export "
                f"{MANIFEST_NAME}, so it is not a previous export; only those are replaced"
            )
        changed = export_changes(target)
        if changed:
            path, why = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise DestinationError(
                f"refusing to overwrite the export {target}: {path} {why}{more}; "
                "only a previous medseg export nobody changed since is replaced. "
                "Move what you want to keep, or choose another folder",
                target,
                path,
            )
    if not target.parent.is_dir():
        raise ExportError(f"cannot export into {target}: its parent folder {target.parent} does not exist")
    return target


def export_changes(folder: Path) -> list[tuple[Path, str]]:
    """Files of a previous export that its manifest does not vouch for, as (path, why): foreign or edited.

    The manifest lists every exported file with its sha256; manifest.json itself
    and CHANGES.md (its summary, written from it) are the export's own."""
    from medseg.ownership import sha256_file

    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    entries = list(manifest.get("files") or [])
    for sample in manifest.get("samples") or []:
        exported = sample.get("exported") or {}
        entries += list(exported.get("images") or []) + list(exported.get("masks") or [])
    listed = {e["path"]: e.get("sha256") for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)}
    problems = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if (p.is_dir() and not p.is_symlink()) or rel in (MANIFEST_NAME, "CHANGES.md"):
            continue
        if rel not in listed:
            problems.append((p, "is not part of the export (its manifest does not list it)"))
        elif p.is_symlink() or sha256_file(p) != listed[rel]:
            problems.append((p, "changed since the export wrote it"))
    return problems


__all__ = ["MANIFEST_KIND", "MANIFEST_NAME", "Staging", "check_target", "is_medseg_export"]
