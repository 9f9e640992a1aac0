"""Registry from architecture names to builders: ``create_model(spec)`` and what it can build.

Names are smp's ("Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3",
"DeepLabV3Plus", "Linknet", "MAnet", "PAN", "UPerNet", "Segformer", "DPT")
and the project's own ("ResAttUNet", "DilatedUNet", "PlainUNet"), looked up
case-insensitively. Every model returns logits (no activation: the task
applies sigmoid or softmax downstream) and has ``last_aux`` (see
``medseg.models.aux_head``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from medseg.errors import UnknownNameError, WeightsUnavailableError
from medseg.models import smp_models
from medseg.models import weights as wts
from medseg.models.spec import ModelSpec
from medseg.models.unets import DilatedUNet, PlainUNet, ResAttUNet


@dataclass(frozen=True)
class Architecture:
    """``build(spec, load_weights)`` makes the model; ``stride(spec)`` says what H and W must be multiples of."""

    name: str
    build: Callable[[ModelSpec, bool], nn.Module]
    stride: Callable[[ModelSpec], int]
    own: bool = False


ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add (or replace) an architecture; its name is matched case-insensitively."""
    ARCHITECTURES[arch.name] = arch
    return arch


def _own_kwargs(cls: type[nn.Module], spec: ModelSpec) -> dict:
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "in_channels", "classes", "aux")]
    for key in spec.kwargs:
        if key not in valid:
            raise UnknownNameError(f"{cls.__name__} option", key, valid)
    if spec.aux_head == "segmentation":
        raise ValueError(
            f"{cls.__name__}: aux 'segmentation' (deep supervision from an encoder stage) is built for smp "
            "architectures; the own U-Nets take aux 'presence'"
        )
    return {**spec.kwargs, "in_channels": spec.in_channels, "classes": spec.classes, "aux": spec.aux_head is not None}


def _build_own(cls: type[nn.Module], spec: ModelSpec, load_weights: bool) -> nn.Module:
    model = cls(**_own_kwargs(cls, spec))
    weights = spec.encoder_weights if load_weights else None
    if weights is not None:
        if not wts.is_local(weights):
            raise WeightsUnavailableError(
                cls.__name__, weights, f"{cls.__name__} has no published pretrained weights (only smp encoders do)"
            )
        model.encoder_weights_report = wts.load_encoder_weights(model.encoder, weights)
    return model


def _own_stride(cls: type[nn.Module], spec: ModelSpec) -> int:
    _own_kwargs(cls, spec)
    depth = spec.kwargs.get("depth", inspect.signature(cls.__init__).parameters["depth"].default)
    if int(depth) < 1:
        raise ValueError(f"{cls.__name__}: depth must be >= 1, got {depth}")
    return 2 ** int(depth)


for _cls in smp_models.SMP_ARCHITECTURES.values():
    register(
        Architecture(
            _cls.__name__, functools.partial(smp_models.build_smp, _cls), functools.partial(smp_models.smp_stride, _cls)
        )
    )
for _cls in (ResAttUNet, DilatedUNet, PlainUNet):
    register(
        Architecture(_cls.__name__, functools.partial(_build_own, _cls), functools.partial(_own_stride, _cls), own=True)
    )


def resolve(name: str) -> Architecture:
    """The registered architecture called ``name`` (any case), else ``UnknownNameError`` listing them."""
    found = {k.lower(): v for k, v in ARCHITECTURES.items()}.get(str(name).lower())
    if found is None:
        raise UnknownNameError("architecture", name, list_architectures())
    return found


def create_model(spec: ModelSpec, *, load_weights: bool = True) -> nn.Module:
    """Build the model ``spec`` describes, in training mode.

    ``forward(x)`` with x (B, in_channels, H, W), H and W multiples of
    ``model_stride(spec)``, returns logits (B, classes, H, W); with
    ``spec.aux`` the aux logits of the last forward are in ``model.last_aux``
    ((B, classes) presence, or (B, classes, H, W) segmentation in training
    mode only). ``load_weights=False`` ignores ``spec.encoder_weights``
    (when trained weights will be loaded over it anyway, e.g. from a
    checkpoint). The report of a weights file (loaded / missing /
    unexpected keys) is in ``model.encoder_weights_report`` (None without one).
    """
    arch = resolve(spec.arch)
    if spec.arch != arch.name:
        spec = dataclasses.replace(spec, arch=arch.name)
    model = arch.build(spec, load_weights)
    model.spec = spec
    if not hasattr(model, "encoder_weights_report"):
        model.encoder_weights_report = None
    return model


def list_architectures() -> list[str]:
    """Registered architecture names: smp's, then the project's own."""
    return list(ARCHITECTURES)


def list_encoders(include_timm: bool = False) -> list[str]:
    """smp encoder names; with ``include_timm`` also every ``tu-<timm model>`` (over a thousand)."""
    names = smp_models.smp_encoder_names()
    if include_timm:
        names += ["tu-" + n for n in sorted(smp_models._timm_names())]
    return names


def model_stride(spec: ModelSpec) -> int:
    """What H and W of the input must be multiples of (own U-Nets: 2 ** depth; smp: the encoder's output stride)."""
    arch = resolve(spec.arch)
    return arch.stride(spec)
