"""The CLI's one job runner: a job's result returned, its messages on stderr, the first SIGINT cancels the job
at its next step (Cancelled, exit 130 through medseg.cli.main), a second aborts at once."""

import os
import signal

import pytest

from medseg.cli.progress import Bar, run_job
from medseg.errors import Cancelled
from medseg.jobs import Message, Progress, Started


def job(n, token, interrupt_at=None, interrupts=1):
    yield Started("count", n)
    for i in range(n):
        token.check(i, n, "count")
        if i == interrupt_at:
            for _ in range(interrupts):
                os.kill(os.getpid(), signal.SIGINT)
        yield Progress(i + 1, n, "count", item=f"item{i}")
    yield Message("skipped b.png: truncated", "warning")
    return "done"


def test_result_and_messages(capsys):
    seen = []
    assert run_job(lambda token: job(3, token), what="count", on_event=seen.append) == "done"
    assert [e.done for e in seen if isinstance(e, Progress)] == [1, 2, 3]
    assert "warning: skipped b.png: truncated" in capsys.readouterr().err


def test_quiet_hides_info_but_not_warnings(capsys):
    def chatty(token):
        yield Message("indexing")
        yield Message("a.png unreadable", "warning")
        return 1

    run_job(chatty, quiet=True)
    err = capsys.readouterr().err
    assert "indexing" not in err and "warning: a.png unreadable" in err


def test_first_sigint_cancels_at_the_next_step(capsys):
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(Cancelled) as stop:
        run_job(lambda token: job(10, token, interrupt_at=2), what="count")
    assert (stop.value.done, stop.value.total) == (3, 10)
    assert "SIGINT: stopping after the current step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back


def test_second_sigint_aborts_at_once():
    with pytest.raises(KeyboardInterrupt):
        run_job(lambda token: job(10, token, interrupt_at=1, interrupts=2))


def test_a_cancelled_command_exits_130(monkeypatch, tmp_path, capsys):
    import medseg.cli.index as index_cli
    from medseg.cli import main

    def cancelled(args):
        return run_job(lambda token: job(10, token, interrupt_at=0))

    monkeypatch.setattr(index_cli, "cmd_index", cancelled)
    assert main(["index", str(tmp_path)]) == 130
    assert "count cancelled after 1 of 10" in capsys.readouterr().err


def test_bar_restarts_per_stage():
    bar = Bar("rank", quiet=False)
    assert bar.enabled and bar.bar is None  # tqdm is a dependency; no empty bar before the job starts
    bar(Started("rank", 8))
    assert bar.bar.total == 8
    bar(Progress(3, 8, "fold 1/2 train"))
    bar(Progress(1, 5, "fold 1/2 score"))
    assert (bar.bar.n, bar.bar.total) == (1, 5)
    assert "score" in bar.bar.desc
    bar.close()
