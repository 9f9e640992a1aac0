"""nnU-Net v2 raw dataset: ``imagesTr/<case>_0000.<ending>``, ``labelsTr/<case>.<ending>``, ``dataset.json``.

Follows nnU-Net's dataset_format.md:
  * one file ending for images and labels of the whole dataset, lossless only:
    ``.png`` for 2-D images with 8-bit RGB or 8/16-bit grey pixels (read by
    NaturalImage2DIO; an RGB PNG is one file holding 3 channels, declared as
    channel_names {"0": "R", "1": "G", "2": "B"}), ``.nii.gz`` otherwise
    (volumes; 2-D signed/float images as one-slice volumes). PNG sources are
    copied byte for byte; JPEG, TIFF, BMP and DICOM are converted (RGBA drops
    its alpha channel).
  * labels are consecutive integers with background 0: class ids that are
    already 1..N are kept, others renumbered in class-map order (the mapping
    is in dataset.json ``medseg_label_ids`` and the manifest).
  * overlapping (multilabel) classes use region-based training: each label
    pixel holds the bit set of its classes, each class is declared as the list
    of values with its bit, and ``regions_class_order`` is given
    (:mod:`medseg.export.mask_out`).
  * a group-aware split is written as ``splits_final.json`` (a list of
    {"train": [...], "val": [...]}); nnU-Net reads it from
    ``nnUNet_preprocessed/DatasetXXX_Name/``, so copy it there after
    ``nnUNetv2_plan_and_preprocess``.
nnU-Net expects the folder itself at ``nnUNet_raw/DatasetXXX_Name``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.classmap import ClassMap
from medseg.errors import ExportError
from medseg.export.files import nifti_affine
from medseg.export.images import (
    WrittenFile,
    copy_source,
    png_layout,
    png_pixels,
    write_converted,
)
from medseg.export.item import ExportItem, SplitPlan, Written
from medseg.export.mask_out import (
    consecutive_ids,
    is_multilabel,
    region_encode,
    region_labels,
    renumber,
    spatial_shape,
    write_ids,
)
from medseg.export.volumes import channel_name, nifti_source, volume_grid, write_volume_image
from medseg.export.writer import ExportWriter
from medseg.export.writers_folders import write_json

RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}


class NnUNetWriter(ExportWriter):
    name = "nnunet"
    description = "nnU-Net v2 raw: imagesTr/<case>_0000, labelsTr/<case>, dataset.json, splits_final.json"
    own_mask_values = "nnU-Net reads label ids 0..N (dataset.json lists them)"

    def __init__(self, root: Path, classmap: ClassMap, *, mask_scale: int = 1, name: str | None = None):
        if mask_scale != 1:
            raise ExportError(
                "nnU-Net trains on class ids: mask scaling for viewing is only offered by the folders format"
            )
        if is_multilabel(classmap):
            region_encode(np.zeros((1, len(classmap.classes)), bool))  # refuses too many classes up front
        self.dataset_name = name or root.name
        self.root, self.classmap = root, classmap
        self.label_of = consecutive_ids(classmap)
        self.layout: tuple[str, str] | None = None  # (file ending, "rgb" | "grey"), set by the first case
        self.layout_from: str | None = None
        self.modality: str | None = None
        self.channel: tuple[str, str] | None = None  # (volumes' channel name, where it came from)

    def _layout(self, item: ExportItem) -> tuple[str, str, bool]:
        """(file ending, channels, copy the source bytes) for this case."""
        if item.volume:
            return ".nii.gz", "grey", nifti_source(item.image_path) is not None
        kind = png_layout(item.image_path)
        if kind is not None:
            return ".png", kind, True
        pixels = png_pixels(item.image())
        if pixels is not None:
            return ".png", "rgb" if pixels.ndim == 3 else "grey", False
        return ".nii.gz", "grey", False

    def write(self, item: ExportItem) -> Written:
        ending, channels, copy = self._layout(item)
        if self.layout is None:
            self.layout, self.layout_from = (ending, channels), item.sample_id
        elif self.layout != (ending, channels):
            raise ExportError(
                f"nnU-Net needs one file type and the same channels for every case: sample "
                f"{self.layout_from} is {self.layout[1]} {self.layout[0]} but sample {item.sample_id} "
                f"({item.image_path}) is {channels} {ending}; export it in the folders or monai format, "
                "or exclude the odd samples"
            )
        if item.volume:
            return self._write_volume(item)
        stem = self.root / "imagesTr" / f"{item.stem}_0000"
        affine = None
        if copy:
            image = copy_source(item.image_path, stem)
            shape = _png_shape(item.image_path)
        else:
            img = item.image()
            if self.modality is None:
                self.modality = img.metadata.get("modality")
            image = write_converted(img, stem, prefer_png=ending == ".png", volume_axis=True)
            shape = img.array.shape[: img.spatial_ndim]
            if ending == ".nii.gz":
                affine = nifti_affine((1.0, *img.spacing))
        if tuple(shape) != spatial_shape(item.mask, self.classmap):
            raise ExportError(
                f"sample {item.sample_id}: image {item.image_path} is {tuple(shape)} but its mask "
                f"is {spatial_shape(item.mask, self.classmap)}; nnU-Net needs equal geometry"
            )
        labels, dtype = self._labels(item)
        mask = write_ids(
            self.root / "labelsTr" / item.stem, labels, dtype, affine=affine, volume_axis=ending == ".nii.gz"
        )
        return Written([image], [mask])

    def _write_volume(self, item: ExportItem) -> Written:
        """The image as its source NIfTI (gzip-wrapped if .nii) or converted from a DICOM series; the label with
        the image's own header, so nnU-Net's reader sees one spacing, origin and direction."""
        grid = volume_grid(item)
        if self.channel is None:
            self.channel = channel_name(item)
        image = write_volume_image(item, self.root / "imagesTr" / f"{item.stem}_0000", ending=".nii.gz")
        labels, dtype = self._labels(item)
        return Written([image], [write_ids(self.root / "labelsTr" / item.stem, labels, dtype, grid=grid)])

    def _labels(self, item: ExportItem) -> tuple[np.ndarray, np.dtype]:
        if is_multilabel(self.classmap):
            return region_encode(item.mask), np.dtype(np.uint8)
        dtype = np.dtype(np.uint8) if len(self.label_of) <= 255 else np.dtype(np.uint16)
        return renumber(item.mask, self.label_of), dtype

    def dataset_json(self, n_training: int) -> dict:
        ending, channels = self.layout or (".png", "grey")
        if channels == "rgb":
            channel_names = dict(RGB_CHANNELS)
        elif self.channel is not None:  # volumes: see medseg.export.volumes.channel_name
            channel_names = {"0": self.channel[0]}
        else:  # "CT" switches nnU-Net to its CT intensity normalisation; other names mean z-score
            channel_names = {"0": "CT" if self.modality == "CT" else (self.modality or "image")}
        data: dict = {"channel_names": channel_names}
        if is_multilabel(self.classmap):
            data["labels"], order = region_labels(self.classmap)
            data["regions_class_order"] = order
        else:
            data["labels"] = {
                self.classmap.background: 0,
                **{c.name: self.label_of[c.id] for c in self.classmap.classes},
            }
        data.update(
            {
                "numTraining": n_training,
                "file_ending": ending,
                "name": self.dataset_name,
                "description": f"exported by medseg {__version__}; see manifest.json and CHANGES.md",
            }
        )
        if any(k != v for k, v in self.label_of.items()) and not is_multilabel(self.classmap):
            data["medseg_label_ids"] = {str(v): k for k, v in self.label_of.items()}
        return data

    def finish(self, written: dict[str, Written], split: SplitPlan | None, meta: dict) -> list[WrittenFile]:
        files = [write_json(self.root / "dataset.json", self.dataset_json(len(written)))]
        if split is not None:
            files.append(
                write_json(self.root / "splits_final.json", [{"train": tr, "val": va} for tr, va in split.folds])
            )
        return files

    def manifest_extra(self) -> dict:
        extra: dict = {"nnunet_label_ids": {str(k): v for k, v in self.label_of.items()}}
        if self.channel is not None:
            extra["nnunet_channel"] = {"name": self.channel[0], "from": self.channel[1]}
        return extra

    def result_note(self, split: SplitPlan | None) -> str:
        return " nnU-Net expects the folder at nnUNet_raw/DatasetXXX_Name" + (
            "; copy splits_final.json to nnUNet_preprocessed/DatasetXXX_Name after planning." if split else "."
        )


def _png_shape(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]
