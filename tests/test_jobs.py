"""The job protocol itself: drive() always ends with one Result or one Cancelled, closes the job, and the
events survive a JSON round trip (how a training process streams them)."""

import json
import subprocess
import sys

import pytest

from medseg.errors import Cancelled, MedsegError, ReadError
from medseg.jobs import (
    CancelToken,
    Failed,
    Message,
    Progress,
    Result,
    Started,
    drive,
    event_from_dict,
    exit_code_of,
    run,
)


def counting(n, cancel=None, closed=None):
    yield Started("count", total=n)
    try:
        for i in range(n):
            if cancel is not None:
                cancel.check(i, n, "count", partial=i)
            yield Progress(i + 1, n, "count")
        return n * 10
    finally:
        if closed is not None:
            closed.append(True)


def test_return_value_becomes_the_result():
    events = list(drive(counting(3)))
    assert isinstance(events[0], Started) and events[0].total == 3
    assert [e.done for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert events[-1] == Result(30)
    assert run(counting(4)) == 40


def test_a_yielded_result_ends_the_job():
    def job():
        yield Result("made")
        yield Message("never seen")

    assert list(drive(job())) == [Result("made")]


def test_cancel_raised_by_the_job_becomes_its_last_event_and_the_job_is_closed():
    token, closed = CancelToken(), []
    seen = []
    for e in drive(counting(10, token, closed)):
        seen.append(e)
        if isinstance(e, Progress) and e.done == 2:
            token.set()
    assert isinstance(seen[-1], Cancelled)
    assert (seen[-1].done, seen[-1].total, seen[-1].partial) == (2, 10, 2)
    assert "after 2 of 10" in str(seen[-1])
    assert closed == [True]
    with pytest.raises(Cancelled):
        run(counting(10, token))


def test_drive_stops_a_job_that_never_checks_its_token():
    token, closed = CancelToken(), []
    seen = []
    for e in drive(counting(10, None, closed), token):
        seen.append(e)
        if isinstance(e, Progress) and e.done == 3:
            token.set()
    assert isinstance(seen[-1], Cancelled) and seen[-1].done == 3
    assert closed == [True]  # the job's finally ran in this thread


def test_errors_pass_through_and_close_the_job():
    closed = []

    def job():
        try:
            yield Progress(0, 1)
            raise ReadError("/data/x.png", "truncated")
        finally:
            closed.append(True)

    with pytest.raises(ReadError, match="x.png: truncated"):
        run(job())
    assert closed == [True]


def test_exit_codes():
    assert exit_code_of(Cancelled()) == 130
    assert exit_code_of(KeyboardInterrupt()) == 130
    assert exit_code_of(ReadError("a", "b")) == 2
    assert exit_code_of(MedsegError("x")) == 2
    assert exit_code_of(ZeroDivisionError()) == 1


def test_events_round_trip_through_json():
    for e in (
        Started("train", 5, {"lr": 0.1}),
        Progress(2, None, "decode", "a.png"),
        Message("skip", "warning"),
        Failed.from_exception(ReadError("a.png", "bad")),
    ):
        back = event_from_dict(json.loads(e.to_json()))
        assert back == e
    assert Failed.from_exception(ReadError("a.png", "bad")).exit_code == 2
    with pytest.raises(ValueError, match="unknown job event"):
        event_from_dict({"event": "nonsense"})


def test_the_protocol_imports_no_torch():
    code = "import sys, medseg.jobs; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_cancel_between_events_is_thrown_into_the_job_so_it_can_say_what_it_kept():
    def job(kept):
        try:
            for i in range(10):
                kept.append(i)
                yield Progress(i + 1, 10)
        except Cancelled as c:  # thrown in at the yield by drive()
            raise Cancelled(f"stopped with {len(kept)} kept", c.done, 10, partial=list(kept)) from None

    token, kept = CancelToken(), []
    seen = []
    for e in drive(job(kept), token):
        seen.append(e)
        if isinstance(e, Progress) and e.done == 2:
            token.set()
    assert isinstance(seen[-1], Cancelled) and seen[-1].partial == [0, 1] and seen[-1].done == 2
    assert str(seen[-1]) == "stopped with 2 kept"


def test_a_job_that_winds_down_after_a_cancel_has_its_last_events_relayed():
    """A job that cannot stop at once (a training child finishing its step) catches the thrown Cancelled,
    goes on yielding, and ends with its own Cancelled: every event on the way is relayed, none dropped."""

    def job(closed):
        stopping = False
        try:
            for i in range(10):
                try:
                    yield Progress(i + 1, 10, "step")
                except Cancelled:
                    stopping = True  # e.g. ask the child to stop; it still reports its step and checkpoint
                if stopping:
                    yield Message(f"checkpoint after step {i + 1}")
                    raise Cancelled("stopped", i + 1, 10, partial={"checkpoint": f"step{i + 1}"})
        finally:
            closed.append(True)

    token, closed, seen = CancelToken(), [], []
    for e in drive(job(closed), token):
        seen.append(e)
        if isinstance(e, Progress) and e.done == 3:
            token.set()
    assert [type(e).__name__ for e in seen] == ["Progress"] * 3 + ["Message", "Cancelled"]
    assert seen[-2].text == "checkpoint after step 3" and seen[-1].partial == {"checkpoint": "step3"}
    assert closed == [True]

    def finishes_anyway():  # the work was done meanwhile: its result is the outcome
        try:
            yield Progress(1, 1)
        except Cancelled:
            yield Result("done")

    token = CancelToken()
    assert run(finishes_anyway(), token, on_event=lambda e: token.set()) == "done"
    events = list(drive(finishes_anyway(), token))
    assert len(events) == 1 and isinstance(events[0], Cancelled)  # set before it started: never ran


def test_on_set_calls_back_once_in_the_setting_thread():
    import threading

    token, calls = CancelToken(), []
    token.on_set(lambda: calls.append(threading.current_thread()))
    thread = threading.Thread(target=token.set)
    thread.start()
    thread.join()
    token.set()  # set again: no second call
    assert calls == [thread]
    token.on_set(lambda: calls.append("late"))  # already set: at once
    assert calls == [thread, "late"] and token.cancelled
