"""Training on volumes: every slice of every volume sample is an item ``(sample index, z)``.

A volume sample (``Sample.is_volume``: a CT/MR case from a dataset, or a
workspace sample pinned to a revision of its label volume) gives one item per
slice (:func:`slice_items`). Each volume is decoded once (image and label
volume, read through the checkpoint's ``Preprocessing``) into a cache of
normalised, resized slices; items are views into it, never a decode. A cache
smaller than the data (``data.cache_mb``) keeps the volumes used last and
decodes a dropped one again when its slices come back.

What an item holds is what inference feeds the model
(``medseg.inference.volume_input``): one intensity window per volume (a CT
window in HU, or MR percentiles read from the volume's evenly spaced slices),
and for 2.5-D (``Preprocessing.slices`` k > 1) slice z with its k - 1
neighbours as channels, clamped at the volume's ends. Splits are made on
samples (cases, by group) before they become slices, so no case has slices on
both sides (``medseg.training.trainer_setup.split``).

For other jobs (e.g. out-of-fold ranking per slice): ``slice_items(samples)``
lists the items, ``SliceData(samples, classmap, preprocessing, image_size,
items=...)`` is the dataset (a ``SegmentationData``: indexed by ``(index,
epoch)`` or ``index``, items ``image`` / ``target`` / ``spacing`` /
``index``), ``SliceData.item(index)`` says which (sample, z) an index is and
``slice_id(sample_id, z)`` names it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import MaskError, ReadError
from medseg.inference.preprocess import equalize_channels
from medseg.inference.volume_input import SliceReader, as_channels, neighbours, unit_slices, volume_window
from medseg.io.resize import resize_image, resize_label
from medseg.models.spec import Preprocessing
from medseg.training.data import Decoded, SegmentationData, label_channels, pad_to_stride, unit_preprocessing
from medseg.training.distance_maps import resized_spacing

SliceItem = tuple[int, int]  # (sample index, slice z)


def is_volume_sample(sample: Any) -> bool:
    return bool(getattr(sample, "is_volume", False))


def slice_id(sample_id: str, z: int) -> str:
    """The name of slice ``z`` of a sample, e.g. in validation overlays and per-slice scores."""
    return f"{sample_id}@z{z:03d}"


def slice_count(sample: Any) -> int:
    """How many slices a volume sample has: from its geometry (headers, no decode), else its image."""
    geometry = getattr(sample, "geometry", None)
    if geometry is not None:
        return int(geometry.shape[0])
    image = sample.load_image()
    if image.spatial_ndim != 3:
        raise ReadError(sample.image_path, f"sample {sample.id} is not a volume (shape {image.array.shape})")
    return int(image.array.shape[0])


def slice_items(samples: Sequence[Any], zs: Iterable[int] | None = None) -> list[SliceItem]:
    """Every ``(sample index, z)`` of the volume samples, in sample then slice order; ``zs`` keeps only those
    slice indices (where a volume has them)."""
    wanted = None if zs is None else set(int(z) for z in zs)
    items = []
    for i, s in enumerate(samples):
        if not is_volume_sample(s):
            raise ReadError(s.image_path, f"sample {s.id} is a 2-D image, not a volume: train on it as an image")
        items.extend((i, z) for z in range(slice_count(s)) if wanted is None or z in wanted)
    return items


@dataclass
class DecodedVolume:
    """One volume ready for slicing: [0, 1] float32 slices (Z, h, w) through its window, the label (Z, h, w)
    as channel indices, the in-plane spacing after resizing, and the window used."""

    id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float]
    window: str

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + self.label.nbytes


def decode_volume(sample: Any, classmap: ClassMap, prep: Preprocessing, size: Sequence[int] | None) -> DecodedVolume:
    """Load a volume sample once: its slices normalised as ``prep`` says and resized to ``size``, its labels."""
    if classmap.task == "multilabel":
        raise MaskError(
            sample.image_path, f"sample {sample.id}: volume labels hold class ids; a multilabel class map cannot"
        )
    image = sample.load_image()
    reader = SliceReader(image)
    mask = np.asarray(sample.load_mask())
    if mask.shape != reader.shape:
        raise MaskError(
            next(iter((getattr(sample, "mask_paths", None) or {}).values()), sample.image_path),
            f"label volume of sample {sample.id} is {mask.shape}, its image {reader.shape}",
        )
    label = label_channels(mask, classmap, sample)
    if prep.scope == "volume" or prep.slices > 1:
        window, described = volume_window(reader, prep)
        unit = equalize_channels(unit_slices(image.array, window), prep.equalize)  # slice by slice, as inference
    else:  # a model of 2-D images: each slice windowed on its own, as a 2-D image
        from medseg.inference.preprocess import model_input

        grey = dataclasses.replace(unit_preprocessing(prep), channels=1)
        unit = np.stack([model_input(reader.slice_image(z), grey)[0][0] for z in range(len(reader))])
        described = f"{prep.window} per slice"
    spacing = tuple(float(v) for v in (image.spacing[1:] if len(image.spacing) == 3 else (1.0, 1.0)))
    old = unit.shape[1:]
    if size is not None and tuple(old) != tuple(size):
        unit = np.stack([resize_image(s[..., None], size)[..., 0] for s in unit])
        label = np.stack([resize_label(s, size) for s in label])
        spacing = resized_spacing(spacing, old, unit.shape[1:])
    return DecodedVolume(sample.id, np.ascontiguousarray(unit, np.float32), label, spacing, described)


class SliceData(SegmentationData):
    """The slices of volume samples as a training dataset (see the module docstring); ``items`` defaults to
    every slice of every sample. Pseudo-label extras are not supported for volumes."""

    def __init__(
        self,
        samples: Sequence[Any],
        classmap: ClassMap,
        preprocessing: Preprocessing,
        image_size: Sequence[int] | None,
        *,
        items: Sequence[SliceItem] | None = None,
        **options: Any,
    ):
        """``options``: ``SegmentationData``'s (augmentation, seed, dist_maps, cache_mb, mirror_swap)."""
        if options.get("extras"):
            raise ValueError("pseudo-label extras are made for 2-D images; the data are volumes")
        super().__init__(samples, classmap, preprocessing, image_size, **options)
        self.items = slice_items(self.samples) if items is None else [(int(i), int(z)) for i, z in items]
        self._volumes: OrderedDict[int, DecodedVolume] = OrderedDict()
        self._volume_bytes = 0
        self.decodes = 0  # volumes decoded so far (a test and a curious user can see the cache work)

    def __len__(self) -> int:
        return len(self.items)

    def item(self, index: int) -> SliceItem:
        return self.items[index]

    def ids(self) -> list[str]:
        return [slice_id(self.samples[i].id, z) for i, z in self.items]

    def volume(self, sample_index: int) -> DecodedVolume:
        """The decoded volume of a sample, from the cache (least recently used dropped first when full)."""
        hit = self._volumes.get(sample_index)
        if hit is not None:
            self._volumes.move_to_end(sample_index)
            return hit
        v = decode_volume(self.samples[sample_index], self.classmap, self.preprocessing, self.image_size)
        self.decodes += 1
        while self._volumes and self._volume_bytes + v.nbytes > self.cache_bytes:
            _, old = self._volumes.popitem(last=False)
            self._volume_bytes -= old.nbytes
        if v.nbytes <= self.cache_bytes:
            self._volumes[sample_index] = v
            self._volume_bytes += v.nbytes
        return v

    def decoded(self, index: int) -> Decoded:
        i, z = self.items[index]
        v = self.volume(i)
        stack = v.image[neighbours(z, v.image.shape[0], self.preprocessing.slices)]
        image = np.ascontiguousarray(np.moveaxis(as_channels(stack, self.preprocessing), 0, -1))
        label = v.label[z]
        if self.image_size is None:
            image, label = pad_to_stride(image, label, int(self.preprocessing.divisible_by or 1))
        return Decoded(slice_id(v.id, z), image, label, v.spacing)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_volumes"], state["_volume_bytes"] = OrderedDict(), 0
        return state


def slice_dataset(
    samples: Sequence[Any],
    classmap: ClassMap,
    preprocessing: Preprocessing,
    image_size: Sequence[int] | None,
    **options: Any,
) -> SegmentationData:
    """``SliceData`` when the samples are volumes, else the 2-D ``SegmentationData``; ValueError on a mix."""
    kinds = {is_volume_sample(s) for s in samples}
    if len(kinds) > 1:
        raise ValueError("the data mixes volumes and 2-D images; train on one kind at a time")
    if kinds == {True}:
        return SliceData(samples, classmap, preprocessing, image_size, **options)
    options.pop("items", None)
    return SegmentationData(samples, classmap, preprocessing, image_size, **options)
