"""segmentation_models_pytorch architectures, built by smp itself, returning logits and keeping aux logits aside.

Any smp encoder name works, and ``tu-<timm model>[.<pretrained tag>]`` for
timm backbones. The built model is an instance of a thin subclass of the
smp class (``isinstance(m, smp.Unet)`` holds and its state dict keys are
smp's own), whose ``forward`` returns only the mask logits and leaves the
aux logits in ``model.last_aux``: smp's ``aux_params`` classifier
(``ModelSpec.aux`` "presence"), or in training mode the
``SegmentationAuxHead`` (``aux`` "segmentation", state dict keys
``aux_segmentation.*``) on the encoder's second deepest stage, read by a
forward hook so that smp's own ``forward`` runs unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from medseg.errors import UnknownNameError, WeightsUnavailableError
from medseg.models import weights as wts
from medseg.models.aux_head import SegmentationAuxHead
from medseg.models.spec import ModelSpec

# smp's own mapping, under the classes' names (smp.create_model looks them up lower-cased)
SMP_ARCHITECTURES: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}
_DECODER_CHANNELS = (256, 128, 64, 32, 16)  # smp's default for Unet, UnetPlusPlus and MAnet at depth 5


class _LogitsOnly:
    """Mixin over an smp model: ``forward`` returns the masks, aux logits go to ``last_aux``."""

    last_aux: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self._modules.get("aux_segmentation")  # type: ignore[attr-defined]
        if head is not None and self.training:  # type: ignore[attr-defined]
            stages: list[Any] = []
            hook = self.encoder.register_forward_hook(lambda _m, _i, out: stages.append(out))  # type: ignore[attr-defined]
            try:
                out = super().forward(x)  # type: ignore[misc]
            finally:
                hook.remove()
            self.last_aux = head.logits(stages[0][-2], tuple(x.shape[-2:]))
            return out
        out = super().forward(x)  # type: ignore[misc]
        if isinstance(out, tuple):
            self.last_aux = out[1]
            return out[0]
        self.last_aux = None
        return out


@functools.cache
def _logits_class(cls: type[nn.Module]) -> type[nn.Module]:
    sub = type(cls.__name__, (_LogitsOnly, cls), {"__module__": __name__, "__doc__": cls.__doc__})
    globals()[cls.__name__] = sub  # so that pickle finds the class by its name
    return sub


@functools.cache
def _timm_names() -> frozenset[str]:
    return frozenset(timm.list_models())


def smp_encoder_names() -> list[str]:
    return list(smp.encoders.get_encoder_names())


def validate_encoder(encoder: str) -> None:
    """Raise ``UnknownNameError`` unless ``encoder`` is an smp encoder or ``tu-`` + a timm model (and tag)."""
    if encoder.startswith("tu-"):
        base, _, tag = encoder[3:].partition(".")
        if base not in _timm_names():
            raise UnknownNameError(
                "timm encoder",
                encoder,
                ["tu-" + n for n in sorted(_timm_names())],
                hint="Any name of timm.list_models() prefixed with 'tu-' works.",
            )
        if tag:
            tags = timm.list_pretrained(f"{base}.*")
            if encoder[3:] not in tags:
                raise UnknownNameError("timm pretrained tag", encoder, ["tu-" + t for t in tags] or ["tu-" + base])
        return
    names = smp_encoder_names()
    if encoder not in names:
        raise UnknownNameError(
            "encoder", encoder, names, hint="timm backbones work as 'tu-<name>' (e.g. 'tu-convnext_tiny')."
        )


def _smp_kwargs(spec: ModelSpec, cls: type[nn.Module]) -> dict[str, Any]:
    kw = dict(spec.kwargs)
    if kw.pop("activation", None) is not None:
        raise ValueError(
            f"{cls.__name__}: models output logits; the task ({spec.task}) applies "
            "sigmoid/softmax downstream, so leave 'activation' out of kwargs"
        )
    aux_pooling, aux_dropout = kw.pop("aux_pooling", "avg"), kw.pop("aux_dropout", None)
    if spec.aux_head == "presence":
        kw["aux_params"] = {"classes": spec.classes, "pooling": aux_pooling, "dropout": aux_dropout}
    name = cls.__name__
    depth = kw.get("encoder_depth")
    if name in ("Unet", "UnetPlusPlus", "MAnet") and depth is not None and "decoder_channels" not in kw:
        kw["decoder_channels"] = _DECODER_CHANNELS[-int(depth) :]  # smp wants one width per encoder stage
    # smp's FPN/PSPNet final upsampling assume their default depth; keep the output at input size
    if name == "FPN" and depth is not None and "upsampling" not in kw:
        kw["upsampling"] = 2 ** (int(depth) - 3)
    if name == "PSPNet" and depth is not None and "upsampling" not in kw:
        kw["upsampling"] = 2 ** int(depth)
    if name == "DPT":
        kw.setdefault("dynamic_img_size", True)  # ViTs then take any multiple of the stride, not only 224
    return kw


def _build(cls: type[nn.Module], spec: ModelSpec, encoder_weights: Any, kw: dict[str, Any]) -> nn.Module:
    try:
        model = _logits_class(cls)(
            encoder_name=spec.encoder,
            encoder_weights=encoder_weights,
            in_channels=spec.in_channels,
            classes=spec.classes,
            **kw,
        )
        if spec.aux_head == "segmentation":
            stages = list(model.encoder.out_channels)
            if len(stages) < 3:
                raise ValueError(f"aux 'segmentation' needs an encoder of depth >= 2, this one has {stages}")
            model.aux_segmentation = SegmentationAuxHead(int(stages[-2]), spec.classes)
        return model
    except WeightsUnavailableError:
        raise
    except (TypeError, ValueError, KeyError, RuntimeError, AssertionError) as e:
        raise ValueError(
            f"cannot build {cls.__name__}(encoder={spec.encoder!r}, kwargs={spec.kwargs}): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e


def _timm_hub_check(encoder: str, weights: str) -> None:
    name = encoder[3:]
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        variants = ", ".join(timm.list_pretrained(name + "*")[:10]) or "none"
        raise WeightsUnavailableError(
            encoder, weights, f"timm has no pretrained weights for {name!r} (pretrained variants: {variants})"
        )
    if cfg.hf_hub_id and any(wts.cached_hub_file(cfg.hf_hub_id, f) for f in ("model.safetensors", "pytorch_model.bin")):
        return
    reason = wts.hub_offline_reason()
    if reason:
        raise WeightsUnavailableError(
            encoder, weights, f"{reason} and timm's {cfg.hf_hub_id or cfg.url} is not in the local cache"
        )


def build_smp(cls: type[nn.Module], spec: ModelSpec, load_weights: bool = True) -> nn.Module:
    """An smp ``cls`` for ``spec``; encoder weights local, cached or downloaded as ``spec.encoder_weights`` says.

    The weights report of a local/hub file is left in ``model.encoder_weights_report``.
    """
    validate_encoder(spec.encoder)
    kw = _smp_kwargs(spec, cls)
    weights = spec.encoder_weights if load_weights else None
    if weights is None or wts.is_local(weights):
        model = _build(cls, spec, None, kw)
        if weights is not None:
            model.encoder_weights_report = wts.load_encoder_weights(model.encoder, weights)
        return model
    if spec.encoder.startswith("tu-"):  # timm picks and adapts its own pretrained files; the tag is in the name
        _timm_hub_check(spec.encoder, weights)
        try:
            return _build(cls, spec, True, kw)
        except Exception as e:  # noqa: BLE001 - HTTP, SSL, timeouts, a damaged cache: the same advice helps
            detail = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            raise WeightsUnavailableError(spec.encoder, weights, f"timm could not load them ({detail})") from None
    settings = smp.encoders.encoders[spec.encoder]["pretrained_settings"]
    if weights not in settings:
        raise UnknownNameError(
            f"{spec.encoder} weights name", weights, list(settings), hint="Or give a local file or folder path."
        )
    file = wts.fetch_hub_file(
        settings[weights]["repo_id"],
        "model.safetensors",
        settings[weights]["revision"],
        encoder=spec.encoder,
        weights=weights,
    )
    model = _build(cls, spec, None, kw)
    model.encoder_weights_report = wts.load_encoder_weights(model.encoder, file)
    return model


def smp_stride(cls: type[nn.Module], spec: ModelSpec) -> int:
    """The side length H and W must be multiples of; built on the meta device (no memory, no weights)."""
    validate_encoder(spec.encoder)
    with torch.device("meta"):
        model = _build(cls, spec, None, _smp_kwargs(spec, cls))
    stride = int(model.encoder.output_stride)
    # DPT's decoder also resamples the last token map by 1/2, so inputs must be multiples of 2 patches
    return 2 * stride if cls.__name__ == "DPT" else stride
