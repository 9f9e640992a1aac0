"""Sample-level augmentation: albumentations pipelines that keep masks exact and aligned.

Named presets (``PRESETS``, built by :func:`get_preset`):

* ``seed004``: seed 004's UW-Madison pipeline. Resize (nearest for image and
  mask, as the seed), HorizontalFlip(0.5), its ShiftScaleRotate(0.0625, 0.05,
  10, p=0.5) as ``A.Affine`` (albumentations 2 keeps ShiftScaleRotate only as a
  deprecated alias; ``keep_ratio=True`` because 1.x scaled both axes alike),
  OneOf(GridDistortion(5, 0.05), ElasticTransform(1, 50), p=0.25), and
  CoarseDropout of 5..8 holes of size/20 filled with 0 in image and mask
  (p=0.5). Albumentations 1.x, which the seed ran, reflected at the border
  (BORDER_REFLECT_101); 2.x fills with 0 by default, so the reflect mode is set
  explicitly. The seed's ``alpha_affine=50`` no longer exists in 2.x: its
  affine part is the Affine step.
* ``seed001_mirror`` / ``seed001_cutout`` / ``seed001_clahe`` /
  ``seed001_histeq``: seed 001's random mirror, cutout, CLAHE and histogram
  equalisation. Cutout hides pixels only (``fill_mask=None``: the occluded
  anatomy keeps its label, as DeVries & Taylor's cutout); the seed gives no
  sizes, so 1..3 holes of 10..25 % of each side are ours. CLAHE / Equalize run
  at ``p=0.5`` as augmentation, so inference needs no matching step; with
  ``p=1`` they become preprocessing and inference must apply them too.
  A horizontal mirror swaps sides: with side-specific classes (seed 001's left
  and right lung) the flipped labels are wrong unless the class ids are swapped,
  which ``augment(..., mirror_swap=...)`` does whenever an odd number of
  horizontal flips was applied (``data.mirror_swap`` in the training config).
* ``light`` (flip + small affine, zero border) and ``none``.

Every pipeline is an ``A.Compose`` with ``mask_interpolation=INTER_NEAREST``,
which overrides each transform's own setting: masks are resampled, never blended.

:func:`augment` runs a pipeline on one sample. It adapts types for OpenCV
(bool / int64 masks, 16-bit and float images become uint8 / int32 / float32 and
are restored afterwards) and refuses intensity (image-only) transforms on images
that are neither uint8 nor floats in [0, 1]: albumentations assumes that range
for floats and would clip 16-bit or HU values without a word. CLAHE and
Equalize on [0, 1] floats work at 8-bit depth (albumentations converts to
uint8); for full-depth CLAHE of 16-bit images use
:func:`medseg.io.normalise.clahe` as preprocessing.

Seeding: in albumentations 2.0.8 ``Compose(seed=s)`` gives every transform its
own generator started from the same seed, so transforms with equal ``p`` fire
together (HorizontalFlip(0.5) + VerticalFlip(0.5) becomes all-or-nothing).
:func:`reseed` shares one generator between all transforms instead.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

# albumentations asks PyPI for a newer version on import (2 s timeout): not from an offline engine
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BasicTransform, ImageOnlyTransform

from medseg.errors import AugmentationError, UnknownNameError

NEAREST = cv2.INTER_NEAREST
SizeLike = int | tuple[int, int] | list[int] | None


def _size(size: SizeLike) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise AugmentationError(f"augmentation size must be positive (height, width), got {size!r}")
    return int(h), int(w)


def resize_steps(size: SizeLike, interpolation: int = cv2.INTER_LINEAR) -> list:
    hw = _size(size)
    return [] if hw is None else [A.Resize(*hw, interpolation=interpolation, mask_interpolation=NEAREST)]


def compose(transforms: list) -> A.Compose:
    """``A.Compose`` with nearest mask interpolation enforced on every step."""
    return A.Compose(transforms, mask_interpolation=NEAREST)


def preset_none(size: SizeLike = None) -> A.Compose:
    return compose(resize_steps(size))


def preset_light(size: SizeLike = None) -> A.Compose:
    return compose(
        resize_steps(size)
        + [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.95, 1.05),
                keep_ratio=True,
                translate_percent=(-0.05, 0.05),
                rotate=(-10, 10),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                mask_interpolation=NEAREST,
                p=0.5,
            ),
        ]
    )


def preset_seed004(size: SizeLike = None) -> A.Compose:
    reflect = cv2.BORDER_REFLECT_101
    shift = (-0.0625, 0.0625)
    return compose(
        resize_steps(size, interpolation=NEAREST)
        + [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.95, 1.05),
                keep_ratio=True,
                translate_percent={"x": shift, "y": shift},
                rotate=(-10, 10),
                shear=0,
                border_mode=reflect,
                mask_interpolation=NEAREST,
                p=0.5,
            ),
            A.OneOf(
                [
                    A.GridDistortion(
                        num_steps=5, distort_limit=0.05, border_mode=reflect, mask_interpolation=NEAREST, p=1.0
                    ),
                    A.ElasticTransform(alpha=1, sigma=50, border_mode=reflect, mask_interpolation=NEAREST, p=1.0),
                ],
                p=0.25,
            ),
            # fractions of the (resized) side: 0.05 is the seed's img_size // 20
            A.CoarseDropout(
                num_holes_range=(5, 8),
                hole_height_range=(0.05, 0.05),
                hole_width_range=(0.05, 0.05),
                fill=0,
                fill_mask=0,
                p=0.5,
            ),
        ]
    )


def preset_seed001_mirror(size: SizeLike = None) -> A.Compose:
    return compose(resize_steps(size) + [A.HorizontalFlip(p=0.5)])


def preset_seed001_cutout(size: SizeLike = None, fill_mask: float | None = None) -> A.Compose:
    return compose(
        resize_steps(size)
        + [
            A.CoarseDropout(
                num_holes_range=(1, 3),
                hole_height_range=(0.1, 0.25),
                hole_width_range=(0.1, 0.25),
                fill=0,
                fill_mask=fill_mask,
                p=0.5,
            ),
        ]
    )


def preset_seed001_clahe(size: SizeLike = None, p: float = 0.5) -> A.Compose:
    return compose(resize_steps(size) + [A.CLAHE(clip_limit=(1, 4), tile_grid_size=(8, 8), p=p)])


def preset_seed001_histeq(size: SizeLike = None, p: float = 0.5) -> A.Compose:
    # by_channels=False equalises luma only, so colour (endoscopy) keeps its hue
    return compose(resize_steps(size) + [A.Equalize(mode="cv", by_channels=False, p=p)])


PRESETS: dict[str, Callable[..., A.Compose]] = {
    "none": preset_none,
    "light": preset_light,
    "seed004": preset_seed004,
    "seed001_mirror": preset_seed001_mirror,
    "seed001_cutout": preset_seed001_cutout,
    "seed001_clahe": preset_seed001_clahe,
    "seed001_histeq": preset_seed001_histeq,
}


def get_preset(name: str, size: SizeLike = None, **options: Any) -> A.Compose:
    """The named preset; ``size`` (int or (height, width)) adds a Resize first."""
    if name not in PRESETS:
        raise UnknownNameError("augmentation preset", name, list(PRESETS))
    try:
        return PRESETS[name](size, **options)
    except TypeError as e:
        raise AugmentationError(f"augmentation preset {name!r}: {e}") from None


def leaves(pipeline: BasicTransform | BaseCompose) -> Iterator[BasicTransform]:
    """Every transform of a pipeline, compositions (OneOf, ...) opened."""
    if isinstance(pipeline, BaseCompose):
        for t in pipeline.transforms:
            yield from leaves(t)
    else:
        yield pipeline


def reseed(pipeline: BaseCompose, seed: int) -> None:
    """Make the next draws of ``pipeline`` a function of ``seed`` alone, transforms independent."""
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """One seed per (run, epoch, sample): augmentation then does not depend on worker count or order."""
    return int(np.random.SeedSequence([int(base_seed), int(epoch), int(index)]).generate_state(1)[0])


def augment(
    pipeline: A.Compose,
    image: np.ndarray,
    mask: np.ndarray | None = None,
    multilabel: np.ndarray | None = None,
    *,
    seed: int | None = None,
    distance_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    mirror_swap: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Run ``pipeline`` on one sample; returns ``image`` and whichever of ``mask``, ``multilabel``, ``distance``.

    ``image``: (H, W) or (H, W, C), any real dtype. ``mask``: (H, W) integer or
    bool class ids. ``multilabel``: (H, W, C) bool or 0/1 channels (classes may
    overlap). Types come back as given. ``seed`` reseeds the pipeline first
    (:func:`reseed`). Distance maps are not augmented: scaling and elastic
    warps change distances and dropout changes the mask, so ``distance_fn`` is
    applied to the augmented ``multilabel`` (when given, else ``mask``) and its
    result returned as ``distance``.
    """
    image = np.asarray(image)
    hw = image.shape[:2]
    if image.ndim not in (2, 3):
        raise AugmentationError(f"augment takes one 2-D image (H, W) or (H, W, C), got shape {image.shape}")
    src_dtype = image.dtype
    work = _image_for_cv(image, pipeline)
    data: dict[str, Any] = {"image": work}
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise AugmentationError(
                f"mask must be (H, W) class ids, got shape {mask.shape}; "
                "pass (H, W, C) multilabel channels as multilabel="
            )
        _check_hw("mask", mask, hw)
        data["mask"] = _mask_for_cv(mask)
    if multilabel is not None:
        multilabel = np.asarray(multilabel)
        if multilabel.ndim != 3:
            raise AugmentationError(f"multilabel must be (H, W, C) channels, got shape {multilabel.shape}")
        _check_hw("multilabel", multilabel, hw)
        if multilabel.dtype != bool and not np.isin(multilabel, (0, 1)).all():
            raise AugmentationError(
                f"multilabel channels must be bool or 0/1, got values {np.unique(multilabel)[:8].tolist()}"
            )
        data["masks"] = np.ascontiguousarray(np.moveaxis(multilabel.astype(np.uint8), -1, 0))
    if seed is not None:
        reseed(pipeline, seed)
    if mirror_swap is not None:
        pipeline.save_applied_params = True  # to see whether a flip fired
    try:
        out = pipeline(**data)
    except (cv2.error, TypeError, ValueError) as e:
        names = ", ".join(type(t).__name__ for t in leaves(pipeline))
        raise AugmentationError(
            f"augmentation [{names}] failed on an image of shape {image.shape}, "
            f"dtype {src_dtype}: {str(e).strip().splitlines()[-1]}"
        ) from e
    result = {"image": _restore_image(out["image"], src_dtype)}
    if mask is not None:
        result["mask"] = out["mask"].astype(mask.dtype, copy=False)
    if multilabel is not None:
        result["multilabel"] = np.moveaxis(np.asarray(out["masks"]), 0, -1).astype(multilabel.dtype, copy=False)
    if mirror_swap is not None and mirrored(out.get("applied_transforms", ())):
        swap = np.asarray(mirror_swap)
        if mask is not None:
            result["mask"] = swap[result["mask"]].astype(mask.dtype, copy=False)
        if multilabel is not None:
            result["multilabel"] = result["multilabel"][..., swap]
    if distance_fn is not None:
        target = result.get("multilabel", result.get("mask"))
        if target is None:
            raise AugmentationError("distance_fn needs a mask or multilabel channels to compute distances from")
        result["distance"] = distance_fn(target)
    return result


