"""ONNX export of a checkpoint: onnxruntime matches PyTorch, and the pre/post-processing travels along."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch
from _onnx_fixtures import TINY as TINY_WIDTHS

from medseg.cli.main import main
from medseg.datasets.classmap import ClassMap
from medseg.errors import OnnxExportError
from medseg.models import create_model, export_onnx, list_architectures, load_checkpoint, model_stride, save_checkpoint
from medseg.models.onnx_export import BinPooling, _quiet_exporter, onnx_session, read_onnx_metadata
from medseg.models.onnx_vit import aa_bicubic_weights
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


# every registered architecture but DPT (its own tests below: dynamic sizes need its native grid first)
TINY = {arch: widths for arch, widths in TINY_WIDTHS.items() if arch != "DPT"}


def test_every_architecture_is_covered():
    assert set(list_architectures()) == {*TINY, "DPT"}


@pytest.mark.parametrize("arch", sorted(TINY))
def test_every_architecture_exports_with_dynamic_height_and_width(arch, tmp_path):
    """PSPNet and UPerNet included: their pyramid pooling becomes BinPooling in the exported copy."""
    torch.set_num_threads(1)
    encoder, kwargs = TINY[arch]
    spec = ModelSpec(arch, encoder, in_channels=3, classes=2, task="multilabel", kwargs=kwargs)
    stride = model_stride(spec)
    sizes = [(128, 160), (192, 128)] if arch == "PAN" else [(2 * stride, 3 * stride), (5 * stride, 2 * stride)]
    pre = Preprocessing(divisible_by=stride, input_size=[128, 128] if arch == "PAN" else None)  # PAN pools to 1/64
    torch.manual_seed(0)
    path = save_checkpoint(
        tmp_path / arch, create_model(spec).eval(), spec, ClassMap.from_names(["a", "b"], task="multilabel"), pre
    )
    ck = load_checkpoint(path)
    out = export_onnx(ck, tmp_path / f"{arch}.onnx")
    assert onnx_session(out).get_inputs()[0].shape == ["batch", 3, "height", "width"]
    for h, w in sizes:
        assert _max_diff(ck, out, (1, 3, h, w)) <= 1e-4, (arch, h, w)
    assert not any(isinstance(m, BinPooling) for m in ck.model.modules())  # only the exported copy changed


def test_bin_pooling_is_adaptive_average_pooling():
    x = torch.randn(2, 3, 13, 7, generator=torch.Generator().manual_seed(1))
    for size in (1, 2, 3, 6, (4, 5)):
        assert torch.allclose(BinPooling(size)(x), torch.nn.AdaptiveAvgPool2d(size)(x), atol=1e-6)


def test_aa_bicubic_weights_are_torchs_antialiased_bicubic():
    """Shrinking and enlarging alike; the plain bicubic (another kernel, clamped borders) is not it."""
    p = torch.randn(1, 4, 10, 14, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for out_hw in [(6, 8), (5, 21), (14, 16), (23, 9), (10, 14)]:
        ref = torch.nn.functional.interpolate(p, size=out_hw, mode="bicubic", antialias=True)
        rows = aa_bicubic_weights(10, torch.tensor(out_hw[0]), p)
        cols = aa_bicubic_weights(14, torch.tensor(out_hw[1]), p)
        assert torch.allclose(torch.einsum("ih,nchw,jw->ncij", rows, p, cols), ref, rtol=0, atol=1e-12), out_hw
    plain, aa = (torch.nn.functional.interpolate(p, size=(14, 16), mode="bicubic", antialias=a) for a in (False, True))
    assert (plain - aa).abs().max() > 0.01


def _tiny_dpt(tmp_path, **kwargs):
    # timm's test_vit (10 x 10 patches of 16 at its native 160 x 160) under a narrow DPT decoder
    spec = ModelSpec(
        "DPT",
        "tu-test_vit",
        in_channels=3,
        classes=1,
        task="binary",
        kwargs={"decoder_intermediate_channels": [8, 16, 16, 16], "decoder_fusion_channels": 16, **kwargs},
    )
    torch.manual_seed(0)
    model = create_model(spec).eval()
    with torch.no_grad():  # a trained ViT's position embedding is as large as its patch tokens; init's is 0.02
        model.encoder.model.pos_embed.mul_(50)
        # logits of a few units, not tens: 1e-4 then leaves a 10x margin over float rounding
        last = [m for m in model.segmentation_head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(0.1), last.bias.mul_(0.1)
    pre = Preprocessing(divisible_by=model_stride(spec), input_size=[160, 160])
    return load_checkpoint(save_checkpoint(tmp_path / "dpt", model, spec, ClassMap.binary(), pre))


def test_dpt_exports_with_dynamic_height_and_width(tmp_path):
    """Traced at the native grid, where timm skips the resampling; exact on a smaller and a larger grid."""
    torch.set_num_threads(1)
    ck = _tiny_dpt(tmp_path)
    vit = ck.model.encoder.model
    out = export_onnx(ck, tmp_path / "out" / "dpt.onnx")
    assert onnx_session(out).get_inputs()[0].shape == ["batch", 3, "height", "width"]
    for h, w in [(96, 128), (224, 256)]:  # 6 x 8 and 14 x 16 patches
        assert _max_diff(ck, out, (1, 3, h, w)) <= 1e-4, (h, w)
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():  # the position embedding weighs in: a wrong resampling would show
            ref = ck.model(x)
            saved = vit.pos_embed.clone()
            vit.pos_embed.zero_()
            assert (ck.model(x) - ref).abs().max() > 0.1
            vit.pos_embed.copy_(saved)
    assert _max_diff(ck, out, (2, 3, 160, 160)) <= 1e-4
    assert "_pos_embed" not in vars(vit)  # only the exported copy changed
    fixed = export_onnx(ck, tmp_path / "out" / "fixed.onnx", dynamic_hw=False, input_hw=(96, 128))
    assert _max_diff(ck, fixed, (1, 3, 96, 128)) <= 1e-4


def test_dpt_with_a_native_size_only_encoder_is_refused_dynamic(tmp_path):
    ck = _tiny_dpt(tmp_path, dynamic_img_size=False)
    with pytest.raises(OnnxExportError, match="DPT .* with dynamic height/width: .*dynamic_img_size=False"):
        export_onnx(ck, tmp_path / "out" / "dynamic.onnx")
    assert not (tmp_path / "out" / "dynamic.onnx").exists()


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


def test_a_failed_export_does_not_print_the_traced_graph(tmp_path, capfd):
    class Antialiased(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=0.5, mode="bicubic", antialias=True)

    with pytest.raises(Exception, match="_upsample_bicubic2d_aa"):
        with _quiet_exporter():
            torch.onnx.export(Antialiased(), (torch.randn(1, 1, 8, 8),), str(tmp_path / "x.onnx"), dynamo=False)
    err = capfd.readouterr()
    assert "Torch IR graph" not in err.out + err.err


def test_cli_export_onnx_prints_a_short_summary(unet_export, tmp_path, capsys):
    ck, _ = unet_export
    out, js = tmp_path / "cli.onnx", tmp_path / "summary.json"
    assert main(["export-onnx", str(ck.path), "--out", str(out), "--opset", "17", "--json", str(js)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 12
    assert "input:  image float32 [batch, 3, height, width]" in lines[1]
    assert "output: logits float32 [batch, 3, height, width]" in lines[2]
    summary = json.loads(js.read_text())
    proto = onnx.load(str(out))
    assert summary["nodes"] == len(proto.graph.node) and sum(summary["ops"].values()) == len(proto.graph.node)
    assert summary["ops"]["Conv"] == sum(n.op_type == "Conv" for n in proto.graph.node)
    assert summary["size_bytes"] == out.stat().st_size and summary["opset"]["ai.onnx"] == 17
    assert summary["parameters"] == sum(int(np.prod(i.dims)) for i in proto.graph.initializer) > 0
    assert "medseg.preprocessing" in summary["metadata_keys"] and summary["model"]["arch"] == "Unet"
    assert _max_diff(ck, out, (1, 3, 96, 64)) <= 1e-4
    # fixed size; a refused one exits 2 with one line
    assert main(["export-onnx", str(ck.path), "--out", str(tmp_path / "f.onnx"), "--fixed-size", "64x96"]) == 0
    assert "[batch, 3, 64, 96]" in capsys.readouterr().out
    assert main(["export-onnx", str(ck.path), "--out", str(tmp_path / "g.onnx"), "--fixed-size", "50x64"]) == 2
    assert "not divisible by the model's stride 32" in capsys.readouterr().err
    assert main(["export-onnx", str(tmp_path / "missing.medseg")]) == 2
    assert "missing.medseg" in capsys.readouterr().err
