"""Augmentation pipelines from a config, and back to a dict for a checkpoint's provenance.

A config is a preset name (``"seed004"``) or a list of steps, each a dict with
the albumentations class ``name`` and its arguments::

    [{"name": "HorizontalFlip", "p": 0.5},
     {"name": "Affine", "rotate": [-10, 10], "border_mode": "reflect_101"},
     {"name": "OneOf", "p": 0.3, "transforms": [{"name": "GridDistortion"}, {"name": "ElasticTransform"}]}]

Names are looked up in albumentations itself; the steps are checked before
anything is built: an unknown name gets close matches, an unknown argument
names the step, the transform and the valid arguments (with the albumentations
2 name for 1.x ones such as ``max_holes`` or ``alpha_affine``), and a value
albumentations rejects is reported with the argument it belongs to.
Interpolation and border flags may be given by name (``"nearest"``,
``"reflect_101"``). A mask interpolation other than nearest is refused.
Transforms that need boxes or extra images, normalisation (which belongs to the
model's preprocessing) and 3-D transforms are not offered.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2

# albumentations asks PyPI for a newer version on import (2 s timeout): not from an offline engine
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BasicTransform, ImageOnlyTransform
from albumentations.core.type_definitions import Targets

from medseg.errors import AugmentationError, UnknownNameError
from medseg.training.augment import (
    NEAREST,
    SizeLike,
    compose,
    get_preset,
    leaves,
    resize_steps,
)

_NOT_OFFERED = {
    # need bounding boxes, keypoints, reference images or metadata we never pass
    "AtLeastOneBBoxRandomCrop",
    "BBoxSafeRandomCrop",
    "RandomSizedBBoxSafeCrop",
    "RandomCropNearBBox",
    "Mosaic",
    "OverlayElements",
    "TextImage",
    "FDA",
    "HistogramMatching",
    "PixelDistributionAdaptation",
    # not serialisable, or tensor conversion
    "Lambda",
    "ReplayCompose",
    "ToTensorV2",
    "ToTensor3D",
    # normalisation is the model's Preprocessing (medseg.io.normalise.to_model_input)
    "Normalize",
    "ToFloat",
    "FromFloat",
    # abstract bases
    "BasicTransform",
    "DualTransform",
    "ImageOnlyTransform",
    "Transform3D",
    "BaseCompose",
}

_RENAMED = {  # albumentations 1.x argument -> what 2.x takes instead
    "max_holes": "num_holes_range",
    "min_holes": "num_holes_range",
    "max_height": "hole_height_range",
    "min_height": "hole_height_range",
    "max_width": "hole_width_range",
    "min_width": "hole_width_range",
    "fill_value": "fill",
    "mask_fill_value": "fill_mask",
    "value": "fill",
    "mask_value": "fill_mask",
    "cval": "fill",
    "cval_mask": "fill_mask",
    "mode": "border_mode",
    "alpha_affine": "nothing: it was removed in albumentations 2; add an Affine step for the affine part",
    "always_apply": "p=1",
}

_FLAGS = {
    "interpolation": {
        "nearest": cv2.INTER_NEAREST,
        "linear": cv2.INTER_LINEAR,
        "cubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
        "lanczos4": cv2.INTER_LANCZOS4,
    },
    "border_mode": {
        "constant": cv2.BORDER_CONSTANT,
        "replicate": cv2.BORDER_REPLICATE,
        "reflect": cv2.BORDER_REFLECT,
        "reflect_101": cv2.BORDER_REFLECT_101,
        "wrap": cv2.BORDER_WRAP,
    },
}
_FLAGS["mask_interpolation"] = _FLAGS["interpolation"]


@functools.cache
def available_transforms() -> tuple[str, ...]:
    """Names a config may use: albumentations transforms that move masks with images, and compositions."""
    names = []
    for name in dir(A):
        cls = getattr(A, name)
        if not inspect.isclass(cls) or name in _NOT_OFFERED or "3D" in name:
            continue
        if issubclass(cls, BaseCompose) or (issubclass(cls, BasicTransform) and _moves_masks(cls)):
            names.append(name)
    return tuple(names)


def _moves_masks(cls: type) -> bool:
    return issubclass(cls, ImageOnlyTransform) or Targets.MASK in getattr(cls, "_targets", ())


def build_augmentation(
    spec: str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None, size: SizeLike = None
) -> A.Compose:
    """A pipeline from a preset name, a list of steps, or a dict saved by :func:`pipeline_to_dict`.

    ``size`` adds a Resize (nearest for masks) before the steps of a list or preset.
    """
    if spec is None:
        return get_preset("none", size)
    if isinstance(spec, str):
        return get_preset(spec, size)
    if isinstance(spec, Mapping):
        if "transform" in spec:
            return pipeline_from_dict(spec)
        if "preset" in spec:
            options = {k: v for k, v in spec.items() if k != "preset"}
            return get_preset(spec["preset"], size, **options)
        raise AugmentationError(
            "an augmentation dict needs 'preset' (a name) or 'transform' "
            f"(a pipeline_to_dict result), got keys {sorted(spec)}"
        )
    if not isinstance(spec, Sequence):
        raise AugmentationError(f"augmentation must be a preset name or a list of steps, got {type(spec).__name__}")
    return compose(resize_steps(size) + [_build_step(step, f"augmentation step [{i}]") for i, step in enumerate(spec)])


def _build_step(step: Any, where: str) -> BasicTransform | BaseCompose:
    if not isinstance(step, Mapping) or not isinstance(step.get("name"), str):
        raise AugmentationError(f"{where}: a step is a dict with a 'name' (an albumentations transform), got {step!r}")
    name = step["name"]
    valid = available_transforms()
    if name not in valid:
        hint = (
            "It needs inputs a segmentation sample does not have, or is not augmentation." if hasattr(A, name) else ""
        )
        raise UnknownNameError("augmentation transform", name, list(valid), hint=f"({where}) {hint}".strip())
    cls = getattr(A, name)
    where = f"{where} {name}"
    kwargs = {k: v for k, v in step.items() if k != "name"}
    params = {
        n: p
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    for arg in kwargs:
        if arg not in params:
            hint = f" (use {_RENAMED[arg]})" if arg in _RENAMED else ""
            raise AugmentationError(f"{where}: unknown argument {arg!r}{hint}; valid: {', '.join(params)}")
    for arg, table in _FLAGS.items():
        if isinstance(kwargs.get(arg), str):
            key = kwargs[arg].lower().removeprefix("cv2.").removeprefix("inter_").removeprefix("border_")
            if key not in table:
                raise AugmentationError(f"{where}: {arg}={kwargs[arg]!r} is not one of {', '.join(table)}")
            kwargs[arg] = table[key]
    if "mask_interpolation" in params and kwargs.setdefault("mask_interpolation", NEAREST) != NEAREST:
        raise AugmentationError(
            f"{where}: mask_interpolation must be nearest (cv2.INTER_NEAREST = 0): "
            "any other mode blends class ids into values that are no class"
        )
    if issubclass(cls, BaseCompose):
        children = kwargs.get("transforms")
        if not isinstance(children, Sequence) or isinstance(children, str) or not children:
            raise AugmentationError(f"{where}: needs 'transforms', a non-empty list of steps")
        kwargs["transforms"] = [_build_step(c, f"{where}.transforms[{j}]") for j, c in enumerate(children)]
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise AugmentationError(f"{where}: {_explain(e, kwargs)}") from None


def _explain(e: Exception, kwargs: Mapping[str, Any]) -> str:
    """pydantic's report reduced to 'bad argument X=value: reason' lines."""
    # albumentations re-raises pydantic's ValidationError as a plain ValueError from it
    errors = getattr(e.__cause__, "errors", None) or getattr(e, "errors", None)
    if callable(errors):
        lines = []
        for err in errors():
            arg = str(err.get("loc", ("?",))[0]) if err.get("loc") else "arguments"
            shown = f"={kwargs[arg]!r}" if arg in kwargs else ""
            lines.append(f"bad argument {arg!r}{shown}: {err.get('msg', '')}")
        return "; ".join(dict.fromkeys(lines))
    return str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__


