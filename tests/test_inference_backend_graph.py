"""The exported graph's rewrite for onnxruntime: a convolution of a channel concatenation becomes a sum of
convolutions of the parts (same outputs to float rounding), only where onnxruntime's blocked layout takes every
part; the ONNX cache applies it, and a failed rewrite keeps the export as it was."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _onnx_fixtures import onnx_cache_in_tmp, tiny_checkpoint  # noqa: F401  (the fixture)
from onnx import TensorProto, helper, numpy_helper

from medseg.inference import Predictor, onnx_graph
from medseg.inference.members import Member
from medseg.inference.onnx_cache import cached_onnx
from medseg.models import load_checkpoint, model_stride
from medseg.models.onnx_export import write_onnx

pytestmark = pytest.mark.usefixtures("onnx_cache_in_tmp")


def _concat_conv_model(parts: list[int], extra_use: bool = False, out_channels: int = 16) -> onnx.ModelProto:
    """Inputs x0.. (1, parts[i], 8, 8) -> Relu each -> Concat(axis 1) -> Conv 3x3 (+ bias) -> Relu."""
    rng = np.random.default_rng(0)
    nodes, inputs = [], []
    for i, c in enumerate(parts):
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, c, 8, 8]))
        nodes.append(helper.make_node("Relu", [f"x{i}"], [f"r{i}"]))
    nodes.append(helper.make_node("Concat", [f"r{i}" for i in range(len(parts))], ["cat"], axis=1))
    nodes.append(helper.make_node("Conv", ["cat", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["conv"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, 8, 8])]
    if extra_use:
        outputs.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, [1, sum(parts), 8, 8]))
    weights = [
        numpy_helper.from_array(rng.normal(size=(out_channels, sum(parts), 3, 3)).astype(np.float32) * 0.1, "w"),
        numpy_helper.from_array(rng.normal(size=out_channels).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("parts", [[32, 16], [16, 48, 32]])
def test_a_convolution_of_a_concatenation_becomes_a_sum_of_convolutions(parts):
    model = _concat_conv_model(parts)
    rng = np.random.default_rng(1)
    feed = {f"x{i}": rng.normal(size=(1, c, 8, 8)).astype(np.float32) for i, c in enumerate(parts)}
    (before,) = _run(model, feed)
    assert onnx_graph.split_concat_convs(model) == 1
    onnx.checker.check_model(model)
    assert "Concat" not in _ops(model)
    assert _ops(model).count("Conv") == len(parts) and _ops(model).count("Add") == len(parts) - 1
    assert {t.name for t in model.graph.initializer} == {"b", *(f"w.part{k}" for k in range(len(parts)))}
    (after,) = _run(model, feed)
    assert float(np.abs(after - before).max()) <= 1e-5 * max(1.0, float(np.abs(before).max()))


def test_concatenations_the_rewrite_would_not_speed_up_stay():
    unblocked = _concat_conv_model([16, 8])  # a part off onnxruntime's 16-channel block
    also_an_output = _concat_conv_model([16, 16], extra_use=True)  # the concatenation is needed anyway
    for model in (unblocked, also_an_output):
        ops = _ops(model)
        assert onnx_graph.split_concat_convs(model) == 0 and _ops(model) == ops


def test_the_cache_rewrites_the_export_and_the_predictor_still_equals_the_eager_model(tmp_path):
    """A tiny Unet whose first decoder concatenations have blocked parts (its last has 8 channels: kept)."""
    torch.set_num_threads(1)
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "Unet", "binary"))
    member = Member(ck.model, ck.spec, ck.classmap, ck.preprocessing, "tiny", checkpoint=True)
    path = cached_onnx(member)
    write_onnx(ck, tmp_path / "plain.onnx")
    rewritten, plain = onnx.load(str(path)), onnx.load(str(tmp_path / "plain.onnx"))
    meta = {p.key: p.value for p in rewritten.metadata_props}
    n = int(meta["medseg.split_concats"])
    assert n >= 1 and _ops(rewritten).count("Concat") == _ops(plain).count("Concat") - n
    assert "Concat" in _ops(rewritten)  # the unblocked one stayed
    stride = model_stride(ck.spec)
    pred = Predictor(ck, device="cpu")
    for hw in [(2 * stride, 3 * stride), (4 * stride, 2 * stride)]:
        x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(hw[0]))
        with torch.no_grad():
            ref = ck.model(x)
        for _ in range(2):  # the general session, then the one fixed to the shape
            assert float((pred._backends[0](x) - ref).abs().max()) <= 1e-4


def test_a_failed_rewrite_keeps_the_export(tmp_path, monkeypatch, caplog):
    def broken(model):
        raise ValueError("a graph this rewrite does not understand")

    monkeypatch.setattr(onnx_graph, "split_concat_convs", broken)
    torch.set_num_threads(1)
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "Unet", "binary"))
    with caplog.at_level(logging.WARNING):
        pred = Predictor(ck, device="cpu")
    assert pred.backends == ["onnxruntime"]
    assert "unrewritten: ValueError: a graph this rewrite does not understand" in caplog.text
    (path,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    assert "medseg.split_concats" not in {p.key for p in onnx.load(str(path)).metadata_props}
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float((pred._backends[0](x) - ck.model(x)).abs().max()) <= 1e-4
