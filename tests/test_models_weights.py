"""Pretrained encoder weights: local safetensors / state dicts / folders, pickle refusal, fast offline failure."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from safetensors.torch import save_file

from medseg.errors import MedsegError, ReadError, UnknownNameError, WeightsUnavailableError
from medseg.models import create_model
from medseg.models.spec import ModelSpec

UNET = {"arch": "Unet", "encoder": "resnet18", "kwargs": {"encoder_depth": 3}}


def _spec(weights: str | None = None, **over) -> ModelSpec:
    return ModelSpec(**{**UNET, "encoder_weights": weights, **over})


def _source(seed: int = 1, **over) -> torch.nn.Module:
    """A freshly initialised model whose encoder differs from any other seed's."""
    torch.manual_seed(seed)
    model = create_model(_spec(**over))
    with torch.no_grad():  # BatchNorm buffers too, so that they are checked as well
        for _name, buf in model.encoder.named_buffers():
            if buf.dtype.is_floating_point:
                buf.uniform_(0.5, 1.5)
    return model


def _assert_same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def _contiguous(sd: dict) -> dict:
    return {k: v.contiguous() for k, v in sd.items()}


def test_local_safetensors_encoder_state_dict(tmp_path):
    src = _source()
    path = tmp_path / "resnet18.safetensors"
    save_file(_contiguous(src.encoder.state_dict()), str(path))
    torch.manual_seed(99)
    model = create_model(_spec(str(path)))
    _assert_same_encoder(src, model)
    report = model.encoder_weights_report
    assert report.source == str(path)
    assert len(report.loaded) == len(src.encoder.state_dict())
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_local_pth_of_a_whole_model(tmp_path):
    src = _source()
    path = tmp_path / "trained.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 3}, path)
    model = create_model(_spec(str(path)))
    _assert_same_encoder(src, model)
    report = model.encoder_weights_report
    assert report.missing == []
    assert report.unexpected and all("decoder" in k or "segmentation_head" in k for k in report.unexpected)


def test_folder_holding_one_weights_file(tmp_path):
    src = _source()
    torch.save(src.encoder.state_dict(), tmp_path / "encoder.pt")
    (tmp_path / "notes.txt").write_text("not weights")
    _assert_same_encoder(src, create_model(_spec(str(tmp_path))))
    torch.save(src.encoder.state_dict(), tmp_path / "other.pth")
    with pytest.raises(ReadError, match="several weights files"):
        create_model(_spec(str(tmp_path)))


def test_grey_model_gets_summed_rgb_first_conv(tmp_path):
    src = _source()
    path = tmp_path / "rgb.safetensors"
    save_file(_contiguous(src.encoder.state_dict()), str(path))
    model = create_model(_spec(str(path), in_channels=1))
    torch.testing.assert_close(model.encoder.conv1.weight, src.encoder.conv1.weight.sum(1, keepdim=True))
    assert model.encoder_weights_report.adapted == ["conv1.weight"]
    five = create_model(_spec(str(path), in_channels=5))
    expected = src.encoder.conv1.weight[:, [0, 1, 2, 0, 1]] * (3 / 5)
    torch.testing.assert_close(five.encoder.conv1.weight, expected)


def test_timm_backbone_state_dict_into_tu_encoder(tmp_path):
    torch.manual_seed(3)
    backbone = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "timm_resnet18.safetensors"
    save_file(_contiguous(backbone.state_dict()), str(path))
    model = create_model(_spec(str(path), encoder="tu-resnet18"))
    torch.testing.assert_close(model.encoder.model.conv1.weight, backbone.conv1.weight)
    torch.testing.assert_close(model.encoder.model.layer2[0].bn1.running_var, backbone.layer2[0].bn1.running_var)
    report = model.encoder_weights_report
    assert report.missing == []
    assert {"fc.weight", "fc.bias"} <= set(report.unexpected)  # the classifier, and the stages depth 3 cuts off
    assert all(k.startswith(("fc.", "layer3.", "layer4.")) for k in report.unexpected)


