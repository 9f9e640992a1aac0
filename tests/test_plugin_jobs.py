"""Jobs started from the app can be cancelled, and a workspace is closed only after every job on it has ended.

Each job runs its real engine generator on a workspace of real CVC-ClinicDB frames; a ``Gate`` holds the
engine after a few of its events (a half-made workspace, a half-written export are then on disk) so that the
cancel lands while the job runs, whatever the machine's speed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from _job_gates import open_gates, spy_close
from _review_data import capture_errors, copy_cvc, open_dataset_widget

from medseg.qc.findings import Finding
from medseg.workspace import Workspace
from napari_medseg._jobs import JobFailed, Jobs, start_job
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


# ------------------------------------------------------------------------------------------- registry
def test_a_runtime_error_in_a_job_reaches_errored_and_finished(qtbot):
    """superqt's GeneratorWorker takes a RuntimeError for a deleted worker: only a warning, no ``errored``,
    no ``finished`` (a registry waiting on it would wait for ever). ``start_job`` passes it on as JobFailed."""

    def engine(token):
        yield 1
        raise RuntimeError("shapes do not match")

    jobs, errors = Jobs(), []
    handle = start_job(jobs, engine, "failing job", progress=False, on_error=errors.append)
    qtbot.waitUntil(lambda: handle.job.ended, timeout=WAIT)
    assert len(errors) == 1 and isinstance(errors[0], JobFailed) and "shapes do not match" in str(errors[0])
    assert jobs.running() == []


def test_the_registry_waits_for_every_job_and_cancels_only_those_that_can_stop(qtbot):
    from napari.qt.threading import create_worker

    ws = object()
    go = {name: threading.Event() for name in ("save", "export", "other")}

    def body(name):
        go[name].wait(30)
        return name

    jobs, stopped, closed = Jobs(), [], []
    workers = {n: create_worker(body, n, _start_thread=False, _ignore_errors=True) for n in go}
    save = jobs.add(workers["save"], "Saving a revision", ws)  # must run to its end
    export = jobs.add(workers["export"], "Export", ws, lambda: (stopped.append("export"), go["export"].set()))
    other = jobs.add(workers["other"], "Elsewhere", object(), go["other"].set)
    for w in workers.values():
        w.start()
    assert jobs.cancel(ws) == [export] and stopped == ["export"] and not save.cancelled
    assert not other.cancelled and set(jobs.running(ws)) == {save, export}
    jobs.after(ws, lambda: closed.append(ws))
    qtbot.waitUntil(lambda: export.ended, timeout=WAIT)
    qtbot.wait(50)
    assert closed == []  # the save still runs
    go["save"].set()
    qtbot.waitUntil(lambda: closed == [ws], timeout=WAIT)
    assert jobs.running(ws) == [] and jobs.running() == [other]
    go["other"].set()
    qtbot.waitUntil(lambda: other.ended, timeout=WAIT)
    jobs.after(ws, lambda: closed.append("now"))  # nothing runs on it: at once
    assert closed == [ws, "now"]


# ------------------------------------------------------------------------------------------- open / create
def test_cancelled_create_leaves_no_workspace(make_napari_viewer, qtbot, cvc, gates, monkeypatch):
    import medseg.workspace.create as create

    errors = capture_errors(monkeypatch)
    gate = gates(create, "iter_create", after=5)  # Started, the indexing line and event, two samples imported
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Dataset")
    widget.set_folder(cvc)
    target = widget.form.workspace.value
    widget.open_button.click()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    assert (target / "workspace.sqlite").is_file()  # half made
    assert widget.cancel_button.isEnabled() and not widget.open_button.isEnabled()
    widget.cancel_button.click()
    gate.release.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert gates.log == ["engine closed"] and len(gate.passed) < len(FRAMES) + 2
    assert not target.exists() and session_for(viewer).workspace is None
    assert "cancelled" in widget.status.text() and errors == []
    assert widget.open_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert sorted(p.name for p in (cvc / "masks").iterdir()) == sorted(f"{k}.png" for k in FRAMES)

    # reopening an existing workspace: a cancel during the source check closes it as soon as it is open
    Workspace.create(target, cvc).close()
    real_open, opened, reached, release = Workspace.open, [], threading.Event(), threading.Event()

    def slow_open(path, **kw):
        reached.set()
        release.wait(60)
        ws = real_open(path, **kw)
        opened.append(ws)
        return ws

    monkeypatch.setattr(Workspace, "open", slow_open)
    widget.open_button.click()
    qtbot.waitUntil(reached.is_set, timeout=WAIT)
    widget.cancel()
    release.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert session_for(viewer).workspace is None and "no workspace was created or opened" in widget.status.text()
    with pytest.raises(Exception, match="closed"):
        opened[0].sample_ids()
    assert errors == []


# ------------------------------------------------------------------------------------------- QC
def test_cancelled_qc_keeps_the_previous_findings(make_napari_viewer, qtbot, cvc, gates, monkeypatch):
    import medseg.qc as qc

    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, cvc)
    ws = session.workspace
    previous = Finding("1", "holes", "warning", "from the previous run")
    ws.add_findings([previous], source="qc")
    changed = []
    session.findings_changed.connect(changed.append)
    gate = gates(qc, "run_qc", after=3)
    widget.qc_button.click()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    assert widget.cancel()
    gate.release.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert gates.log == ["engine closed"] and not any(type(e).__name__ == "QCReport" for e in gate.passed)
    assert [(f.sample_id, f.check, f.message) for f in ws.findings(source="qc")] == [
        ("1", "holes", "from the previous run")
    ]
    assert changed == [] and widget.status.text() == "QC cancelled: the previous findings are kept."
    assert errors == [] and widget.qc_button.isEnabled()


# ------------------------------------------------------------------------------------------- viewer close
def test_closing_the_viewer_during_qc_cancels_it_then_closes_the_workspace(
    make_napari_viewer, qtbot, cvc, gates, monkeypatch
):
    from qtpy.QtGui import QCloseEvent

    import medseg.qc as qc
    from napari_medseg._viewer_access import _WATCHERS

    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, cvc)
    ws = session.workspace
    spy_close(monkeypatch, ws, session, gates.log)
    gate = gates(qc, "run_qc", after=2)
    widget.qc_button.click()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    # what Qt delivers to the window when the user closes napari
    _WATCHERS[viewer].eventFilter(viewer.window._qt_window, QCloseEvent())
    assert session.workspace is None and "close" not in gates.log
    gate.release.set()
    qtbot.waitUntil(lambda: "close" in gates.log, timeout=WAIT)
    assert gates.log == ["engine closed", "close", ("running at close", [])]
    with Workspace.open(ws.root) as again:
        assert again.findings(source="qc") == []
    assert errors == []


def test_closing_the_export_dock_cancels_its_export(make_napari_viewer, qtbot, cvc, gates, monkeypatch, tmp_path):
    import medseg.export as export

    errors = capture_errors(monkeypatch)
    ws = Workspace.create(tmp_path / "cvc.medseg", cvc)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Export")
    widget.form.statuses.value = ["unreviewed"]
    widget.form.out.value = tmp_path / "clean"
    gate = gates(export, "iter_export", after=2)
    assert widget.start()
    qtbot.waitUntil(gate.reached.is_set, timeout=WAIT)
    [job] = session.jobs.running(ws)
    destroyed = []
    widget.destroyed.connect(lambda *_: destroyed.append(True))
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    assert job.cancelled
    gate.release.set()
    qtbot.waitUntil(lambda: job.ended, timeout=WAIT)
    qtbot.wait(50)
    assert gates.log == ["engine closed"] and not (tmp_path / "clean").exists() and errors == []
    assert ws.sample_ids() == [str(k) for k in FRAMES]  # the workspace stays open: only the dock went
    session.set_workspace(None)
