"""The training data pipeline: samples -> (image, target[, distance maps]) tensors, in a resumable order.

Per sample (``SegmentationData``):

1. decode: the image through the run's ``Preprocessing`` window (any bit
   depth, grey / RGB / RGBA, DICOM windows; ``medseg.inference.preprocess.
   model_input`` without mean/std, so intensities are in [0, 1]) and the mask
   as channel indices (binary / multiclass: class id -> its logit channel) or
   (H, W, C) bool channels (multilabel);
2. resize to ``image_size`` (image: area when shrinking, linear when growing;
   masks: nearest) — decoded and resized samples are cached in memory up to
   ``cache_mb`` (decoding is most of the per-sample cost: 48 PNGs of 256 px
   to 128 px went from ~130 to ~14,000 samples/s once cached). This is the
   only resize: an augmentation preset's own Resize step (seed 004 resizes
   images with nearest neighbours) is left out, so every preset sees the same
   cached image. Without ``image_size`` a sample keeps its size, mirrored at
   the bottom and right up to the model's stride (``pad_to_stride``);
3. augment (albumentations, seeded per (run seed, epoch, sample) so the
   result does not depend on order, workers or resuming);
4. standardise with the preprocessing's mean / std; the target in the loss's
   layout (binary (1, H, W) float, multiclass (H, W) long, multilabel
   (C, H, W) float); signed distance maps (C, H, W) when the loss needs them,
   computed here from the augmented target, in physical units of the resized
   pixel spacing.

Order (``EpochBatches``): a permutation per epoch from a ``torch.Generator``
seeded by (seed, epoch), or the rank's shard under DDP; ``set_epoch(epoch,
start_batch)`` continues an epoch mid-way, so a resumed run reads the same
batches as an uninterrupted one. The dataset is indexed by ``(index, epoch)``
keys, so workers (persistent or not) need no epoch state.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from medseg.datasets.classmap import ClassMap
from medseg.errors import MaskError, ReadError
from medseg.inference.preprocess import model_input
from medseg.inference.volume_input import standardise as channels_standardised
from medseg.io.resize import resize_image, resize_label
from medseg.models.spec import Preprocessing
from medseg.training.augment import augment, sample_seed
from medseg.training.distance_maps import class_distance_maps, resized_spacing

Key = tuple[int, int]  # (sample index, epoch)


@dataclass
class Decoded:
    """A sample ready for augmentation: [0, 1] image (H, W, C) float32, label, spacing (row, col)."""

    id: str
    image: np.ndarray
    label: np.ndarray  # (H, W) channel indices (binary / multiclass) or (H, W, C) bool (multilabel)
    spacing: tuple[float, float]

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + self.label.nbytes


def unit_preprocessing(prep: Preprocessing) -> Preprocessing:
    """``prep`` without mean / std: the [0, 1] image augmentation works on."""
    return dataclasses.replace(prep, mean=None, std=None)


def standardise(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """[0, 1] (H, W, C) -> (C, H, W) float32 with the preprocessing's per-channel mean / std applied."""
    return channels_standardised(np.moveaxis(np.asarray(image, np.float32), -1, 0), prep)


def channel_lut(classmap: ClassMap) -> np.ndarray:
    """Class id -> logit channel (binary / multiclass); -1 marks ids the class map lacks."""
    lut = np.full(max(classmap.ids, default=0) + 1, -1, np.int32)
    lut[0] = 0
    for k, cid in enumerate(classmap.ids):
        lut[cid] = k + 1
    return lut


def mirror_permutation(classmap: ClassMap, pairs: dict[str, str]) -> np.ndarray:
    """The label permutation (logit channels) that exchanges each pair of class names on a mirror."""
    from medseg.training.augment import swap_permutation

    try:
        ids = {classmap.id_of(a): classmap.id_of(b) for a, b in pairs.items()}
    except KeyError as e:
        raise ValueError(f"data.mirror_swap: {e.args[0]}") from None
    if classmap.task == "multilabel":  # channels are the classes in class-map order
        order = {cid: k for k, cid in enumerate(classmap.ids)}
        return swap_permutation({order[a]: order[b] for a, b in ids.items()}, len(classmap.ids))
    lut = channel_lut(classmap)
    return swap_permutation({int(lut[a]): int(lut[b]) for a, b in ids.items()}, len(classmap.ids) + 1)


def decode_image(image: Any, prep: Preprocessing, size: Sequence[int] | None) -> tuple[np.ndarray, tuple]:
    """An ImageData (or array) -> ([0, 1] float32 (h, w, C) at ``size``, spacing after resizing)."""
    x, _ = model_input(image, unit_preprocessing(prep))
    x = np.ascontiguousarray(np.moveaxis(x, 0, -1))
    old = x.shape[:2]
    spacing = tuple(getattr(image, "spacing", (1.0, 1.0)))[-2:]
    x = resize_image(x, size)
    return x, resized_spacing(spacing, old, x.shape[:2])


