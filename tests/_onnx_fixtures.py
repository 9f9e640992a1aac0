"""Tiny checkpoints of every registered architecture for the ONNX export and onnxruntime backend tests, and the
per-test ONNX cache folder those tests write into."""

from __future__ import annotations

import pytest
import torch

from medseg.datasets.classmap import ClassMap
from medseg.inference import onnx_cache
from medseg.models import create_model, model_stride, save_checkpoint
from medseg.models.spec import ModelSpec, Preprocessing

# tiny widths of every registered architecture (DPT on timm's test_vit): (encoder, kwargs)
TINY = {
    "Unet": ("resnet18", {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}),
    "UnetPlusPlus": ("resnet18", {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}),
    "MAnet": ("resnet18", {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}),
    "Linknet": ("resnet18", {"encoder_depth": 3}),
    "FPN": ("resnet18", {"encoder_depth": 3, "decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}),
    "PSPNet": ("resnet18", {"psp_out_channels": 16}),
    "DeepLabV3": ("resnet18", {"decoder_channels": 16}),
    "DeepLabV3Plus": ("resnet18", {"decoder_channels": 16}),
    "PAN": ("resnet18", {"decoder_channels": 16}),
    "UPerNet": ("resnet18", {"decoder_channels": 16}),
    "Segformer": ("resnet18", {"decoder_segmentation_channels": 16}),
    "ResAttUNet": ("none", {"depth": 2, "base_channels": 4}),
    "DilatedUNet": ("none", {"depth": 2, "base_channels": 4}),
    "PlainUNet": ("none", {"depth": 2, "base_channels": 4}),
    "DPT": ("tu-test_vit", {"decoder_intermediate_channels": [8, 16, 16, 16], "decoder_fusion_channels": 16}),
}


@pytest.fixture()
def onnx_cache_in_tmp(tmp_path, monkeypatch):
    """The ONNX cache in the test's own folder, with the default size and age limits."""
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    for env in (onnx_cache.MAX_MB_ENV, onnx_cache.MAX_DAYS_ENV):
        monkeypatch.delenv(env, raising=False)


def trained_like(model: torch.nn.Module, in_channels: int, side: int) -> torch.nn.Module:
    with torch.no_grad():  # BatchNorm statistics away from their defaults, as in a trained model
        model.train()(torch.randn(2, in_channels, side, side) * 2 + 1)
    return model.eval()


def tiny_checkpoint(tmp_path, arch: str = "Unet", task: str = "binary", seed: int = 0, in_channels: int = 3):
    """A saved checkpoint of ``arch`` at its TINY width, BatchNorm statistics as if trained."""
    encoder, kwargs = TINY[arch]
    classmap = ClassMap.binary() if task == "binary" else ClassMap.from_names(["a", "b"], task=task)
    spec = ModelSpec(arch, encoder, in_channels=in_channels, classes=classmap.num_classes, task=task, kwargs=kwargs)
    torch.manual_seed(seed)
    model = create_model(spec)
    if arch != "DPT":  # timm's ViT has LayerNorm only
        model = trained_like(model, in_channels, 128 if arch == "PAN" else 64)  # PAN pools to 1/64
    else:
        model.eval()
    stride = model_stride(spec)
    size = {"DPT": [160, 160], "PAN": [128, 128]}.get(arch)
    pre = Preprocessing(channels=in_channels, divisible_by=stride, input_size=size, mean=[0.4] * in_channels)
    return save_checkpoint(tmp_path / f"{arch}-{task}-{seed}", model, spec, classmap, pre)
