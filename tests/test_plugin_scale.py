"""Large workspaces in the app: the Samples table holds a few pages of rows, never every sample; the review
queue draws only the rows on screen and moves along the queue without walking it (issue 19 item 4). A check
of the design on 2,000 samples, not of the clock (benchmarks/bench_app_scale.py times 100,000)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from _review_data import open_dataset_widget, wait_for_queue, wait_for_sample
from PIL import Image

from medseg.qc.queue import review_queue
from medseg.workspace.records import ACCEPTED, UNREVIEWED
from napari_medseg import _queue_list, _review_text, _sample_table
from napari_medseg._queue_list import QueueOrder

pytestmark = pytest.mark.gui
N = 2000


def _frames(root, n: int = N):
    """``n`` 16x16 frames f0000000.png... with a square mask each (its size varies)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((16, 16), np.uint8)
        mask[4 : 6 + i % 8, 4 : 6 + i % 7] = 255
        image = (np.arange(256, dtype=np.uint8).reshape(16, 16) // 4 + mask // 2).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"f{i:07d}.png", compress_level=1)
        Image.fromarray(mask).save(root / "masks" / f"f{i:07d}.png", compress_level=1)
    return root


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return _frames(tmp_path_factory.mktemp("scale") / "frames")


def test_samples_table_holds_a_few_pages_while_scrolling_and_selecting(make_napari_viewer, qtbot, frames, monkeypatch):
    monkeypatch.setattr(_sample_table, "MAX_PAGES", 3)  # 384 rows at most, far below the 2,000 listed
    cap = 3 * _sample_table.PAGE
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, frames)
    ws, table, model = session.workspace, widget.samples, widget.samples.sample_model
    assert model.rowCount() == N and session.sample_id == "f0000000"
    assert 0 < model.rows_held <= cap  # the open read the pages in view
    held = []
    for row in range(0, N, 150):  # scroll through the whole list
        table.scrollTo(model.index(row, 0))
        qtbot.wait(5)
        assert table.text(row, 0) == f"f{row:07d}"
        held.append(model.rows_held)
    assert max(held) <= cap and model.rows_read < 2 * N
    assert table.text(N - 1, 2) == ws.sample(f"f{N - 1:07d}").group

    # a sample chosen elsewhere (the review queue) is selected in the table without reading the rows before it
    before = model.rows_read
    from napari_medseg._sample_layers import show_sample

    show_sample(viewer, "f0001500")
    wait_for_sample(qtbot, session, "f0001500")
    assert table.currentRow() == 1500 and model.rows_read - before <= 2 * _sample_table.PAGE
    # a status set while reviewing shows in its held row
    ws.set_status("f0001500", ACCEPTED)
    session.status_changed.emit("f0001500", ACCEPTED)
    assert table.text(1500, 1) == ACCEPTED and model.rows_held <= cap
    # selecting a row far down shows that sample
    table.selectRow(1999)
    wait_for_sample(qtbot, session, "f0001999")


def test_review_queue_draws_rows_on_screen_and_moves_without_walking(make_napari_viewer, qtbot, frames, monkeypatch):
    lines = []
    item_line = _review_text.item_line
    monkeypatch.setattr(_review_text, "item_line", lambda item, k: lines.append(k) or item_line(item, k))
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, frames)
    ws = session.workspace
    rng = random.Random(0)
    ws.set_scores("oof-k5", {sid: rng.random() for sid in ws.sample_ids()})
    for sid in ws.sample_ids()[::3]:  # a third already reviewed
        ws.set_status(sid, ACCEPTED)
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    wait_for_queue(qtbot, review)
    expected = [item.sample_id for item in review_queue(ws, method="oof-k5")]
    assert review.queue.count() == N and review.queue_ids() == expected
    assert len(lines) < N // 10  # only the rows in view were made into lines (a list widget made all 2,000)
    assert review.queue.item(0).text().startswith(f"1. {expected[0]} ")

    # Next, Previous and First unreviewed go along the queue without listing it
    panel = review.panel

    def walked():
        raise AssertionError("a move listed the whole queue")

    monkeypatch.setattr(panel, "queue_ids", walked)
    monkeypatch.setattr(QueueOrder, "ids", lambda self: walked())
    panel.show(expected[1000])
    wait_for_sample(qtbot, session, expected[1000])
    wait_for_queue(qtbot, review)
    review.next_sample()
    wait_for_sample(qtbot, session, expected[1001])
    review.previous_sample()
    wait_for_sample(qtbot, session, expected[1000])
    assert review.position.text() == f"1001 of {N}"
    status = {sid: ws.sample(sid).status for sid in expected}
    first = next(s for s in expected if status[s] == UNREVIEWED)
    assert panel.first_unreviewed()
    wait_for_sample(qtbot, session, first)


def _reference(ids: list[str], status: dict, current: str | None, at: int, wanted_any: bool):
    """What the queue panel did before it was indexed: the queue without the current sample, walked."""
    others = [i for i in ids if i != current]
    after = [s for s in others[at:] if wanted_any or status[s] == UNREVIEWED]
    left = [s for s in others if status[s] == UNREVIEWED]
    return after[0] if after else None, len(left), left[0] if left else None


def test_queue_order_answers_what_walking_the_queue_did():
    """QueueOrder's lookups and bisections give the sample the old walk over the queue gave, at every place."""
    rng = random.Random(1)

    class Item:
        def __init__(self, sid, status):
            self.sample_id, self.status = sid, status

    items = [Item(f"s{k}", rng.choice([UNREVIEWED, UNREVIEWED, ACCEPTED, "excluded"])) for k in range(300)]
    for statuses in (None, [UNREVIEWED], [ACCEPTED]):
        order = QueueOrder(items, statuses)
        ids = [i.sample_id for i in items if statuses is None or i.status in statuses]
        status = {i.sample_id: i.status for i in items}
        assert order.ids() == ids and set(order.all) == {i.sample_id for i in items}
        for current in [None, *ids[::7], items[5].sample_id]:
            c = order.index.get(current)
            n = len(ids) - (c is not None)
            for at in range(0, n + 1, 5):
                want, count, first = _reference(ids, status, current, at, statuses is not None)
                start = at if c is None or at < c else at + 1
                got = None
                if at < n:
                    got = start if statuses is not None else order.unreviewed_from(start, skip=c)
                assert (order.items[got].sample_id if got is not None else None) == want
                assert order.unreviewed_count(c) == count
                k = order.unreviewed_from(0, skip=c)
                assert (order.items[k].sample_id if k is not None else None) == first


def test_queue_view_reads_rows_as_a_list_widget_does(qtbot):
    view = _queue_list.QueueView(4)
    qtbot.addWidget(view)

    class Item:
        def __init__(self, sid):
            self.sample_id, self.status, self.priority, self.signals, self.reason = sid, UNREVIEWED, 0.25, (), "odd"

    view.queue_model.set_order(QueueOrder([Item("a"), Item("b")]))
    assert view.count() == 2 and view.item(2) is None
    assert view.item(1).text() == "2. b · unreviewed · 0.25" and view.item(1).toolTip() == "priority 0.25: odd"
    view.setCurrentRow(1)
    assert view.currentIndex().row() == 1