def decode_sample(sample: Any, classmap: ClassMap, prep: Preprocessing, size: Sequence[int] | None) -> Decoded:
    """Load, window and resize one ``medseg.datasets.Sample``."""
    image = sample.load_image()
    if getattr(image, "spatial_ndim", 2) != 2:
        raise ReadError(sample.image_path, f"training takes 2-D images; this one has shape {image.array.shape}")
    x, spacing = decode_image(image, prep, None)
    if sample.extra.get("spacing"):  # e.g. UW-Madison's file names carry the pixel size a PNG cannot
        spacing = tuple(float(v) for v in sample.extra["spacing"])
    mask = np.asarray(sample.load_mask())
    if mask.shape[:2] != x.shape[:2]:
        raise MaskError(
            next(iter(sample.mask_paths.values()), sample.image_path),
            f"mask of sample {sample.id} is {mask.shape[:2]}, its image {x.shape[:2]}",
        )
    label = label_channels(mask, classmap, sample)
    if size is None:
        x, label = pad_to_stride(x, label, int(prep.divisible_by or 1))
        return Decoded(sample.id, x, label, spacing)
    old = x.shape[:2]
    x, label = resize_image(x, size), resize_label(label, size)
    return Decoded(sample.id, x, label, resized_spacing(spacing, old, x.shape[:2]))


def label_channels(mask: np.ndarray, classmap: ClassMap, sample: Any) -> np.ndarray:
    """A sample's mask as the loss reads it: (..., H, W) channel indices (binary / multiclass: class id -> its
    logit channel) or (H, W, C) bool (multilabel); MaskError naming the file for ids the class map lacks."""
    mask_path = next(iter((getattr(sample, "mask_paths", None) or {}).values()), sample.image_path)
    if classmap.task == "multilabel":
        if mask.ndim != 3 or mask.shape[2] != classmap.num_classes:
            raise MaskError(
                sample.image_path,
                f"sample {sample.id}: a multilabel mask has {classmap.num_classes} "
                f"channels (H, W, C), got shape {mask.shape}",
            )
        return mask.astype(bool)
    expected = 3 if getattr(sample, "is_volume", False) else 2
    if mask.ndim != expected:
        shape = "(Z, Y, X)" if expected == 3 else "(H, W)"
        raise MaskError(mask_path, f"sample {sample.id}: expected {shape} class ids, got {mask.shape}")
    lut = channel_lut(classmap)
    ids = mask.astype(np.int64)
    bad = (ids < 0) | (ids >= len(lut))
    bad[~bad] = lut[ids[~bad]] < 0
    if bad.any():
        values = np.unique(mask[bad])[:10].tolist()
        raise MaskError(
            mask_path, f"sample {sample.id} holds class ids {values} that the class map lacks (ids: {classmap.ids})"
        )
    return lut[ids].astype(np.uint8 if classmap.num_classes < 256 else np.int32)


