"""The work area follows the session's signals while it lives, and is never called once it is gone."""

import pytest

from napari_medseg._session import session_for
from napari_medseg._work_area import WorkArea

pytestmark = pytest.mark.gui


def test_the_work_area_refreshes_on_session_signals_until_it_is_destroyed(make_napari_viewer, qtbot, monkeypatch):
    calls = []
    monkeypatch.setattr(WorkArea, "refresh", lambda self, *_: calls.append(self))
    viewer = make_napari_viewer()
    area = WorkArea(viewer)
    session = session_for(viewer)
    # the docks read the model names in a worker: let it end inside the test, not at interpreter exit
    encoder = area.tools["Fine-tune"].form.encoder
    qtbot.waitUntil(lambda: "resnet18" in encoder.choices, timeout=60000)
    assert len(calls) == 1  # built showing the session as it is
    session.sample_changed.emit("3")
    session.revision_saved.emit("3", 2)
    session.scores_changed.emit("oof-k5")
    assert len(calls) == 4
    with qtbot.waitSignal(area.destroyed, timeout=5000):
        area.deleteLater()
    session.status_changed.emit("3", "accepted")
    assert len(calls) == 4