def test_own_architecture_encoder_from_local_file(tmp_path):
    spec = ModelSpec("PlainUNet", "none", kwargs={"depth": 2, "base_channels": 4})
    torch.manual_seed(5)
    src = create_model(spec)
    path = tmp_path / "plain.safetensors"
    save_file(_contiguous(src.state_dict()), str(path))
    model = create_model(ModelSpec(**{**spec.to_dict(), "encoder_weights": str(path)}))
    _assert_same_encoder(src, model)
    assert not torch.equal(model.head.weight, src.head.weight)  # only the encoder is loaded


def test_nothing_matching_names_the_file(tmp_path):
    path = tmp_path / "unrelated.safetensors"
    save_file({"transformer.h.0.attn.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ReadError, match="none of its 1 tensors fits") as info:
        create_model(_spec(str(path)))
    assert info.value.path == path
    with pytest.raises(ReadError, match="no such file"):
        create_model(_spec(str(tmp_path / "missing.safetensors")))


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "resnet18.pth"
    payload = {"conv1.weight": Evil(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(ReadError, match="weights-only") as info:
        create_model(_spec(str(path)))
    assert info.value.path == path
    assert not marker.exists()
    planted = tmp_path / "model.safetensors"
    planted.write_bytes(path.read_bytes())
    with pytest.raises(ReadError, match="safetensors"):
        create_model(_spec(str(planted)))
    assert not marker.exists()
    # the payload is live: plain unpickling would have run it
    with open(path, "rb") as f:
        torch.load(f, weights_only=False) if how == "torch.save" else pickle.load(f)
    assert marker.exists()


def _assert_clear_failure(spec: ModelSpec, *words: str) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        create_model(spec)
    err = info.value
    assert isinstance(err, MedsegError)
    assert err.__cause__ is None  # no client-library traceback chained on
    assert err.__context__ is None or err.__suppress_context__
    msg = str(err)
    for word in (repr(spec.encoder), repr(spec.encoder_weights), "encoder_weights=", ".safetensors", *words):
        assert word in msg, f"{word!r} missing from: {msg}"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("encoder", ["resnet18", "tu-resnet18"])
def test_offline_switch_fails_without_trying_the_network(empty_cache, monkeypatch, var, encoder):
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    tried = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: tried.append(address))
    _assert_clear_failure(_spec("imagenet", encoder=encoder), var)
    assert tried == []  # what made it fail at once, not after a connection timeout


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "https://no-such-host.invalid"])
def test_no_network_fails_clearly(empty_cache, monkeypatch, endpoint):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    _assert_clear_failure(_spec("imagenet"), "no connection")


def test_offline_uses_the_local_hub_cache(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub.file_download import repo_folder_name

    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    snap = (
        empty_cache
        / repo_folder_name(repo_id=settings["repo_id"], repo_type="model")
        / "snapshots"
        / settings["revision"]
    )
    snap.mkdir(parents=True)
    src = _source(seed=7)
    save_file(_contiguous(src.encoder.state_dict()), str(snap / "model.safetensors"))
    model = create_model(_spec("imagenet"))
    _assert_same_encoder(src, model)
    assert model.encoder_weights_report.source == str(snap / "model.safetensors")
    skipped = create_model(_spec("imagenet"), load_weights=False)
    assert skipped.encoder_weights_report is None
    assert not torch.equal(skipped.encoder.conv1.weight, src.encoder.conv1.weight)


def test_unknown_weights_name_lists_the_encoders_weights():
    with pytest.raises(UnknownNameError, match="did you mean 'imagenet'"):
        create_model(_spec("imagenett"))


def test_own_architecture_has_no_hub_weights():
    with pytest.raises(WeightsUnavailableError, match="PlainUNet"):
        create_model(ModelSpec("PlainUNet", "none", encoder_weights="imagenet"))
