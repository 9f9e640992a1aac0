"""The Review panel says which signals put a sample where it is, with their reliability measured here (issue 17)."""

from __future__ import annotations

import pytest
from _review_data import make_review_set, open_dataset_widget, wait_for_queue, wait_for_sample

from medseg.qc.reliability import Calibration, save
from medseg.qc.signals import SIGNALS, Signal
from napari_medseg._review_widget import ReviewWidget

pytestmark = pytest.mark.gui
MODEL = {"1": 0.9, "2": 0.2, "3": 0.7, "4": 0.05, "5": 0.5, "6": 0.95}  # a model the calibration found useless
SIZE = {"1": 0.4, "2": 1.0, "3": 0.0, "4": 0.6, "5": 0.2, "6": 0.8}  # stored percentiles of a reliable signal


def test_rows_and_panel_name_the_reliable_signal_and_say_the_useless_model_counts_nothing(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    signal = Signal("t-size", "object size", "an object of an unusual size", ("foreground",), lambda *a: None)
    monkeypatch.setitem(SIGNALS, signal.method, signal)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, make_review_set(tmp_path / "set"))
    ws = session.workspace
    heads = {r.id: r.head_revision for r in ws.samples()}
    ws.set_scores(signal.method, SIZE, {s: {"raw": v, "revision": heads[s]} for s, v in SIZE.items()})
    ws.set_scores("oof-k5", MODEL, {s: {"dice": v, "out_of_fold": True} for s, v in MODEL.items()})
    cal = Calibration(
        {signal.method: 3.0, "oof-k5": 0.0},
        -1.0,
        {signal.method: 0.91, "oof-k5": 0.48},
        {signal.method: 0.87, "oof-k5": 0.15},
        40,
        "oof-k5",
    )
    save(ws.root, {"pairs": [], "signals": [signal.method], "calibrations": {"oof-k5": cal.to_dict()}})
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(widget, ReviewWidget)
    session.scores_changed.emit("oof-k5")
    wait_for_queue(qtbot, widget)
    # the useless model counts nothing: the queue follows the reliable signal (3 worst, then 5, 1, ...)
    assert widget.queue_ids() == ["3", "5", "1", "4", "6", "2"]
    tip = widget.queue.item(0).toolTip()
    assert "an object of an unusual size (a signal that finds 87% of planted errors here)" in tip
    assert "not counted: it told planted errors from the labels here at AUROC 0.48" in tip
    from qtpy.QtCore import Qt

    first = widget.queue.visualItemRect(widget.queue.item(0)).center()
    qtbot.mouseClick(widget.queue.viewport(), Qt.MouseButton.LeftButton, pos=first)
    wait_for_sample(qtbot, session, "3")
    qtbot.waitUntil(lambda: "an object of an unusual size" in widget.details.text(), timeout=5000)
    assert "a signal that finds 87% of planted errors here" in widget.details.text()
