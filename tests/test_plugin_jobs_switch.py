"""Export, re-score and prediction jobs: cancelled or switched away from, they keep the last good result.

Each job runs its real engine generator on a workspace of real CVC-ClinicDB frames; a ``Gate`` holds the
engine after a few of its events (a half-made workspace, a half-written export are then on disk) so that the
cancel lands while the job runs, whatever the machine's speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _job_gates import Gate, capture_infos, open_gates, spy_close
from _review_data import capture_errors, copy_cvc, open_dataset_widget

from medseg.workspace import Workspace
from napari_medseg._session import session_for

pytestmark = pytest.mark.gui
WAIT = 30000
FRAMES = (1, 2, 3, 120, 121, 300)


@pytest.fixture
def gates(monkeypatch):
    yield from open_gates(monkeypatch)


@pytest.fixture
def cvc(cvc_dir, tmp_path) -> Path:
    return copy_cvc(cvc_dir, tmp_path / "cvc", FRAMES)


# ------------------------------------------------------------------------------------------- export
def _export_widget(viewer, qtbot):
    from napari_medseg._export_widget import ExportWidget

    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    widget.form.statuses.value = ["unreviewed", "accepted", "corrected"]
    return widget


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cancelled_export_leaves_the_previous_export(make_napari_viewer, qtbot, cvc, gates, monkeypatch, tmp_path):
    import medseg.export as export

    errors = capture_errors(monkeypatch)
    ws = Workspace.create(tmp_path / "cvc.medseg", cvc)
    viewer = make_napari_viewer()
    session_for(viewer).set_workspace(ws)
    widget = _export_widget(viewer, qtbot)
    widget.form.out.value = tmp_path / "clean"
    assert widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    before, around = _tree(tmp_path / "clean"), sorted(p.name for p in tmp_path.iterdir())
    assert json.loads(before["manifest.json"])["counts"]["exported"] == len(FRAMES)

    ws.set_status("1", "excluded", reason="blurred")  # a new export would differ
    widget.form.overwrite.value = True
    gate = gates(export, "iter_export", after=2)
    assert widget.start()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    widget.cancel_button.click()
    gate.release.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert gates.log == ["engine closed"] and widget.result is None
    assert "Export cancelled" in widget.status.text() and errors == []
    assert _tree(tmp_path / "clean") == before  # the previous export, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == around  # no staging folder left
    session_for(viewer).set_workspace(None)


def test_switching_workspace_during_an_export_closes_it_after_the_export(
    make_napari_viewer, qtbot, cvc, gates, monkeypatch, tmp_path
):
    import medseg.export as export

    errors, infos = capture_errors(monkeypatch), capture_infos(monkeypatch)
    ws = Workspace.create(tmp_path / "cvc.medseg", cvc)
    other = Workspace.create(tmp_path / "other.medseg", copy_cvc(cvc, tmp_path / "o", (1,)))
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    widget = _export_widget(viewer, qtbot)
    widget.form.out.value = tmp_path / "clean"
    spy_close(monkeypatch, ws, session, gates.log)
    gate = gates(export, "iter_export", after=2)
    assert widget.start()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    session.set_workspace(other)
    assert session.workspace is other and "close" not in gates.log  # not under the running export
    assert len(infos) == 1 and f"Export to {tmp_path / 'clean'}" in infos[0] and str(ws.root) in infos[0]
    gate.release.set()
    qtbot.waitUntil(lambda: "close" in gates.log, timeout=WAIT)
    assert gates.log == ["engine closed", "close", ("running at close", [])]
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert errors == [] and "Export cancelled" in widget.status.text()
    assert not (tmp_path / "clean").exists()
    with pytest.raises(Exception, match="closed"):
        ws.sample_ids()
    session.set_workspace(None)


# ------------------------------------------------------------------------------------------- re-score
@pytest.fixture
def scoring(make_napari_viewer, qtbot, cvc, tmp_path):
    """A Fine-tune widget with a tiny PlainUNet as its checkpoint, on a CVC workspace with earlier scores."""
    from napari_medseg._torch_guard import load_torch

    load_torch()  # earlier tests' viewers made a GL context: torch (and the model below) without triton
    from _predict_data import tiny_unet

    from napari_medseg._finetune_widget import FinetuneWidget

    ws = Workspace.create(tmp_path / "cvc.medseg", cvc)
    earlier = {sid: 0.25 for sid in ws.sample_ids()}
    ws.set_scores("checkpoint", earlier)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    widget = FinetuneWidget(viewer)
    qtbot.addWidget(widget)
    widget.checkpoint = str(tiny_unet(tmp_path / "ckpt"))
    widget._sync()
    yield widget, session, ws, earlier
    session.set_workspace(None)


def test_cancelled_rescore_keeps_the_previous_scores(qtbot, scoring, gates, monkeypatch):
    import medseg.qc.ranking as ranking

    errors = capture_errors(monkeypatch)
    widget, session, ws, earlier = scoring
    gate = gates(ranking, "iter_score_checkpoint", after=2)
    changed = []
    session.scores_changed.connect(changed.append)
    widget.rescore_button.click()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    assert widget.rescore_button.text() == "Cancel re-scoring" and widget.rescore_button.isEnabled()
    widget.rescore_button.click()  # while it runs, the button cancels it
    gate.release.set()
    qtbot.waitUntil(lambda: widget.score_worker is None, timeout=WAIT)
    assert gates.log == ["engine closed"] and len(gate.passed) < len(FRAMES)
    assert ws.scores("checkpoint") == earlier and changed == [] and errors == []
    assert "cancelled" in widget.status.text() and widget.rescore_button.text() == "Re-score the queue"

    widget.rescore_button.click()  # not cancelled, it replaces them
    gate.release.set()
    qtbot.waitUntil(lambda: widget.score_worker is None, timeout=WAIT)
    assert changed == ["checkpoint"] and set(ws.scores("checkpoint")) == set(earlier)
    assert ws.scores("checkpoint") != earlier


def test_switching_workspace_during_a_rescore_closes_it_after(qtbot, scoring, gates, monkeypatch):
    import medseg.qc.ranking as ranking

    errors, infos = capture_errors(monkeypatch), capture_infos(monkeypatch)
    widget, session, ws, earlier = scoring
    spy_close(monkeypatch, ws, session, gates.log)
    gate = gates(ranking, "iter_score_checkpoint", after=1)
    assert widget.rescore()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    session.set_workspace(None)
    assert len(infos) == 1 and "Re-scoring the queue with unet.medseg" in infos[0] and "Closing" in infos[0]
    assert "close" not in gates.log
    gate.release.set()
    qtbot.waitUntil(lambda: "close" in gates.log, timeout=WAIT)
    assert gates.log == ["engine closed", "close", ("running at close", [])]
    qtbot.waitUntil(lambda: widget.score_worker is None, timeout=WAIT)
    assert errors == [] and "cancelled" in widget.status.text()
    with Workspace.open(ws.root) as again:
        assert again.scores("checkpoint") == earlier


# ------------------------------------------------------------------------------------------- predict
def test_switching_workspace_cancels_the_prediction_of_its_sample(
    make_napari_viewer, qtbot, cvc, tmp_path, monkeypatch
):
    from _predict_data import tiny_unet

    import napari_medseg._predict_requests as requests
    from napari_medseg._predict_widget import PredictWidget
    from napari_medseg._session import PREDICTION_LAYER

    errors, infos = capture_errors(monkeypatch), capture_infos(monkeypatch)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, cvc)
    log: list = []
    gate = None
    real_build = requests.build_predictor

    def build(choice):
        nonlocal gate
        predictor = real_build(choice)
        gate = Gate(predictor.iter_predict, log, after=1)
        predictor.iter_predict = gate
        return predictor

    monkeypatch.setattr(requests, "build_predictor", build)
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    widget.settings.tile.value = 64  # 288x384 in 64-pixel tiles: many tile batches
    widget.set_checkpoints([tiny_unet(tmp_path / "ckpt")])
    try:
        assert widget.request(force=True)
        qtbot.waitUntil(lambda: gate is not None and gate.reached.is_set(), timeout=WAIT)
        session.set_workspace(None)
        assert len(infos) == 1 and "Prediction of 'medseg image'" in infos[0]
    finally:
        if gate is not None:
            gate.release.set()
    qtbot.waitUntil(lambda: not widget.queue.busy, timeout=WAIT)
    assert widget.queue.counts.cancelled == 1 and widget.queue.counts.shown == 0
    assert PREDICTION_LAYER not in viewer.layers and errors == []
    assert type(gate.passed[-1]).__name__ == "Cancelled"  # the Predictor stopped at its next tile batch
