"""What an indexed dataset folder is: samples, their groups, and the problems met.

Indexing reads file names and image headers only; pixels are decoded when a
sample's ``load_image`` / ``load_mask`` is called, through :mod:`medseg.io`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classmap import ClassMap
from medseg.errors import MaskError, ReadError
from medseg.findings import ERROR, INFO, WARNING

# Problem kinds. A problem never stops indexing; the files it names are left
# out of ``Dataset.samples`` and everything else is indexed.
UNREADABLE = "unreadable"  # header cannot be parsed (corrupt, truncated, empty)
IMAGE_WITHOUT_MASK = "image_without_mask"  # no mask file / no RLE rows for an image
MASK_WITHOUT_IMAGE = "mask_without_image"  # a mask whose image is absent
SIZE_MISMATCH = "size_mismatch"  # image and mask headers disagree on rows x cols
DUPLICATE_STEM = "duplicate_stem"  # two files claim one sample id (e.g. 1.png and 1.jpg)
MISSING_SLICE = "missing_slice"  # a CSV row names a slice file that is not on disk
BAD_ROW = "bad_row"  # a CSV row that cannot be understood
UNSUPPORTED_FILE = "unsupported_file"  # a non-image file inside an image or mask folder
GRID_MISMATCH = "grid_mismatch"  # an image volume and its label volume lie on different voxel grids
UNSUPPORTED_VOLUME = "unsupported_volume"  # a volume medseg cannot use as it is (4-D, a voxel size of 0 ...)

PROBLEM_KINDS = (
    UNREADABLE,
    IMAGE_WITHOUT_MASK,
    MASK_WITHOUT_IMAGE,
    SIZE_MISMATCH,
    DUPLICATE_STEM,
    MISSING_SLICE,
    BAD_ROW,
    UNSUPPORTED_FILE,
    GRID_MISMATCH,
    UNSUPPORTED_VOLUME,
)
# The severity a workspace stores each problem with (as a finding of source "index"): problems that make a
# sample unusable are errors; a file that is merely extra is a warning or info.
PROBLEM_SEVERITY = {
    UNREADABLE: ERROR,
    SIZE_MISMATCH: ERROR,
    MISSING_SLICE: ERROR,
    BAD_ROW: ERROR,
    GRID_MISMATCH: ERROR,
    UNSUPPORTED_VOLUME: ERROR,
    IMAGE_WITHOUT_MASK: WARNING,
    MASK_WITHOUT_IMAGE: WARNING,
    DUPLICATE_STEM: WARNING,
    UNSUPPORTED_FILE: INFO,
}

# How a sample's mask is stored, which decides how ``load_mask`` decodes it.
MASK_BINARY = "binary"  # one grey file; binarised with a report
MASK_IDS = "ids"  # one file of class ids (palette indices or small integers)
MASK_MERGE = "merge"  # one binary file per class, merged into ids
MASK_RLE = "rle"  # run-length strings per class, decoded to (H, W, C) channels
MASK_VOLUME = "volume"  # one label volume (NIfTI) of class ids on the image volume's grid


@dataclass(frozen=True)
class Problem:
    path: Path
    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; valid: {', '.join(PROBLEM_KINDS)}")
        object.__setattr__(self, "path", Path(self.path))

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "kind": self.kind, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.message}"


class VolumeFacts:
    """``is_volume`` and ``geometry`` of a sample from its ``mask_kind`` and ``extra["geometry"]``: a dataset
    ``Sample`` and a workspace's pinned training sample answer alike."""

    mask_kind: str
    extra: dict[str, Any]

    @property
    def is_volume(self) -> bool:
        return self.mask_kind == MASK_VOLUME

    @property
    def geometry(self):
        """The image volume's grid (:class:`medseg.io.volume_geometry.Geometry`), None for a 2-D sample."""
        from medseg.io.volume_geometry import Geometry

        g = self.extra.get("geometry")
        return Geometry.from_dict(g) if g else None


