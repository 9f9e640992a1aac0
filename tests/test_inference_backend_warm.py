"""The onnxruntime backend warmed up in the background (PyTorch first, onnxruntime once the export in a child
process, or in a thread, is ready; failures and close while exporting) and the ONNX cache pruned by age and size,
least recently used first."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time

import numpy as np
import pytest
import torch
from _onnx_fixtures import onnx_cache_in_tmp, tiny_checkpoint  # noqa: F401  (the fixture)

from medseg.cli.main import main
from medseg.errors import InferenceError, OnnxExportError
from medseg.inference import Predictor, backend, onnx_cache
from medseg.inference.onnx_cache import cache_dir, prune, weights_digest
from medseg.models import load_checkpoint, onnx_export

WAIT = 120  # seconds an export may take on a loaded CI machine; the tests wait on events, never sleep


pytestmark = pytest.mark.usefixtures("onnx_cache_in_tmp")


def _saved(tmp_path, seed: int = 0):
    return tiny_checkpoint(tmp_path, "PlainUNet", seed=seed)


def _image(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((80, 96, 3)) * 255).astype(np.uint8)


class GatedExport:
    """write_onnx that waits for ``release`` (the export 'under way'), recording the models torch traced; the
    background export runs in a thread of this process (the path of a model a child process cannot rebuild),
    where the gate can hold it."""

    def __init__(self, monkeypatch, fail: Exception | None = None):
        monkeypatch.setattr(backend, "EXPORT_IN_CHILD", False)
        self.entered, self.release = threading.Event(), threading.Event()
        self.models, self.traced, self.threads = [], [], []
        self.fail = fail
        real, real_export = onnx_export.write_onnx, torch.onnx.export
        monkeypatch.setattr(torch.onnx, "export", lambda m, *a, **k: self.traced.append(m) or real_export(m, *a, **k))

        def gated(ckpt, *args, **kwargs):
            self.models.append(ckpt.model)
            self.threads.append(threading.current_thread().name)
            self.entered.set()
            assert self.release.wait(WAIT)
            if self.fail is not None:
                raise self.fail
            return real(ckpt, *args, **kwargs)

        monkeypatch.setattr(onnx_export, "write_onnx", gated)


def _sessions(monkeypatch) -> list:
    made = []
    real = backend.make_session
    monkeypatch.setattr(
        backend, "make_session", lambda path, threads, *dims: made.append(path) or real(path, threads, *dims)
    )
    return made


def _warming(path, monkeypatch):
    """A checkpoint's Predictor warming up in the background: (it, its export's end event, sessions made)."""
    made = _sessions(monkeypatch)
    pred = Predictor(str(path), device="cpu", warm_up="background")
    return pred, pred._backends[0].done, made


def _backend_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("medseg.inference") and r.levelno >= 30]


def test_first_forward_runs_torch_then_onnxruntime_once_the_background_export_is_ready(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    ck = load_checkpoint(_saved(tmp_path))
    before = weights_digest(ck.model)
    export = GatedExport(monkeypatch)
    pred = Predictor(ck, device="cpu", warm_up="background")
    assert pred.backends == ["torch"]  # returned without waiting for the export
    first = pred.predict(_image())
    assert first.meta["backend"] == "torch"
    assert export.entered.wait(WAIT) and not pred.wait_backends(0)  # still exporting
    torch_net = pred._backends[0]._current.net  # the network PyTorch runs (BatchNorm folded into a copy)
    export.release.set()
    assert pred.wait_backends(WAIT)
    assert pred.backends == ["onnxruntime"] and pred.folded == [True]
    later = pred.predict(_image())
    assert later.meta["backend"] == "onnxruntime"
    assert float(np.abs(first.probs - later.probs).max()) <= 1e-4
    ref = Predictor(ck, device="cpu", backend="torch").predict(_image())
    assert float(np.abs(first.probs - ref.probs).max()) <= 1e-6  # the torch forwards are the torch backend's
    # exported in its own thread from its own copy: the live networks are never traced, nor changed
    (traced,) = export.traced
    assert traced is not ck.model and traced is not torch_net
    assert export.threads[0].startswith("medseg-onnx-export")
    assert weights_digest(ck.model) == before
    assert len(list(cache_dir().glob("PlainUNet-*.onnx"))) == 1
    # the same model again: the cached file, still in the background (no second export)
    again = Predictor(ck, device="cpu", warm_up="background")
    assert again.wait_backends(WAIT) and again.backends == ["onnxruntime"] and len(export.models) == 1


def test_a_background_export_failure_logs_one_warning_and_torch_keeps_running(tmp_path, monkeypatch, caplog):
    path = _saved(tmp_path)
    export = GatedExport(monkeypatch, OnnxExportError("PlainUNet cannot be exported to ONNX: no translation"))
    made = _sessions(monkeypatch)
    with caplog.at_level(logging.WARNING):
        pred = Predictor(str(path), device="cpu", warm_up="background")
        first = pred.predict(_image())
        export.release.set()
        assert pred.wait_backends(WAIT)
        later = pred.predict(_image())
    (message,) = _backend_warnings(caplog)
    assert message == (
        f"{path} runs in PyTorch, not onnxruntime: OnnxExportError: PlainUNet cannot be exported to ONNX: "
        "no translation"
    )
    assert pred.backends == ["torch"] and later.meta["backend"] == "torch" and not made
    assert np.array_equal(first.probs, later.probs)
    assert not list(cache_dir().iterdir())  # no file, no temporary left


@pytest.mark.parametrize("how", ["close", "drop"])
def test_close_or_drop_while_exporting_is_clean(tmp_path, monkeypatch, caplog, how):
    """close() returns at once; the export under way ends into the cache; no session, no switch, no warning."""
    path = _saved(tmp_path)
    export = GatedExport(monkeypatch)
    with caplog.at_level(logging.WARNING):
        pred, done, made = _warming(path, monkeypatch)
        assert export.entered.wait(WAIT)
        if how == "close":
            pred.close()  # the export is blocked: close must not wait for it
            assert not done.is_set()
        else:
            del pred
            gc.collect()
        export.release.set()
        assert done.wait(WAIT)
        if how == "close":
            assert pred.backends == ["torch"] and pred.predict(_image()).meta["backend"] == "torch"
    assert not made and not _backend_warnings(caplog)
    files = sorted(p.name for p in cache_dir().iterdir())
    assert len(files) == 1 and files[0].endswith(".onnx")  # a whole file, reused next time; no temporary
    assert Predictor(str(path), device="cpu").backends == ["onnxruntime"] and len(export.models) == 1


def test_background_warm_up_is_for_checkpoints_the_auto_backend_would_export(tmp_path, monkeypatch):
    ck = load_checkpoint(_saved(tmp_path))
    calls, real = [], onnx_export.write_onnx
    monkeypatch.setattr(onnx_export, "write_onnx", lambda *a, **k: calls.append(1))
    in_memory = Predictor.from_model(
        ck.model, ck.spec, ck.classmap, ck.preprocessing, device="cpu", warm_up="background"
    )
    bf16 = Predictor(ck, device="cpu", precision="bf16", warm_up="background")
    torch_only = Predictor(ck, device="cpu", backend="torch", warm_up="background")
    for pred in (in_memory, bf16, torch_only):
        assert pred.backends == ["torch"] and pred.wait_backends(0)  # no thread to wait for
    assert not calls and not cache_dir().exists()
    with pytest.raises(InferenceError, match="unknown warm_up 'later'; valid: now, background"):
        Predictor(ck, device="cpu", warm_up="later")
    monkeypatch.setattr(onnx_export, "write_onnx", real)
    # asked for by name, onnxruntime is built at once (its failures are errors, never a background warning)
    assert Predictor(ck, device="cpu", backend="onnxruntime", warm_up="background").backends == ["onnxruntime"]


def test_cli_predict_exports_before_its_first_file(tmp_path, capsys):
    from PIL import Image

    path = _saved(tmp_path)
    Image.fromarray(_image()).save(tmp_path / "a.png")
    args = ["predict", str(path), str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--json", "--quiet"]
    assert main([*args, "--device", "cpu"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["meta"]["backend"] == "onnxruntime"


def _fake(folder, name: str, kb: int, age_days: float, now: float):
    path = folder / name
    path.write_bytes(b"\0" * kb * 1024)
    os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    return path


def test_a_new_cache_file_prunes_old_then_least_recently_used_files(tmp_path, monkeypatch):
    folder = cache_dir()
    folder.mkdir(parents=True)
    now = time.time()
    old = _fake(folder, "Unet-aaaa-1111.onnx", 300, 40, now)  # unused for 40 days
    lru = _fake(folder, "Unet-bbbb-2222.onnx", 300, 3, now)
    recent = _fake(folder, "Unet-cccc-3333.onnx", 300, 1, now)
    stale_tmp = _fake(folder, ".Unet-dddd.tmp-1-abcd", 10, 2, now)  # a killed export's
    live_tmp = _fake(folder, ".Unet-eeee.tmp-2-ef01", 10, 0, now)  # another process exporting now
    monkeypatch.setenv(onnx_cache.MAX_MB_ENV, "0.5")  # the new file and one of 300 KB fit, not two
    path = _saved(tmp_path)
    Predictor(str(path), device="cpu")
    (new,) = folder.glob("PlainUNet-*.onnx")
    assert not old.exists() and not lru.exists() and not stale_tmp.exists()
    assert recent.exists() and live_tmp.exists() and new.exists()
    # a hit is a use: its time moves on, so the file in use outlives one written later but unused since
    os.utime(new, (now - 5 * 86400, now - 5 * 86400))
    Predictor(str(path), device="cpu")
    assert new.stat().st_mtime >= now - 60
    assert prune(folder, max_mb=0.29, now=now) == [recent]  # over the cap: least recently used first
    assert prune(folder, keep=new, max_mb=0) == [] and new.exists()  # never the file just written


def test_cache_limits_from_the_environment(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "c"
    folder.mkdir()
    now = time.time()
    a = _fake(folder, "X-a-1.onnx", 1, 2, now)
    b = _fake(folder, "X-b-2.onnx", 1, 0.5, now)
    monkeypatch.setenv(onnx_cache.MAX_DAYS_ENV, "1")
    assert prune(folder, now=now) == [a] and b.exists()
    monkeypatch.setenv(onnx_cache.MAX_DAYS_ENV, "soon")
    with caplog.at_level(logging.WARNING):
        assert prune(folder, now=now) == []  # the default 30 days
    assert "$MEDSEG_ONNX_CACHE_DAYS='soon' is not a number >= 0: using 30.0" in caplog.text


def test_the_app_predictor_warms_up_in_the_background(tmp_path, monkeypatch):
    """The Predict dock's builder: a checkpoint's first prediction on PyTorch, onnxruntime once exported."""
    from napari_medseg._predict_model import ModelChoice, build_predictor

    old = torch.get_num_threads()
    export = GatedExport(monkeypatch)
    try:
        pred = build_predictor(ModelChoice(checkpoints=(str(_saved(tmp_path)),), device="cpu"))
        assert pred.predict(_image()).meta["backend"] == "torch"
        export.release.set()
        assert pred.wait_backends(WAIT) and pred.predict(_image()).meta["backend"] == "onnxruntime"
    finally:
        export.release.set()
        torch.set_num_threads(old)


def _no_export_here(monkeypatch) -> list[str]:
    """write_onnx of this process records its calls and refuses: an export that still lands ran elsewhere."""
    calls = []

    def refuse(ckpt, *a, **k):
        calls.append(threading.current_thread().name)
        raise OnnxExportError("exported in the viewer's process")

    monkeypatch.setattr(onnx_export, "write_onnx", refuse)
    return calls


@pytest.mark.parametrize("arch", ["PlainUNet", "Unet"])  # medseg's own class; smp's, made at run time
def test_the_background_export_runs_in_a_child_process(tmp_path, monkeypatch, arch):
    """The export never runs in this process (its GIL stays free for the viewer); its file is the one a direct
    export finds, and onnxruntime runs it as PyTorch does."""
    torch.set_num_threads(1)
    ck = load_checkpoint(tiny_checkpoint(tmp_path, arch))
    calls = _no_export_here(monkeypatch)
    pred = Predictor(ck, device="cpu", warm_up="background")
    first = pred.predict(_image())
    assert pred.wait_backends(WAIT) and pred.backends == ["onnxruntime"] and not calls
    assert float(np.abs(first.probs - pred.predict(_image()).probs).max()) <= 1e-4
    (only,) = cache_dir().iterdir()  # the file, and no payload left beside it
    assert only.suffix == ".onnx" and onnx_cache.find_cached(cache_dir(), only.stem.rsplit("-", 1)[0]) == only
    assert Predictor(ck, device="cpu").backends == ["onnxruntime"] and not calls  # found, not exported again


def test_closed_while_the_child_exports_the_file_still_lands(tmp_path, monkeypatch, caplog):
    calls = _no_export_here(monkeypatch)
    with caplog.at_level(logging.WARNING):
        pred, done, made = _warming(_saved(tmp_path), monkeypatch)
        pred.close()
        assert done.wait(WAIT)
    assert pred.backends == ["torch"] and not made and not calls and not _backend_warnings(caplog)
    assert [p.suffix for p in cache_dir().iterdir()] == [".onnx"]


def test_a_model_the_child_cannot_rebuild_is_exported_in_the_thread(tmp_path, monkeypatch, caplog):
    from medseg.inference.members import Member

    class Local(torch.nn.Module):  # not what its spec builds: the child would export another network
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    ck = load_checkpoint(_saved(tmp_path))
    member = Member(Local(ck.model).eval(), ck.spec, ck.classmap, ck.preprocessing, "local model", checkpoint=True)
    with caplog.at_level(logging.INFO, logger="medseg.inference"):
        pred = Predictor([member], device="cpu", warm_up="background")
        assert pred.wait_backends(WAIT)
    assert pred.backends == ["onnxruntime"]
    assert (
        "exporting local model in this process (a child process cannot rebuild it: TypeError: the spec builds a "
        "medseg.models.unets.PlainUNet, the model to export is a test_inference_backend_warm."
    ) in caplog.text


def test_a_stop_before_the_fallback_export_exports_nothing(tmp_path, monkeypatch):
    """A closed Predictor whose model the child could not rebuild does not export it in this process."""
    from medseg.inference import onnx_child
    from medseg.inference.members import as_member

    calls = _no_export_here(monkeypatch)
    monkeypatch.setattr(onnx_child, "_run_child", lambda *a: (onnx_child.UNREADABLE, "TypeError: not rebuilt"))
    member = as_member(load_checkpoint(_saved(tmp_path)))
    assert onnx_child.cached_onnx_in_child(member, cache_dir(), stop=lambda: True) is None
    assert not calls and not list(cache_dir().glob("*.onnx")) and not list(cache_dir().glob(".*"))


def test_an_export_failing_in_the_child_raises_its_message(tmp_path):
    from medseg.inference import onnx_child
    from medseg.inference.members import as_member

    payload = tmp_path / "member.pt"
    torch.save(onnx_child._payload(as_member(str(_saved(tmp_path)))), payload)
    with pytest.raises(OnnxExportError, match=r"in a child process failed: ValidationError: .*BatchNormalization"):
        onnx_child._run_child(payload, tmp_path / "cache", 1, None)  # rebuilt, but no exporter writes opset 1
    payload.write_bytes(b"not a pickle")
    outcome, why = onnx_child._run_child(payload, tmp_path / "cache", onnx_cache.OPSET, None)
    assert outcome == onnx_child.UNREADABLE and why.startswith("UnpicklingError")


def test_the_child_runs_at_the_lowest_priority(tmp_path, caplog):
    """The child runs at the lowest priority (_BOOT sets it before any import: torch's ~2 s import at full
    priority took a core from the viewer's forwards); it says so on its first line, logged at debug level."""
    from medseg.inference import onnx_child
    from medseg.inference.members import as_member

    payload = tmp_path / "member.pt"
    torch.save(onnx_child._payload(as_member(str(_saved(tmp_path)))), payload)
    with caplog.at_level(logging.DEBUG, logger="medseg.inference.onnx_child"):
        outcome, last = onnx_child._run_child(payload, tmp_path / "cache", onnx_cache.OPSET, None)
    assert outcome == onnx_child.DONE and last.endswith(".onnx")
    assert "the export's child process (exit 0) said: niceness 19 | " in caplog.text


@pytest.mark.parametrize("executable", ["missing", "not python"])
def test_a_child_that_cannot_run_leaves_the_export_to_this_process(tmp_path, monkeypatch, caplog, executable):
    """A frozen application's executable is no Python interpreter: the export falls back to the thread."""
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "nothing") if executable == "missing" else "/bin/false")
    with caplog.at_level(logging.INFO, logger="medseg.inference"):
        pred = Predictor(str(_saved(tmp_path)), device="cpu", warm_up="background")
        assert pred.wait_backends(WAIT)
    assert pred.backends == ["onnxruntime"]
    said = {"missing": "cannot start", "not python": "the child process ended with exit 1"}[executable]
    assert f"a child process cannot rebuild it: {said}" in caplog.text