def mirrored(applied: Any) -> bool:
    """Whether the applied transforms leave the image horizontally mirrored (an odd number of flips)."""
    return sum(name == "HorizontalFlip" for name, _ in applied) % 2 == 1


def swap_permutation(pairs: dict[int, int], n: int) -> np.ndarray:
    """Identity over ``n`` values with each pair (a, b) exchanged both ways."""
    perm = np.arange(n)
    for a, b in pairs.items():
        if not (0 <= a < n and 0 <= b < n):
            raise AugmentationError(f"mirror swap {a} <-> {b} is outside the {n} label values")
        perm[a], perm[b] = b, a
    return perm


def assert_mask_integrity(mask_before_values: np.ndarray | list, mask_after: np.ndarray) -> None:
    """Fail (AssertionError) unless ``mask_after`` is integer / bool and holds only values seen before."""
    after = np.asarray(mask_after)
    if after.dtype.kind not in "biu":
        raise AssertionError(f"mask became {after.dtype}; masks must stay integer or bool")
    before = np.unique(np.asarray(mask_before_values))
    new = np.setdiff1d(np.unique(after), before)
    if new.size:
        raise AssertionError(
            f"mask holds values {new[:10].tolist()} that were not in the original "
            f"{before[:10].tolist()}: it was interpolated or filled with a new id"
        )


