"""The Predictor's onnxruntime backend: parity with the eager model on every registered architecture, the ONNX
cache (once per model, damaged files exported again), and the fallback to PyTorch with a logged reason."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
from _onnx_fixtures import TINY, onnx_cache_in_tmp, tiny_checkpoint  # noqa: F401  (the fixture)

from medseg.cli.main import main
from medseg.errors import InferenceError, OnnxExportError
from medseg.inference import Predictor, backend
from medseg.inference.members import Member
from medseg.inference.onnx_cache import cache_dir, cached_onnx
from medseg.inference.outputs import activation
from medseg.models import list_architectures, load_checkpoint, model_stride, onnx_export
from medseg.models.spec import ModelSpec

pytestmark = pytest.mark.usefixtures("onnx_cache_in_tmp")


def test_every_architecture_is_covered():
    assert set(list_architectures()) == set(TINY)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_onnxruntime_backend_equals_the_eager_model(arch, tmp_path):
    """Through the Predictor's one forward (forward_tiles): logits and probabilities within 1e-4."""
    torch.set_num_threads(1)
    task = "multiclass" if arch in ("Unet", "PSPNet", "Segformer") else "binary"
    ck = load_checkpoint(tiny_checkpoint(tmp_path, arch, task))
    pred = Predictor(ck, device="cpu")
    assert pred.backends == ["onnxruntime"]
    # eval-mode export folds every BatchNorm into its convolution; Linknet's after a transposed one stays
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in ck.model.modules())
    assert pred.folded == [has_bn and arch != "Linknet"]
    stride = model_stride(ck.spec)
    hw = {"DPT": (96, 128), "PAN": (128, 192)}.get(arch, (3 * stride, 2 * stride))
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = ck.model(x)
    run = pred._backends[0]
    got_logits = run(x)  # a shape seen first: the general session
    assert got_logits.shape == logits.shape and not run._shaped
    assert float((got_logits - logits).abs().max()) <= 1e-4 * max(1.0, float(logits.abs().max()))
    probs = pred.forward_tiles(x)  # seen again: a session fixed to this shape (its graph optimised further)
    assert list(run._shaped) == [(1, tuple(x.shape))]
    assert float((probs - activation(logits, task)).abs().max()) <= 1e-4


def _counted_sessions(monkeypatch, fail_shaped: bool = False) -> list:
    """make_session that records the shape each session is fixed to (None: the general one)."""
    made, real = [], backend.make_session

    def counted(path, threads, dims=None):
        made.append(None if dims is None else (dims["batch"], dims["height"], dims["width"]))
        if dims is not None and fail_shaped:
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : a dimension override it refused")
        return real(path, threads, dims)

    monkeypatch.setattr(backend, "make_session", counted)
    return made


def test_a_shape_seen_twice_gets_its_own_session_and_shapes_taking_turns_do_not_rebuild(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    made = _counted_sessions(monkeypatch)
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "PlainUNet"))
    run = Predictor(ck, device="cpu")._backends[0]
    assert made == [None]  # the general session, built with the backend
    shapes = {"a": (1, 32, 32), "b": (2, 32, 48), "c": (1, 64, 32)}
    order = "aaabbccaaccb"
    for i, which in enumerate(order):
        n, h, w = shapes[which]
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            assert float((run(x) - ck.model(x)).abs().max()) <= 1e-4, (i, which)
    # a and b on their second forward; c's took a's place (least recently used), and a runs in the general
    # session from then on instead of taking a place back: no session is built twice
    assert made == [None, (1, 32, 32), (2, 32, 48), (1, 64, 32)]
    assert [key[1][2:] for key in run._shaped] == [(64, 32), (32, 48)]


def test_a_shape_onnxruntime_cannot_fix_runs_in_the_general_session(tmp_path, monkeypatch, caplog):
    torch.set_num_threads(1)
    made = _counted_sessions(monkeypatch, fail_shaped=True)
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "PlainUNet"))
    pred = Predictor(ck, device="cpu")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.WARNING), torch.no_grad():
        for _ in range(4):
            assert float((pred._backends[0](x) - ck.model(x)).abs().max()) <= 1e-4
    assert made == [None, (1, 32, 32)]  # tried once
    (message,) = [r.getMessage() for r in caplog.records if r.name == "medseg.inference.backend"]
    assert "could not fix" in message and "(1, 3, 32, 32)" in message and "INVALID_ARGUMENT" in message