def pad_to_stride(image: np.ndarray, label: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """At its own size (``data.image_size: null``) a sample is mirrored at its bottom and right edges up to
    a multiple of the model's stride, image and label alike, as the Predictor pads: a 1 x 300 strip cannot
    be pooled. A sample padded to a single stride cell is widened to two: alone in a batch (samples of
    different sizes are batched one by one), BatchNorm needs two values per channel at the deepest level."""
    rows, cols = image.shape[:2]
    pad = ((0, -rows % stride), (0, -cols % stride))
    if not any(after for _, after in pad):
        return image, label
    if rows + pad[0][1] == stride and cols + pad[1][1] == stride:
        pad = (pad[0], (0, pad[1][1] + stride))
    extra = ((0, 0),) * (image.ndim - 2)
    return (
        np.pad(image, pad + extra, mode="symmetric"),
        np.pad(label, pad + ((0, 0),) * (label.ndim - 2), mode="symmetric"),
    )


class SegmentationData(torch.utils.data.Dataset):
    """Samples (``medseg.datasets.Sample``) plus optional ``Decoded`` extras (pseudo-labels) as tensors.

    Indexed by ``(index, epoch)``; ``augmentation`` None (validation) gives the
    resized sample only. Items: ``image`` (C, H, W) float32, ``target`` (the
    loss's layout), ``spacing`` (2,) float64, ``index``, and ``dist_maps``
    (C, H, W) float32 when ``dist_maps`` is True.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        classmap: ClassMap,
        preprocessing: Preprocessing,
        image_size: Sequence[int] | None,
        augmentation: Any = None,
        seed: int = 0,
        dist_maps: bool = False,
        cache_mb: float = 1024,
        extras: Sequence[Decoded] = (),
        mirror_swap: dict[str, str] | None = None,
    ):
        self.samples, self.extras = list(samples), list(extras)
        self.mirror_swap = mirror_permutation(classmap, mirror_swap) if mirror_swap else None
        self.classmap, self.preprocessing = classmap, preprocessing
        self.task, self.classes = classmap.task, classmap.num_classes
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.augmentation, self.seed, self.dist_maps = augmentation, int(seed), bool(dist_maps)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, Decoded] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.samples) + len(self.extras)

    def ids(self) -> list[str]:
        return [s.id for s in self.samples] + [e.id for e in self.extras]

    def decoded(self, index: int) -> Decoded:
        if index >= len(self.samples):
            return self.extras[index - len(self.samples)]
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        d = decode_sample(self.samples[index], self.classmap, self.preprocessing, self.image_size)
        if self._cached_bytes + d.nbytes <= self.cache_bytes:
            self._cache[index] = d
            self._cached_bytes += d.nbytes
        return d

    def __getitem__(self, key: Key | int) -> dict[str, Any]:
        index, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        d = self.decoded(int(index))
        image, label = d.image, d.label
        if self.augmentation is not None:
            kw = {"multilabel": label} if self.task == "multilabel" else {"mask": label}
            out = augment(
                self.augmentation, image, seed=sample_seed(self.seed, epoch, index), mirror_swap=self.mirror_swap, **kw
            )
            image = out["image"]
            label = out["multilabel"] if self.task == "multilabel" else out["mask"]
        item = {
            "image": torch.from_numpy(standardise(image, self.preprocessing)),
            "target": self._target(label),
            "spacing": torch.tensor(d.spacing, dtype=torch.float64),
            "index": int(index),
        }
        if self.dist_maps:
            item["dist_maps"] = torch.from_numpy(
                class_distance_maps(item["target"].numpy(), self.classes, d.spacing, self.task)
            )
        return item

    def _target(self, label: np.ndarray) -> torch.Tensor:
        if self.task == "binary":
            return torch.from_numpy((label > 0).astype(np.float32)[None])
        if self.task == "multiclass":
            return torch.from_numpy(label.astype(np.int64))
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(label, -1, 0), dtype=np.float32))

    def __getstate__(self) -> dict[str, Any]:
        # workers start with an empty cache (each fills its own) instead of a pickled copy of the parent's
        state = dict(self.__dict__)
        state["_cache"], state["_cached_bytes"] = {}, 0
        return state


def epoch_order(n: int, seed: int, epoch: int, dist: Any = None) -> list[int]:
    """The sample order of ``epoch``: a permutation seeded by (seed, epoch), or this rank's DDP shard."""
    if dist is not None:
        return [int(i) for i in dist.shard(list(range(n)), epoch, seed)]
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0]))
    return torch.randperm(n, generator=g).tolist()


def batch_count(n: int, batch: int) -> int:
    """Batches in an epoch of ``n``: full batches only (a last small one would give noisy BatchNorm
    statistics and a biased step), but at least one."""
    return max(1, n // batch) if n else 0


class EpochBatches(Sampler[list[Key]]):
    """Batches of ``(index, epoch)`` keys for one epoch; ``set_epoch`` picks the epoch and where to start."""

    def __init__(self, n: int, batch: int, seed: int, dist: Any = None, max_batches: int | None = None):
        self.n, self.batch, self.seed, self.dist, self.max_batches = n, batch, seed, dist, max_batches
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start_batch)

    def batches_in_epoch(self) -> int:
        n = len(epoch_order(self.n, self.seed, self.epoch, self.dist)) if self.dist is not None else self.n
        count = batch_count(n, self.batch)
        return count if self.max_batches is None else min(count, self.max_batches)

    def __len__(self) -> int:
        return max(0, self.batches_in_epoch() - self.start)

    def __iter__(self) -> Iterator[list[Key]]:
        order = epoch_order(self.n, self.seed, self.epoch, self.dist)
        total = batch_count(len(order), self.batch)
        if self.max_batches is not None:
            total = min(total, self.max_batches)
        for b in range(self.start, total):
            yield [(i, self.epoch) for i in order[b * self.batch : (b + 1) * self.batch]]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        return default_collate(items)
    except RuntimeError as e:
        shapes = sorted({tuple(i["image"].shape) for i in items})
        raise ValueError(
            f"cannot batch images of different sizes {shapes[:4]}: set data.image_size "
            "so that every image is resized to one size"
        ) from e


def seed_worker(worker_id: int) -> None:
    """numpy / random in a loader worker seeded from torch's per-worker seed (itself from the loader's generator)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(
    data: SegmentationData, sampler: Sampler, num_workers: int = 0, seed: int = 0, pin_memory: bool = False
) -> DataLoader:
    return DataLoader(
        data,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=seed_worker if num_workers else None,
        generator=torch.Generator().manual_seed(int(seed)),
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def sequential_batches(n: int, batch: int) -> list[list[Key]]:
    """Validation order: every sample once, in order, last batch possibly smaller."""
    return [[(i, 0) for i in range(s, min(s + batch, n))] for s in range(0, n, batch)]