def _check_hw(what: str, a: np.ndarray, hw: tuple[int, ...]) -> None:
    if a.shape[:2] != hw:
        raise AugmentationError(f"{what} is {a.shape[:2]} (rows, cols) but the image is {hw}")


def _image_for_cv(image: np.ndarray, pipeline: BaseCompose) -> np.ndarray:
    """uint8 as is; any other real type as float32, refused where an intensity transform would clip it."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in "biuf":
        raise AugmentationError(f"cannot augment an image of dtype {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise AugmentationError("image contains NaN/inf; replace them before augmenting")
    intensity = sorted({type(t).__name__ for t in leaves(pipeline) if isinstance(t, ImageOnlyTransform)})
    if intensity:
        unit = image.dtype.kind in "bf" and (image.size == 0 or (image.min() >= 0 and image.max() <= 1))
        if not unit:
            raise AugmentationError(
                f"{', '.join(intensity)} take uint8 images or floats in [0, 1], got {image.dtype} with range "
                f"{image.min()}..{image.max()} (albumentations would clip it silently). Window it first "
                "(medseg.io.normalise.apply_window) or convert to uint8; for full-depth CLAHE use "
                "medseg.io.normalise.clahe as preprocessing."
            )
    # float32 holds every uint16 / int16 value exactly
    return image.astype(np.float32, copy=False)


def _restore_image(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if image.dtype == dtype:
        return image
    if dtype.kind == "b":
        return image >= 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(dtype)
    return image.astype(dtype)


def _mask_for_cv(mask: np.ndarray) -> np.ndarray:
    """Class ids in a type OpenCV warps (uint8, else int32)."""
    if mask.dtype.kind not in "biu":
        raise AugmentationError(f"mask must hold integer class ids (or bool), got dtype {mask.dtype}")
    if mask.size == 0 or mask.dtype == bool or (mask.min() >= 0 and mask.max() <= 255):
        return mask.astype(np.uint8, copy=False)
    lo, hi = int(mask.min()), int(mask.max())
    if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
        raise AugmentationError(f"mask ids {lo}..{hi} do not fit int32, which OpenCV needs to warp them")
    return mask.astype(np.int32, copy=False)