def test_tta_ensemble_and_sliding_window_go_through_onnxruntime(tmp_path):
    torch.set_num_threads(1)
    paths = [tiny_checkpoint(tmp_path, "PlainUNet", "multilabel", seed=s) for s in (0, 1)]
    options = {"device": "cpu", "tta": "hflip,rot90", "tile_size": 64, "overlap": 0.25, "batch_size": 3}
    onnx_pred = Predictor([str(p) for p in paths], **options)
    torch_pred = Predictor([str(p) for p in paths], backend="torch", **options)
    assert onnx_pred.backends == ["onnxruntime"] * 2 and torch_pred.backends == ["torch"] * 2
    image = (np.random.default_rng(3).random((150, 170, 3)) * 255).astype(np.uint8)
    a, b = onnx_pred.predict(image), torch_pred.predict(image)
    assert a.meta["tiles"] > 1 and a.meta["members"] == 6 and a.meta["backend"] == "onnxruntime"
    assert b.meta["backend"] == "torch"
    assert float(np.abs(a.probs - b.probs).max()) <= 1e-4
    assert float(np.abs(a.variance - b.variance).max()) <= 1e-4


def test_onnx_file_is_exported_once_per_model_and_reused(tmp_path, monkeypatch):
    calls = []
    real = onnx_export.write_onnx
    monkeypatch.setattr(onnx_export, "write_onnx", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tiny_checkpoint(tmp_path, "PlainUNet")
    Predictor(str(path), device="cpu")
    Predictor(str(path), device="cpu")
    assert len(calls) == 1
    files = list(cache_dir().glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith("PlainUNet-")
    ck = load_checkpoint(path)
    with torch.no_grad():  # other weights, another file
        next(ck.model.parameters()).add_(0.5)
    Predictor(ck, device="cpu")
    assert len(calls) == 2 and len(list(cache_dir().glob("*.onnx"))) == 2
    assert not list(cache_dir().glob(".*"))  # no temporary file left


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_cache_file_is_exported_again(tmp_path, caplog, damage):
    path = tiny_checkpoint(tmp_path, "PlainUNet")
    Predictor(str(path), device="cpu")
    (cached,) = cache_dir().glob("*.onnx")
    data = bytearray(cached.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # a weight's bytes changed: the file still loads, and would run with wrong weights
        data[-100] ^= 0xFF
    cached.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        pred = Predictor(str(path), device="cpu")
    assert pred.backends == ["onnxruntime"]
    assert "damaged ONNX cache file" in caplog.text and str(cached) in caplog.text
    (again,) = cache_dir().glob("*.onnx")
    assert again.read_bytes() != bytes(data)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    ref = Predictor(str(path), device="cpu", backend="torch").predict(image)
    assert float(np.abs(pred.predict(image).probs - ref.probs).max()) <= 1e-4


def _falls_back(tmp_path, caplog, reason: str) -> None:
    path = tiny_checkpoint(tmp_path, "PlainUNet")
    with caplog.at_level(logging.WARNING):
        pred = Predictor(str(path), device="cpu")
    assert pred.backends == ["torch"]
    logged = [r.getMessage() for r in caplog.records if r.name == "medseg.inference.backend"]
    message = [m for m in logged if "runs in PyTorch" in m]
    assert len(message) == 1 and message[0].startswith(f"{path} runs in PyTorch, not onnxruntime: "), logged
    assert reason in message[0]
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    got = pred.predict(image)
    assert got.meta["backend"] == "torch" and got.labels.shape == (64, 64)
    ck = load_checkpoint(path)
    with torch.no_grad():
        ref = torch.sigmoid(ck.model(pred._inputs(image)[0]))
    assert float(np.abs(got.probs - ref[0].numpy()).max()) <= 1e-4


def test_falls_back_to_torch_without_onnxruntime(tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    _falls_back(tmp_path, caplog, "ImportError: onnxruntime is not installed or does not import")
    assert not cache_dir().exists()  # nothing exported that could not run


def test_falls_back_to_torch_when_the_export_fails(tmp_path, caplog, monkeypatch):
    def refuse(*args, **kwargs):
        raise OnnxExportError("PlainUNet cannot be exported to ONNX: an operator it has no translation for")

    monkeypatch.setattr(onnx_export, "write_onnx", refuse)
    _falls_back(tmp_path, caplog, "OnnxExportError: PlainUNet cannot be exported")


def test_falls_back_to_torch_when_the_session_fails(tmp_path, caplog, monkeypatch):
    def broken(path, threads, *dims):
        raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : Load model from {path} failed")

    monkeypatch.setattr(backend, "make_session", broken)
    _falls_back(tmp_path, caplog, "RuntimeError: [ONNXRuntimeError]")
    assert "exporting again" in caplog.text  # a file onnxruntime refuses is not trusted either


def test_asking_for_onnxruntime_makes_the_reasons_errors(tmp_path, monkeypatch):
    path = tiny_checkpoint(tmp_path, "PlainUNet")
    with pytest.raises(InferenceError, match="onnxruntime backend runs fp32"):
        Predictor(str(path), device="cpu", precision="bf16", backend="onnxruntime")
    with pytest.raises(InferenceError, match="unknown backend 'tensorrt'; valid: auto, torch, onnxruntime"):
        Predictor(str(path), device="cpu", backend="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        InferenceError,
        match=f"cannot run {path} in onnxruntime: ImportError: onnxruntime is not installed.*pip install onnx",
    ):
        Predictor(str(path), device="cpu", backend="onnxruntime")


def test_a_model_in_memory_stays_on_torch_unless_asked(tmp_path, caplog):
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "PlainUNet"))
    with caplog.at_level(logging.WARNING):
        assert Predictor.from_model(ck.model, ck.spec, ck.classmap, ck.preprocessing, device="cpu").backends == [
            "torch"
        ]
        tupled = Predictor((ck.model, ck.spec, ck.classmap, ck.preprocessing), device="cpu")
    assert tupled.backends == ["torch"] and not caplog.records  # the expected choice, no warning
    assert not cache_dir().exists()
    asked = Predictor.from_model(ck.model, ck.spec, ck.classmap, ck.preprocessing, device="cpu", backend="onnxruntime")
    assert asked.backends == ["onnxruntime"]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert float((asked.forward_tiles(x) - torch.sigmoid(ck.model(x))).abs().max()) <= 1e-4


def test_session_threads_follow_torch(tmp_path):
    pred = Predictor(str(tiny_checkpoint(tmp_path, "PlainUNet")), device="cpu")
    old = torch.get_num_threads()
    x = torch.randn(1, 3, 64, 64)
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            pred.forward_tiles(x)
            assert pred._backends[0].session().get_session_options().intra_op_num_threads == n
    finally:
        torch.set_num_threads(old)


def test_cache_key_follows_the_model_not_the_file(tmp_path):
    ck = load_checkpoint(tiny_checkpoint(tmp_path, "PlainUNet"))
    member = Member(ck.model, ck.spec, ck.classmap, ck.preprocessing, "x", checkpoint=True)
    first = cached_onnx(member)
    assert cached_onnx(member) == first
    two = ModelSpec(**{**ck.spec.to_dict(), "task": "multilabel"})  # same weights, another spec: another key
    other = Member(ck.model, two, ck.classmap, ck.preprocessing, "x", checkpoint=True)
    assert cached_onnx(other).name.split("-")[1] != first.name.split("-")[1]


def test_cli_predict_backend(tmp_path, capsys):
    from PIL import Image

    path = tiny_checkpoint(tmp_path, "PlainUNet")
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    for choice in ("torch", "onnxruntime"):
        out = tmp_path / f"out-{choice}"
        args = ["predict", str(path), str(tmp_path / "a.png"), "--out", str(out), "--json", "--quiet"]
        assert main([*args, "--device", "cpu", "--backend", choice]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        assert json.loads(line)["meta"]["backend"] == choice