def pipeline_to_dict(pipeline: A.Compose) -> dict[str, Any]:
    """albumentations' own description (``A.to_dict``) in plain JSON types, to store in a checkpoint."""
    return json.loads(json.dumps(A.to_dict(pipeline)))


def pipeline_from_dict(data: Mapping[str, Any]) -> A.Compose:
    """Rebuild a pipeline saved by :func:`pipeline_to_dict`, checked as configs are."""
    try:
        pipeline = A.from_dict(dict(data))
    except (KeyError, TypeError, ValueError) as e:
        raise AugmentationError(f"saved augmentation pipeline cannot be rebuilt: {type(e).__name__}: {e}") from None
    if not isinstance(pipeline, A.Compose):
        raise AugmentationError(f"saved augmentation is a {type(pipeline).__name__}, not a Compose")
    valid = set(available_transforms())
    for t in leaves(pipeline):
        if type(t).__name__ not in valid:
            raise AugmentationError(f"saved augmentation holds {type(t).__name__}, which is not offered")
        if getattr(t, "mask_interpolation", NEAREST) != NEAREST:
            raise AugmentationError(
                f"saved augmentation: {type(t).__name__} has a mask_interpolation other than nearest"
            )
    pipeline.set_mask_interpolation(NEAREST)
    return pipeline
