"""Plain folders: ``images/<id>.<source suffix>``, ``masks/<id>.png``, ``classmap.json``, ``splits.json``.

Images are the source files byte for byte (DICOM series folders are written
as NIfTI, see :mod:`medseg.export.volumes`). Masks hold class ids; a volume's
labels are ``masks/<id>.nii.gz`` with its image's own NIfTI header; a binary
dataset stored as 0/255 is written as 0/255 (:mod:`medseg.export.mask_values`); multilabel
masks are one 0/1 file per class in ``masks/<class>/<id>.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.errors import ExportError
from medseg.export.files import safe_stems, sha256_file
from medseg.export.images import WrittenFile, copy_source, write_converted
from medseg.export.item import ExportItem, SplitPlan, Written
from medseg.export.mask_out import (
    VIEW_SCALES,
    id_dtype,
    is_multilabel,
    view_scaled,
    write_channels,
    write_ids,
)
from medseg.export.volumes import Grid, volume_grid, write_volume_image
from medseg.export.writer import ExportWriter


def write_json(path: Path, data: object) -> WrittenFile:
    # sort_keys stays off: nnU-Net reads the order of region labels from dataset.json
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return WrittenFile(path, sha256_file(path))


def write_image(item: ExportItem, stem: Path) -> WrittenFile:
    """The source file as is (a DICOM series folder as NIfTI, see :mod:`medseg.export.volumes`)."""
    if item.volume:
        return write_volume_image(item, stem)
    if item.image_path.is_file():
        return copy_source(item.image_path, stem)
    return write_converted(item.image(), stem)


def mask_grid(item: ExportItem) -> Grid | None:
    """Volumes' labels are written on their image's grid (its own NIfTI header), so both line up in any reader."""
    return volume_grid(item) if item.volume else None


class FoldersWriter(ExportWriter):
    name = "folders"
    description = (
        "images/ (source files as they are), masks/ (0/255 where the source was, else class ids), "
        "classmap.json, splits.json"
    )
    follows_mask_values = True

    def __init__(self, root: Path, classmap: ClassMap, *, mask_scale: int = 1, name: str | None = None):
        # ``name`` is part of every writer's signature; plain folders have no metadata file to hold it
        self.root, self.classmap, self.mask_scale = root, classmap, mask_scale
        self.class_dirs = safe_stems(classmap.names)
        if mask_scale not in VIEW_SCALES:
            raise ExportError(f"mask scale must be one of {VIEW_SCALES}, got {mask_scale!r}")

    def write(self, item: ExportItem) -> Written:
        grid = mask_grid(item)
        image = write_image(item, self.root / "images" / item.stem)
        if is_multilabel(self.classmap):
            masks = write_channels(
                item.mask,
                self.classmap,
                lambda c: self.root / "masks" / self.class_dirs[c.name] / item.stem,
                scale=self.mask_scale,
                grid=grid,
            )
        else:
            ids = view_scaled(item.mask, self.classmap, self.mask_scale)
            masks = [
                write_ids(
                    self.root / "masks" / item.stem,
                    ids,
                    id_dtype(self.classmap) if self.mask_scale == 1 else ids.dtype,
                    grid=grid,
                )
            ]
        return Written([image], masks)

    def finish(self, written: dict[str, Written], split: SplitPlan | None, meta: dict) -> list[WrittenFile]:
        files = [write_json(self.root / "classmap.json", self.classmap.to_dict())]
        if split is not None:
            files.append(write_json(self.root / "splits.json", split.to_dict()))
        return files
