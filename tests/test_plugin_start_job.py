"""The plugin's one worker wrapper (napari_medseg._jobs.start_job): an engine job runs in a thread worker, its
progress reaches a napari bar, its end the dock's handlers on the main thread, a cancel stops it mid-way."""

import threading

import pytest

from medseg.errors import ReadError
from medseg.jobs import Message, Progress, Started
from napari_medseg._jobs import JobFailed, Jobs, start_job

pytestmark = pytest.mark.gui


def counting(n, token, gate=None, seen_threads=None):
    if seen_threads is not None:
        seen_threads.append(threading.current_thread())
    yield Started("count", n)
    for i in range(n):
        if gate is not None and i:
            gate.wait(5)  # the test cancels while the job waits here
        token.check(i, n, "count")
        yield Progress(i + 1, n, "count")
    yield Message("all counted")
    return n * 2


def run(qtbot, jobs, make, **handlers):
    calls = {k: [] for k in ("event", "result", "cancelled", "error", "finished")}
    handle = start_job(
        jobs,
        make,
        "Counting",
        on_event=calls["event"].append,
        on_result=calls["result"].append,
        on_cancelled=calls["cancelled"].append,
        on_error=calls["error"].append,
        on_finished=lambda: calls["finished"].append(True),
        **handlers,
    )
    return handle, calls


def test_a_job_runs_off_the_main_thread_and_its_result_arrives(qtbot):
    jobs, threads = Jobs(), []
    handle, calls = run(qtbot, jobs, lambda token: counting(4, token, seen_threads=threads))
    assert jobs.running() == [handle.job]
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert threads and threads[0] is not threading.main_thread()
    assert calls["result"] == [8] and not calls["cancelled"] and not calls["error"]
    assert [e.done for e in calls["event"] if isinstance(e, Progress)] == [1, 2, 3, 4]
    assert any(isinstance(e, Message) for e in calls["event"])
    assert handle.bar.closed and handle.bar.last[1] == 4
    assert jobs.running() == []


def test_cancel_stops_the_job_mid_way(qtbot):
    jobs, gate = Jobs(), threading.Event()
    handle, calls = run(qtbot, jobs, lambda token: counting(50, token, gate))
    qtbot.waitUntil(lambda: any(isinstance(e, Progress) for e in calls["event"]), timeout=10000)
    assert handle.cancel()
    gate.set()
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert not calls["result"] and len(calls["cancelled"]) == 1
    assert calls["cancelled"][0].done == 1 and calls["cancelled"][0].total == 50
    assert not handle.cancel()  # ended


def test_an_engine_error_reaches_on_error_and_a_runtime_error_is_not_swallowed(qtbot):
    def failing(token, exc):
        yield Progress(0, 1)
        raise exc

    # a RuntimeError (torch's failures) arrives as JobFailed: superqt would take it for a deleted worker
    for exc, kind in (
        (ReadError("/data/a.png", "truncated"), ReadError),
        (RuntimeError("CUDA out of memory"), JobFailed),
    ):
        jobs = Jobs()
        handle, calls = run(qtbot, jobs, lambda token, exc=exc: failing(token, exc))
        qtbot.waitUntil(lambda calls=calls: bool(calls["finished"]), timeout=10000)
        assert len(calls["error"]) == 1 and isinstance(calls["error"][0], kind)
        assert str(exc) in str(calls["error"][0])
        assert not calls["result"] and jobs.running() == []


def test_a_job_that_must_finish_cannot_be_stopped(qtbot):
    jobs = Jobs()
    handle, calls = run(qtbot, jobs, lambda token: counting(3, token), stoppable=False, progress=False)
    assert not handle.cancel()
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert calls["result"] == [6]


def test_a_caller_supplied_token_stops_the_job_and_the_job_without_a_session_runs(qtbot):
    from medseg.jobs import CancelToken

    token, gate = CancelToken(), threading.Event()
    handle, calls = run(qtbot, None, lambda t: counting(50, t, gate), token=token, progress=False)
    assert handle.token is token and handle.bar is None
    qtbot.waitUntil(lambda: any(isinstance(e, Progress) for e in calls["event"]), timeout=10000)
    token.set()  # the caller's own handle on it (a prediction request), not handle.cancel()
    gate.set()
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert len(calls["cancelled"]) == 1 and calls["cancelled"][0].done == 1 and not calls["result"]


def test_a_plain_function_runs_as_a_job_and_its_error_reaches_the_dock(qtbot):
    from medseg.errors import WorkspaceError
    from napari_medseg._jobs import call

    def read(sid, scale=1):
        if sid == "missing":
            raise WorkspaceError(f"no sample {sid!r}")
        return (threading.current_thread(), sid * scale)

    jobs = Jobs()
    handle, calls = run(qtbot, jobs, lambda token: call(read, "ab", scale=2), stoppable=False, progress=False)
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    [(thread, value)] = calls["result"]
    assert value == "abab" and thread is not threading.main_thread() and calls["event"] == []
    handle, calls = run(qtbot, jobs, lambda token: call(read, "missing"), stoppable=False, progress=False)
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert [str(e) for e in calls["error"]] == ["no sample 'missing'"] and not calls["result"]


def test_a_result_that_arrives_after_the_cancel_is_the_outcome(qtbot):
    """The cancel came while the job put its result in place: the work is done, so it is the job's end."""
    from medseg.jobs import Result

    inside, finish, closed = threading.Event(), threading.Event(), []

    def finishing(token):
        try:
            yield Progress(1, 2)
            inside.set()
            finish.wait(5)  # the test cancels here, while the result is being made
            yield Result("in place")
        finally:
            closed.append(True)

    handle, calls = run(qtbot, Jobs(), finishing)
    qtbot.waitUntil(inside.is_set, timeout=10000)
    assert handle.cancel()
    finish.set()
    qtbot.waitUntil(lambda: bool(calls["finished"]), timeout=10000)
    assert calls["result"] == ["in place"] and not calls["cancelled"] and closed == [True]


def test_start_job_is_the_plugins_only_worker_wrapper():
    """Every thread worker of the plugin goes through start_job (registered, stoppable, errors reported the
    same way): napari's worker factories appear nowhere else in napari_medseg."""
    import ast
    from pathlib import Path

    import napari_medseg

    banned = {"create_worker", "thread_worker", "FunctionWorker", "GeneratorWorker"}
    found = []
    for path in sorted(Path(napari_medseg.__file__).parent.glob("*.py")):
        if path.name == "_jobs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom)
                else [node.attr]
                if isinstance(node, ast.Attribute)
                else [node.id]
                if isinstance(node, ast.Name)
                else []
            )
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n in banned]
    assert found == []
    assert "create_worker" in (Path(napari_medseg.__file__).parent / "_jobs.py").read_text()  # the scan looks
