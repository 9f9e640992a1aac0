"""The napari progress bar wrapper: throttled, and a close from inside napari's own update waits for it."""

from __future__ import annotations

from napari.utils import progress

from napari_medseg._progress import INTERVAL_MS, Bar


def test_updates_are_throttled_and_the_last_value_is_shown_at_close(make_napari_viewer, qtbot, monkeypatch):
    make_napari_viewer()
    calls = []
    real = progress.update
    monkeypatch.setattr(progress, "update", lambda self, n=1: (calls.append(n), real(self, n))[1])
    bar = Bar("Testing", 1000)
    for k in range(1, 1001):  # a burst of events: a few updates, not a thousand
        bar.to(k)
    assert calls == []  # nothing inside the burst: the timer applies it
    qtbot.wait(2 * INTERVAL_MS)
    assert 1 <= len(calls) <= 2 and sum(calls) == 1000
    bar.to(1000, 1200, "Second stage")
    bar.close()  # pending values are shown first
    assert bar.closed and bar.last == (1000, 1200)
    bar.to(5)  # a late event after the end changes nothing
    assert bar.last == (1000, 1200)


def test_a_close_asked_inside_naparis_update_happens_after_it(make_napari_viewer, qtbot, monkeypatch):
    make_napari_viewer()
    bar = Bar("Testing", 10)
    order = []
    real = progress.update

    def update(self, n=1):
        # napari processes events here: the job's end arrives and its handler closes the bar
        bar.close()
        order.append(("closed inside", bar.closed))
        real(self, n)
        order.append(("updated", self.n))

    monkeypatch.setattr(progress, "update", update)
    bar.to(7)
    qtbot.wait(2 * INTERVAL_MS)
    assert order == [("closed inside", False), ("updated", 7)]
    assert bar.closed and bar.last == (7, 10)
