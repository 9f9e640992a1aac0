"""The .medseg checkpoint: bit-identical round trip, atomic saves, and refusal of pickles."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import medseg.models.checkpoint as ckmod
from medseg import folder_swap
from medseg.datasets.classmap import ClassMap
from medseg.errors import CheckpointError
from medseg.models import (
    Checkpoint,
    create_model,
    import_state_dict,
    load_checkpoint,
    save_checkpoint,
)
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


def _pre(spec: ModelSpec) -> Preprocessing:
    return Preprocessing(
        channels=spec.in_channels,
        window="percentile",
        mean=[0.5] * spec.in_channels,
        std=[0.25] * spec.in_channels,
        input_size=[64, 64],
        divisible_by=8,
    )


_MODELS: dict[tuple[str, int], torch.nn.Module] = {}


def _trained_model(spec: ModelSpec, seed: int = 0) -> torch.nn.Module:
    """A model whose BatchNorm running statistics are no longer the defaults (so the test sees them).

    Built once per spec and seed: the tests only read it.
    """
    key = (json.dumps(spec.to_dict(), sort_keys=True), seed)
    if key not in _MODELS:
        torch.manual_seed(seed)
        model = create_model(spec).train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(2, spec.in_channels, 32, 32) * 3 + 1)
        _MODELS[key] = model.eval()
    return _MODELS[key]


def _input(spec: ModelSpec) -> torch.Tensor:
    return torch.randn(1, spec.in_channels, 64, 64, generator=torch.Generator().manual_seed(7))


def _save(tmp_path: Path, spec: ModelSpec = PLAIN, seed: int = 0, name: str = "net") -> tuple[Path, torch.nn.Module]:
    model = _trained_model(spec, seed)
    out = save_checkpoint(tmp_path / name, model, spec, CLASSMAPS[spec.task], _pre(spec))
    return out, model


class Evil:
    """Unpickling this runs arbitrary Python code (here: it creates ``marker``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("spec", [UNET, PLAIN], ids=["unet-resnet18", "plainunet"])
def test_round_trip_is_bit_identical(tmp_path, spec):
    model = _trained_model(spec)
    x = _input(spec)
    with torch.no_grad():
        before = model(x)
    bn = [k for k in model.state_dict() if k.endswith("running_mean")]
    assert bn and any(model.state_dict()[k].abs().sum() > 0 for k in bn), "BN statistics were not moved"

    path = save_checkpoint(tmp_path / "m", model, spec, CLASSMAPS[spec.task], _pre(spec))
    ck = load_checkpoint(path)
    assert isinstance(ck, Checkpoint) and not ck.model.training
    with torch.no_grad():
        after = ck.model(x)
    assert torch.equal(before, after)
    saved, loaded = model.state_dict(), ck.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # BN running stats included
    stored = load_file(str(path / "model.safetensors"))
    assert set(bn) <= set(stored)
    assert ck.spec.to_dict() == spec.to_dict()
    assert ck.classmap.to_dict() == CLASSMAPS[spec.task].to_dict()
    assert ck.preprocessing.to_dict() == _pre(spec).to_dict()


def test_folder_layout_config_and_provenance(tmp_path):
    model = _trained_model(UNET)
    prov = {
        "data": {"root": "/data/cvc", "ids": ["b", "a"]},
        "metrics": {"dice": torch.tensor(0.5)},
        "config": {"epochs": 3, "out": tmp_path},
    }
    path = save_checkpoint(tmp_path / "run1", model, UNET, CLASSMAPS["multiclass"], _pre(UNET), prov)
    assert path == tmp_path / "run1.medseg" and path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.medseg"]  # no temp folder left
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format"] == "medseg-checkpoint" and cfg["format_version"] == 1
    w = cfg["weights"]
    assert w["file"] == "model.safetensors"
    assert w["sha256"] == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert w["n_tensors"] == len(model.state_dict())
    p = cfg["provenance"]
    assert dt.datetime.fromisoformat(p["created"]).utcoffset() == dt.timedelta(0)
    assert set(p["versions"]) >= {"medseg", "torch", "smp", "python"}
    assert p["versions"]["torch"] == torch.__version__ and p["host"]["device"] == "cpu"
    assert p["data"]["hash"] == "sha256:" + hashlib.sha256(b"a\nb").hexdigest()
    assert p["metrics"] == {"dice": 0.5} and p["config"]["out"] == str(tmp_path)
    # a path without the suffix, the folder itself and its config.json all open it
    for given in (tmp_path / "run1", path, path / "config.json"):
        assert load_checkpoint(given).provenance["data"]["ids"] == ["b", "a"]


def test_save_refuses_inconsistent_descriptions(tmp_path):
    model = _trained_model(PLAIN)
    with pytest.raises(ValueError, match="task 'binary' differs"):
        save_checkpoint(tmp_path / "x", model, PLAIN, CLASSMAPS["multiclass"], _pre(PLAIN))
    with pytest.raises(ValueError, match="3-channel input"):
        save_checkpoint(tmp_path / "x", model, PLAIN, CLASSMAPS["binary"], Preprocessing(channels=3))
    two = dataclasses.replace(PLAIN, classes=2, task="multiclass")
    with pytest.raises(ValueError, match="2 output channels .* needs 3"):
        save_checkpoint(tmp_path / "x", create_model(two), two, CLASSMAPS["multiclass"], _pre(two))
    assert not (tmp_path / "x.medseg").exists()


def test_replacing_a_checkpoint(tmp_path):
    path, _ = _save(tmp_path, seed=0)
    _, new = _save(tmp_path, seed=1)
    x = _input(PLAIN)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x), new(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.medseg"]


def test_failure_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path, old = _save(tmp_path, seed=0)

    def half_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 100)  # a truncated file, then the disk "fails"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckmod, "save_file", half_write)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _trained_model(PLAIN, seed=1), PLAIN, CLASSMAPS["binary"], _pre(PLAIN))
    monkeypatch.undo()
    x = _input(PLAIN)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x), old(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.medseg"]


def test_failure_while_renaming_restores_the_old_checkpoint(tmp_path, monkeypatch):
    path, old = _save(tmp_path, seed=0)
    real_replace = os.replace

    def replace(src, dst):
        if ".tmp-" in Path(src).name:  # the step that moves the new folder into place
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(ckmod.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"):
        save_checkpoint(path, _trained_model(PLAIN, seed=1), PLAIN, CLASSMAPS["binary"], _pre(PLAIN))
    monkeypatch.undo()
    x = _input(PLAIN)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x), old(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.medseg"]


def _kill_mid_swap(path: Path) -> Path:
    """What a save killed between "move the old folder aside" and "rename the new one in" leaves."""
    aside = path.parent / f".{path.name}.old-abc123"
    os.replace(path, aside)
    (path.parent / f".{path.name}.tmp-def456").mkdir()  # the new one, half written
    return aside


def test_a_save_killed_mid_swap_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    path, old = _save(tmp_path, seed=0)
    aside = _kill_mid_swap(path)
    # ctime cannot be set back: make "now" late enough that the leftovers count as stale
    monkeypatch.setattr(folder_swap.time, "time", lambda: os.stat(aside).st_ctime + 2 * ckmod.STALE_S)
    x = _input(PLAIN)
    with torch.no_grad():  # loading finds the last good one and puts it back
        assert torch.equal(load_checkpoint(path).model(x), old(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.medseg"]
    # and a save after a kill does the same before writing
    aside = _kill_mid_swap(path)
    monkeypatch.setattr(folder_swap.time, "time", lambda: os.stat(aside).st_ctime + 2 * ckmod.STALE_S)
    _, new = _save(tmp_path, seed=1)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x), new(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.medseg"]


def test_a_save_in_progress_elsewhere_is_left_alone(tmp_path):
    path, _ = _save(tmp_path, seed=0)
    aside = path.parent / f".{path.name}.old-live"
    os.replace(path, aside)  # another process is between its two renames right now
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(path)
    assert aside.is_dir() and not path.exists()


def _tag_of_a_finished_process() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from medseg.folder_swap import owner_tag; print(owner_tag())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_leftovers_of_a_dead_save_are_put_right_at_once_and_a_live_ones_never(tmp_path):
    path, old = _save(tmp_path, seed=0)
    dead, live = _tag_of_a_finished_process(), folder_swap.owner_tag()
    os.replace(path, path.parent / f".{path.name}.old-{dead}")  # killed between its two renames
    (path.parent / f".{path.name}.tmp-{dead}").mkdir()
    (path.parent / f".{path.name}.tmp-{live}").mkdir()  # a save of this process, still writing
    x = _input(PLAIN)
    with torch.no_grad():  # no waiting STALE_S: the owner is known to be gone
        assert torch.equal(load_checkpoint(path).model(x), old(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{path.name}.tmp-{live}", "net.medseg"]


def test_save_does_not_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine.medseg").mkdir()
    (tmp_path / "mine.medseg" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a medseg checkpoint; refusing"):
        save_checkpoint(tmp_path / "mine", _trained_model(PLAIN), PLAIN, CLASSMAPS["binary"], _pre(PLAIN))
    assert (tmp_path / "mine.medseg" / "notes.txt").read_text() == "keep me"


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path):
    lin = torch.nn.Linear(4, 4)
    m = torch.nn.Module()
    m.a, m.b = lin, torch.nn.Linear(4, 4)
    m.b.weight = lin.weight  # tied
    m.register_buffer("t", torch.arange(12.0).reshape(3, 4).t())  # non-contiguous
    m.register_buffer("view", m.t.reshape(-1)[2:6].clone().expand(2, 4)[0])  # view into a bigger storage
    raw = {k: v.detach() for k, v in m.state_dict().items()}
    # what the helper exists for: safetensors refuses both as they are
    with pytest.raises(RuntimeError, match="share memory"):
        save_file({k: raw[k] for k in ("a.weight", "b.weight")}, str(tmp_path / "tied.safetensors"))
    with pytest.raises(ValueError, match="non contiguous"):
        save_file({"t": raw["t"]}, str(tmp_path / "t.safetensors"))
    flat = ckmod._tensors_for_safetensors(m.state_dict())
    save_file(flat, str(tmp_path / "ok.safetensors"))
    back = load_file(str(tmp_path / "ok.safetensors"))
    ptrs = [t.untyped_storage().data_ptr() for t in flat.values()]
    assert len(set(ptrs)) == len(ptrs)
    assert back.keys() == raw.keys() and all(torch.equal(back[k], raw[k]) for k in raw)


def test_sha_mismatch_is_refused(tmp_path):
    path, _ = _save(tmp_path)
    w = path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights file changed or corrupted") as e:
        load_checkpoint(path)
    assert e.value.path == w


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: (p / "config.json").unlink(), "missing config.json"),
        (lambda p: (p / "config.json").write_text("{not json"), "invalid JSON"),
        (lambda p: _edit(p, format_version=99), "unknown format_version 99"),
        (lambda p: _edit(p, format="other"), "not a medseg checkpoint config"),
        (lambda p: _edit(p, spec={"arch": "Unet", "colour": 1}), "malformed checkpoint config"),
        (lambda p: _edit(p, weights={"file": "../elsewhere.safetensors", "sha256": "0"}), "plain file name"),
        (lambda p: _edit(p, spec={**PLAIN.to_dict(), "arch": "PlainUNett"}), "cannot build the model it describes"),
    ],
    ids=["missing", "not-json", "version", "format", "bad-spec", "traversal", "unknown-arch"],
)
def test_bad_config_is_refused_naming_it(tmp_path, change, message):
    path, _ = _save(tmp_path)
    change(path)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert e.value.path == path / "config.json" and "config.json" in str(e.value)


def _edit(path: Path, **fields) -> None:
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(fields)
    (path / "config.json").write_text(json.dumps(cfg))


def test_missing_checkpoint_and_wrong_architecture(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent")
    path, _ = _save(tmp_path)
    _edit(path, spec={**PLAIN.to_dict(), "kwargs": {"depth": 2, "base_channels": 4}})
    with pytest.raises(CheckpointError, match="do not fit the PlainUNet model"):
        load_checkpoint(path)


# Every way a pickle can reach the loader: each pickle protocol, torch.save's zip archive (its default since
# torch 1.6) and its legacy format, under every weights name a config can give and every file name passed
# directly. The refusal must come from medseg, not from torch: a loader falling back to
# torch.load(weights_only=False) would run each of these payloads.
PAYLOADS = ["pickle-0", "pickle-1", "pickle-2", "pickle-3", "pickle-4", "pickle-5", "torch-zip", "torch-legacy"]
WEIGHT_NAMES = [
    "model.safetensors",
    "model.pt",
    "model.pth",
    "model.ckpt",
    "model.pkl",
    "model.pickle",
    "model.bin",
    "model.tar",
    "weights",
    "model.npz",
]


def _plant(path: Path, payload: str, marker: Path) -> None:
    if payload == "torch-zip":
        torch.save({"conv.weight": Evil(marker)}, path)
        assert path.read_bytes()[:4] == b"PK\x03\x04"
    elif payload == "torch-legacy":
        torch.save({"conv.weight": Evil(marker)}, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(Evil(marker), protocol=int(payload[-1])))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_payloads_are_live(tmp_path, payload):
    """Control: each payload below really runs when loaded the unsafe way."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "evil", payload, marker)
    if payload.startswith("torch"):
        torch.load(tmp_path / "evil", weights_only=False)
    else:
        pickle.loads((tmp_path / "evil").read_bytes())
    assert marker.exists()


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory) -> Path:
    path, _ = _save(tmp_path_factory.mktemp("ckpt"))
    return path


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_a_pickle_planted_as_the_weights_is_refused_under_any_name(saved_checkpoint, tmp_path, name, payload):
    """The attacker controls the whole folder: config.json names the planted file and records its sha256."""
    path = tmp_path / "net.medseg"
    shutil.copytree(saved_checkpoint, path)
    marker = tmp_path / "ran"
    w = path / name
    (path / "model.safetensors").unlink()
    _plant(w, payload, marker)
    _edit(path, weights={"file": name, "sha256": hashlib.sha256(w.read_bytes()).hexdigest(), "n_tensors": 1})
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(path)
    assert e.value.path == w and not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(
    "name", [f"model{s}" for s in ckmod.PICKLE_SUFFIXES] + ["weights", "model.safetensors", "model.medseg"]
)
def test_a_pickle_file_given_directly_is_refused(tmp_path, name, payload):
    marker = tmp_path / "ran"
    evil = tmp_path / name
    _plant(evil, payload, marker)
    with pytest.raises(CheckpointError, match="refused|not a medseg checkpoint") as e:
        load_checkpoint(evil)
    assert not marker.exists()
    if name != "model.safetensors":  # that name is taken for the weights inside a folder beside it
        assert e.value.path == evil
    if ckmod.Path(name).suffix in ckmod.PICKLE_SUFFIXES:
        assert "pickle-based checkpoints are refused: they can execute code" in str(e.value)
        assert "import_state_dict" in str(e.value)


def test_import_trusted_state_dict(tmp_path):
    model = _trained_model(UNET)
    nested = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(nested, tmp_path / "trained.pth")
    out = import_state_dict(tmp_path / "trained.pth", UNET, CLASSMAPS["multiclass"], _pre(UNET), tmp_path / "conv")
    ck = load_checkpoint(out)
    x = _input(UNET)
    with torch.no_grad():
        assert torch.equal(ck.model(x), model(x))
    src = ck.provenance["imported_from"]
    assert src["sha256"] == hashlib.sha256((tmp_path / "trained.pth").read_bytes()).hexdigest()


def test_import_refuses_code_and_wrong_weights(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": Evil(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        import_state_dict(tmp_path / "evil.pth", UNET, CLASSMAPS["multiclass"], _pre(UNET), tmp_path / "o")
    assert not marker.exists() and not (tmp_path / "o.medseg").exists()
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"do not fit the Unet\(resnet18\) model"):
        import_state_dict(tmp_path / "other.pth", UNET, CLASSMAPS["multiclass"], _pre(UNET), tmp_path / "o")