@dataclass
class Sample(VolumeFacts):
    """One image and its mask(s).

    ``mask_paths`` maps a class id to its file (``{1: left, 2: right}`` for
    Montgomery), ``{1: path}`` for a single mask file holding every class, or
    ``{"rle": csv}`` for masks stored as run-length strings (the strings
    themselves are kept in ``extra["rle"]`` as ``{class name: rle}``).

    A volume sample (``mask_kind == MASK_VOLUME``) is one case: ``image_path``
    is a NIfTI file or a DICOM series folder, ``mask_paths`` is ``{1: label
    volume}``, and ``extra["geometry"]`` holds the image's grid
    (:class:`medseg.io.volume_geometry.Geometry` as a dict: display-order shape
    (slice, row, col), spacing in mm, affine to RAS+), read from headers when
    the dataset was indexed. Its slices are addressed by index along axis 0.
    """

    id: str
    image_path: Path
    mask_paths: dict[Any, Path]
    group: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    classmap: ClassMap | None = field(default=None, repr=False, compare=False)
    mask_kind: str = MASK_BINARY

    def load_image(self):
        """Decoded pixels with spacing and provenance (:class:`medseg.io.types.ImageData`).

        A 2-D sample read from a one-slice NIfTI file comes back 2-D (row, col),
        like its PNG twin; a volume sample is (slice, row, col).
        """
        from medseg.io import load

        image = load(self.image_path)
        if not self.is_volume:
            image = _flat_image(image)
        return image

    def load_mask(self, return_report: bool = False):
        """Class ids (H, W) for binary / multiclass masks, (H, W, C) bool for multilabel ones.

        Binary masks stored as 0/255 (or with grey or JPEG noise) become 0/1
        through :func:`medseg.io.masks.binarise`; ``return_report=True`` returns
        ``(mask, report)`` so the pixels it re-assigned are never hidden. The
        report is a ``BinariseReport`` for one binary file, ``{class id:
        BinariseReport}`` for per-class files (Montgomery), None for id maps
        and RLE masks, which are not binarised.
        """
        from medseg.io import masks

        report = None
        if self.mask_kind == MASK_BINARY:
            (path,) = self.mask_paths.values()
            mask, report = _binarise(path)
        elif self.mask_kind == MASK_IDS:
            (path,) = self.mask_paths.values()
            mask = masks.read_mask(path, self.classmap)
        elif self.mask_kind == MASK_MERGE:
            binary, report = {}, {}
            for cid, path in self.mask_paths.items():
                binary[cid], report[cid] = _binarise(path)
            mask = masks.merge_class_masks(binary)
        elif self.mask_kind == MASK_RLE:
            mask = self._decode_rle()
        elif self.mask_kind == MASK_VOLUME:
            mask = self._volume_labels()
        else:
            raise ValueError(f"sample {self.id}: unknown mask kind {self.mask_kind!r}")
        if not self.is_volume and any(_is_nifti(p) for p in self.mask_paths.values()):
            mask = _flat(mask)
        return (mask, report) if return_report else mask

    def _volume_labels(self) -> np.ndarray:
        """Class ids (slice, row, col); MaskError naming the label file when it is off the image's grid."""
        from medseg.io.volume_labels import read_label_volume

        (path,) = self.mask_paths.values()
        ids, grid = read_label_volume(path)
        image_grid = self.geometry
        if image_grid is not None:
            why = image_grid.mismatch(grid)
            if why is not None:
                raise MaskError(path, f"label volume is not on the grid of its image {self.image_path.name}: {why}")
        return ids

    def _decode_rle(self) -> np.ndarray:
        from medseg.io.limits import open_image
        from medseg.io.rle import rle_decode_multilabel

        source = self.mask_paths.get("rle", self.image_path)
        if self.classmap is None:
            raise MaskError(source, f"sample {self.id} has RLE masks but no class map")
        # The image header, not the file name, says how many columns the runs wrap at.
        try:
            with open_image(self.image_path) as im:
                width, height = im.size
        except OSError as e:
            raise ReadError(self.image_path, f"image header cannot be read ({e})") from None
        try:
            return rle_decode_multilabel(self.extra.get("rle", {}), (height, width), self.classmap)
        except ValueError as e:
            raise MaskError(source, f"sample {self.id}: {e}") from None


def _is_nifti(path) -> bool:
    return isinstance(path, Path) and path.name.lower().endswith((".nii", ".nii.gz"))


def _flat(array: np.ndarray) -> np.ndarray:
    """A one-slice (slice, row, col) NIfTI array as (row, col); anything else as it is."""
    from medseg.datasets.slice_files import flat_axis

    axis = flat_axis(array.shape)
    return array if axis is None else np.squeeze(array, axis=axis)


def _flat_image(image):
    from medseg.datasets.slice_files import flat_axis
    from medseg.io.types import ImageData

    if image.rgb or image.metadata.get("format") != "nifti":
        return image
    axis = flat_axis(image.array.shape)
    if axis is None:
        return image
    spacing = tuple(s for k, s in enumerate(image.spacing) if k != axis)
    return ImageData(np.squeeze(image.array, axis=axis), spacing, image.metadata, rgb=False)


def _binarise(path: Path):
    from medseg.io.masks import binarise

    try:
        return binarise(path)
    except ValueError as e:
        if isinstance(e, ReadError):
            raise
        raise MaskError(path, str(e)) from None


@dataclass
class Dataset:
    root: Path
    layout: str
    classmap: ClassMap
    samples: list[Sample]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def by_id(self, sample_id: str) -> Sample:
        index = self.__dict__.get("_by_id")
        if index is None or len(index) != len(self.samples):
            index = {s.id: s for s in self.samples}
            self.__dict__["_by_id"] = index
        try:
            return index[sample_id]
        except KeyError:
            raise KeyError(f"no sample {sample_id!r} in {self.root}") from None

    @property
    def groups(self) -> list[str]:
        return sorted({s.group for s in self.samples})

    def problems_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: counts, class map, group sizes and every problem."""
        sizes = sorted(Counter(s.group for s in self.samples).values())
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classmap": self.classmap.to_dict(),
            "n_samples": len(self.samples),
            "n_groups": len(sizes),
            "group_size": ({"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]} if sizes else None),
            "problems_by_kind": self.problems_by_kind(),
            "problems": [p.to_dict() for p in self.problems],
        }
