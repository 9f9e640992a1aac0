"""MONAI: ``images/``, ``labels/`` and a Decathlon-style ``datalist.json``.

``datalist.json`` is what ``monai.data.load_decathlon_datalist`` reads:
{"training": [{"image": "images/a.png", "label": "labels/a.png"}, ...],
"validation": [...]} with paths relative to the JSON file. Without a split
every sample is in "training"; a fractions split fills "training" and
"validation"; a k-fold split keeps all in "training" with a "fold" key (the
fold whose validation set holds the sample), as MONAI's cross-validation
examples use it. Multilabel labels are a list of one 0/1 file per class
(class-map order), which ``LoadImaged`` stacks into channels.
"""

from __future__ import annotations

from pathlib import Path

from medseg import __version__
from medseg.classmap import ClassMap
from medseg.errors import ExportError
from medseg.export.files import safe_stems
from medseg.export.images import WrittenFile
from medseg.export.item import ExportItem, SplitPlan, Written
from medseg.export.mask_out import id_dtype, is_multilabel, write_channels, write_ids
from medseg.export.writer import ExportWriter
from medseg.export.writers_folders import mask_grid, write_image, write_json


class MonaiWriter(ExportWriter):
    name = "monai"
    description = "images/, labels/ and a Decathlon-style datalist.json (monai.data.load_decathlon_datalist)"
    own_mask_values = "MONAI's label files hold class ids (datalist.json)"

    def __init__(self, root: Path, classmap: ClassMap, *, mask_scale: int = 1, name: str | None = None):
        if mask_scale != 1:
            raise ExportError(
                "MONAI trains on class ids: mask scaling for viewing is only offered by the folders format"
            )
        self.dataset_name = name or root.name
        self.root, self.classmap = root, classmap
        self.class_dirs = safe_stems(classmap.names)

    def write(self, item: ExportItem) -> Written:
        grid = mask_grid(item)
        image = write_image(item, self.root / "images" / item.stem)
        if is_multilabel(self.classmap):
            masks = write_channels(
                item.mask,
                self.classmap,
                lambda c: self.root / "labels" / self.class_dirs[c.name] / item.stem,
                grid=grid,
            )
        else:
            masks = [write_ids(self.root / "labels" / item.stem, item.mask, id_dtype(self.classmap), grid=grid)]
        return Written([image], masks)

    def _entry(self, w: Written) -> dict:
        labels = [m.path.relative_to(self.root).as_posix() for m in w.masks]
        return {
            "image": w.images[0].path.relative_to(self.root).as_posix(),
            "label": labels if is_multilabel(self.classmap) else labels[0],
        }

    def finish(self, written: dict[str, Written], split: SplitPlan | None, meta: dict) -> list[WrittenFile]:
        cm = self.classmap
        data: dict = {
            "name": self.dataset_name,
            "description": f"exported by medseg {__version__}; see manifest.json and CHANGES.md",
            "labels": {"0": cm.background, **{str(c.id): c.name for c in cm.classes}},
            "task": cm.task,
            "numTraining": len(written),
        }
        if split is None:
            data["training"] = [self._entry(w) for w in written.values()]
        elif split.fractions is not None:
            train, val = split.folds[0]
            data["training"] = [self._entry(written[s]) for s in train]
            data["validation"] = [self._entry(written[s]) for s in val]
        else:
            fold_of = {s: k for k, (_, val) in enumerate(split.folds) for s in val}
            data["training"] = [{**self._entry(w), "fold": fold_of[s]} for s, w in written.items()]
        return [write_json(self.root / "datalist.json", data), write_json(self.root / "classmap.json", cm.to_dict())]
