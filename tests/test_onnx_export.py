"""ONNX export of a checkpoint: onnxruntime matches PyTorch, and the pre/post-processing travels along."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from medseg.datasets.classmap import ClassMap
from medseg.errors import OnnxExportError
from medseg.models import create_model, export_onnx, load_checkpoint, save_checkpoint
from medseg.models.onnx_export import onnx_session, read_onnx_metadata
from medseg.models.spec import ModelSpec, Preprocessing

UNET = ModelSpec(
    "Unet",
    "resnet18",
    in_channels=3,
    classes=3,
    task="multiclass",
    kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
)
PLAIN = ModelSpec("PlainUNet", "none", in_channels=1, classes=1, task="binary", kwargs={"depth": 2, "base_channels": 8})
CLASSMAPS = {"multiclass": ClassMap.from_names(["polyp", "tool"]), "binary": ClassMap.binary("lung")}


def _checkpoint(tmp_path_factory, spec: ModelSpec):
    torch.manual_seed(0)
    model = create_model(spec).train()
    with torch.no_grad():  # move the BatchNorm statistics away from their defaults
        model(torch.randn(2, spec.in_channels, 32, 32) * 2 + 1)
    pre = Preprocessing(
        channels=spec.in_channels,
        window=[40, 400],
        mean=[0.5] * spec.in_channels,
        std=[0.2] * spec.in_channels,
        divisible_by=32,
    )
    return save_checkpoint(tmp_path_factory.mktemp("ck") / spec.arch, model.eval(), spec, CLASSMAPS[spec.task], pre)


@pytest.fixture(scope="module")
def unet_export(tmp_path_factory):
    path = _checkpoint(tmp_path_factory, UNET)
    return load_checkpoint(path), export_onnx(str(path), path.parent / "unet.onnx")


def _max_diff(ck, onnx_path, shape) -> float:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        ref = ck.model(x).numpy()
    got = onnx_session(onnx_path).run(["logits"], {"image": x.numpy()})[0]
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max())


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 96, 128)])
def test_onnxruntime_matches_pytorch_at_several_sizes(unet_export, shape):
    ck, onnx_path = unet_export
    assert _max_diff(ck, onnx_path, shape) <= 1e-4


def test_metadata_carries_pre_and_post_processing(unet_export):
    ck, onnx_path = unet_export
    meta = read_onnx_metadata(onnx_path)
    assert meta["format"] == "medseg-onnx"
    assert meta["spec"] == ck.spec.to_dict()
    assert meta["classmap"] == ck.classmap.to_dict()
    assert meta["preprocessing"] == ck.preprocessing.to_dict()
    assert meta["postprocessing"]["activation"].startswith("softmax")
    assert meta["weights_sha256"] == ck.config["weights"]["sha256"]
    assert meta["io"]["dynamic_hw"] is True and meta["io"]["input"] == "image"


def test_own_architecture_exports_binary_sigmoid(tmp_path_factory):
    path = _checkpoint(tmp_path_factory, PLAIN)
    ck = load_checkpoint(path)
    out = export_onnx(ck, path.parent / "plain.onnx")
    for shape in [(1, 1, 64, 64), (1, 1, 96, 128)]:
        assert _max_diff(ck, out, shape) <= 1e-4
    assert read_onnx_metadata(out)["postprocessing"]["activation"] == "sigmoid"


def test_fixed_size_export(unet_export, tmp_path):
    ck, _ = unet_export
    out = export_onnx(ck, tmp_path / "fixed.onnx", dynamic_hw=False, input_hw=(64, 96))
    assert onnx_session(out).get_inputs()[0].shape == ["batch", 3, 64, 96]
    assert _max_diff(ck, out, (1, 3, 64, 96)) <= 1e-4
    with pytest.raises(Exception, match="(?i)dimensions|shape"):  # onnxruntime's InvalidArgument
        _max_diff(ck, out, (1, 3, 64, 64))
    with pytest.raises(ValueError, match="not divisible by the model's stride 32"):
        export_onnx(ck, tmp_path / "bad.onnx", input_hw=(50, 64))
    assert not (tmp_path / "bad.onnx").exists()


def test_adaptive_pooling_needs_a_fixed_size(tmp_path_factory, tmp_path):
    spec = ModelSpec("PSPNet", "mobilenet_v2", in_channels=3, classes=1, task="binary")
    ck = load_checkpoint(_checkpoint(tmp_path_factory, spec))
    with pytest.raises(OnnxExportError, match="PSPNet .* with dynamic height/width.*dynamic_hw=False"):
        export_onnx(ck, tmp_path / "psp.onnx", input_hw=(96, 96))
    assert list(tmp_path.iterdir()) == []  # no partial file left
    out = export_onnx(ck, tmp_path / "psp.onnx", dynamic_hw=False, input_hw=(96, 96))
    assert _max_diff(ck, out, (1, 3, 96, 96)) <= 1e-4


def test_export_does_not_touch_the_callers_model(unet_export, tmp_path):
    ck, _ = unet_export
    ck.model.train()
    try:
        export_onnx(ck, tmp_path / "m.onnx")
        assert ck.model.training
    finally:
        ck.model.eval()


def test_missing_runtime_gives_a_clear_error(unet_export, monkeypatch, tmp_path):
    _, onnx_path = unet_export
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="onnxruntime is needed to run ONNX models.*pip install onnxruntime"):
        onnx_session(onnx_path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx"):
        export_onnx(unet_export[0], tmp_path / "x.onnx")