def test_the_app_predictor_exports_in_a_child_process(tmp_path, monkeypatch):
    """The Predict dock's builder as the viewer runs it: the export never in the viewer's process."""
    from napari_medseg._predict_model import ModelChoice, build_predictor

    old = torch.get_num_threads()
    calls = _no_export_here(monkeypatch)
    try:
        pred = build_predictor(ModelChoice(checkpoints=(str(tiny_checkpoint(tmp_path, "Unet")),), device="cpu"))
        assert pred.predict(_image()).meta["backend"] == "torch"
        assert pred.wait_backends(WAIT) and pred.predict(_image()).meta["backend"] == "onnxruntime"
    finally:
        torch.set_num_threads(old)
    assert not calls


def test_a_file_onnxruntime_refuses_is_exported_again_in_the_child(tmp_path, monkeypatch, caplog):
    """A cached file that matches its name but does not load is exported again the way the first one was: by the
    child process, never in the viewer's."""
    calls = _no_export_here(monkeypatch)
    real, refused = backend.make_session, []

    def refuse_once(path, threads, *dims):
        if not refused:
            refused.append(path)
            raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : Load model from {path} failed")
        return real(path, threads, *dims)

    monkeypatch.setattr(backend, "make_session", refuse_once)
    with caplog.at_level(logging.WARNING):
        pred = Predictor(str(_saved(tmp_path)), device="cpu", warm_up="background")
        assert pred.wait_backends(WAIT)
    assert refused and "exporting again" in caplog.text
    assert pred.backends == ["onnxruntime"] and not calls


def test_an_export_asked_for_now_does_not_wait_behind_a_background_one(tmp_path):
    """A re-scoring's (or a batch's) export runs while a live prediction's export by a child process, at the
    lowest priority, holds the background exports' turn: on a busy machine a re-scoring waited behind it."""
    path, done = _saved(tmp_path), []
    with backend._CHILD_EXPORTS:  # a background export under way
        thread = threading.Thread(target=lambda: done.append(Predictor(str(path), device="cpu").backends), daemon=True)
        thread.start()
        thread.join(WAIT)
    assert done == [["onnxruntime"]]
