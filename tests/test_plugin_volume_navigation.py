"""The Review dock leads to the flagged slices of a volume: the queue's volume opens on its first flagged slice,
the slices are listed with why, next / previous flagged slice (buttons and keys) and a click move the slider,
the user's own moves stand; a 2-D workspace shows no slice list and its keys do nothing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pytest
from _review_data import make_review_set, open_dataset_widget, wait_for_queue, wait_for_sample
from _volume_data import make_nnunet3d

from medseg.io.volume_geometry import label_image_like
from medseg.io.volume_labels import read_label_volume
from medseg.qc.checks_registry import CHECKS
from medseg.qc.run import qc
from napari_medseg._review_slices import NEXT_SLICE_KEY, PREVIOUS_SLICE_KEY
from napari_medseg._review_widget import ReviewWidget

pytestmark = pytest.mark.gui
GAP, PAINT = 4, 8  # the planted slices (display order, 12 slices per case; the middle one is 6)
MIDDLE = 6
METHOD = "oof-k2"
# the synthetic cases are one phantom with its own noise each: their images are near-duplicates, rightly
NOT_DUPLICATES = [c for c in CHECKS if "duplicate" not in c]


def _plant(root: Path, case: str, change) -> None:
    """Rewrite a case's label with ``change(display labels)`` applied, on its own grid."""
    path = root / "labelsTr" / f"{case}.nii.gz"
    labels, grid = read_label_volume(path)
    change(labels)
    nib.save(label_image_like(labels, root / "imagesTr" / f"{case}_0000.nii.gz", grid), str(path))


def _planted(root: Path) -> Path:
    """Three cases (display 12 x 36 x 40): 0 clean; 1 slice GAP left unlabelled (cutting the kidney leaves a
    stray piece on slices 2..3); 2 slice PAINT painted liver throughout."""
    make_nnunet3d(root, 3, (40, 36, 12))

    def gap(a):
        a[GAP] = 0

    def paint(a):
        a[PAINT] = 1

    _plant(root, "case_001", gap)
    _plant(root, "case_002", paint)
    return root


def _ranked(ws, skip=()) -> None:
    """Scores as an out-of-fold ranking stores them for volumes (medseg.qc.volume_scores' details): case_002's
    worst slice is its painted one; case_001's model puts slice 7 first and the gap second. ``skip``: cases
    left unscored."""
    heads = {r.id: r.head_revision for r in ws.samples()}

    def details(case, worst, scores):
        return {
            "out_of_fold": True,
            "revision": heads[case],
            "n_slices": 12,
            "n_judged": len(scores),
            "worst_k": 3,
            "worst_slices": worst,
            "slice_scores": {str(z): s for z, s in scores.items()},
            "slice_dice": {str(z): round(s + 0.05, 4) for z, s in scores.items()},
            "dice": 0.5,
        }

    planted = {
        "case_000": ([1, 2, 3], {1: 0.8, 2: 0.85, 3: 0.9, 5: 0.95}),
        "case_001": ([7, GAP, 0], {7: 0.21, GAP: 0.31, 0: 0.6, 5: 0.9}),
        "case_002": ([PAINT, 10, 1], {PAINT: 0.12, 10: 0.7, 1: 0.8, 5: 0.9}),
    }
    scores = {"case_000": 0.85, "case_001": 0.37, "case_002": 0.54}
    kept = [case for case in planted if case not in skip]
    ws.set_scores(METHOD, {c: scores[c] for c in kept}, {c: details(c, *planted[c]) for c in kept})


@pytest.fixture
def flagged(make_napari_viewer, qtbot, tmp_path):
    """A volume workspace with QC run and ranked, the Review dock docked and its queue built."""
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, _planted(tmp_path / "ds"))
    ws = session.workspace
    qc(ws, NOT_DUPLICATES, workers=1)
    _ranked(ws)
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(review, ReviewWidget)
    _settle(qtbot, review)
    return viewer, review, session


def _settle(qtbot, review) -> None:
    wait_for_queue(qtbot, review)
    qtbot.waitUntil(lambda: review.slices.pending is None, timeout=10000)


def _press(viewer, qtbot, key: str) -> None:
    """A key press on the canvas, as the user types it."""
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key)


def _slider(viewer) -> int:
    return int(viewer.dims.current_step[0])


def _open_first(viewer, review, qtbot, session) -> str:
    """Click the queue's first row, as the user does; the sample it opened."""
    from qtpy.QtCore import Qt

    first = review.queue_ids()[0]
    point = review.queue.visualItemRect(review.queue.item(0)).center()
    qtbot.mouseClick(review.queue.viewport(), Qt.MouseButton.LeftButton, pos=point)
    wait_for_sample(qtbot, session, first)
    _settle(qtbot, review)
    return first


def test_the_queue_s_first_volume_opens_on_its_planted_slice_and_keys_walk_its_flagged_slices(flagged, qtbot):
    viewer, review, session = flagged
    assert session.sample_id == "case_000" and _slider(viewer) == MIDDLE  # the Dataset dock opened it: the middle
    assert review.queue_ids() == ["case_001", "case_002", "case_000"]
    assert _open_first(viewer, review, qtbot, session) == "case_001"
    assert _slider(viewer) == GAP  # the planted gap, not the middle

    nav = review.slices
    assert not nav.isHidden() and [e.z for e in nav.entries] == [GAP, 3, 7, 0, 2]
    rows = [nav.list.item(k).text() for k in range(nav.list.count())]
    assert rows[0] == (
        f"slice {GAP}: warning: class missing on slice {GAP}; 2nd worst slice by the {METHOD} model "
        "(label quality 0.31, Dice 0.36)"
    )
    assert rows[1].startswith("slice 3: warning: 1 stray island")
    assert rows[2] == f"slice 7: the worst slice by the {METHOD} model (label quality 0.21, Dice 0.26)"
    assert nav.list.currentRow() == 0  # the slice on screen is marked

    _press(viewer, qtbot, NEXT_SLICE_KEY)
    assert _slider(viewer) == 3 and nav.list.currentRow() == 1
    nav.next_button.click()
    assert _slider(viewer) == 7 and "slice 7: the worst slice" in nav.note.text()
    _press(viewer, qtbot, PREVIOUS_SLICE_KEY)
    assert _slider(viewer) == 3
    nav.previous_button.click()
    assert _slider(viewer) == GAP
    nav.previous_button.click()  # the first entry: nowhere before it
    assert _slider(viewer) == GAP and nav.note.text() == "First flagged slice."

    # a click on an entry moves the slider there
    from qtpy.QtCore import Qt

    point = nav.list.visualItemRect(nav.list.item(3)).center()
    qtbot.mouseClick(nav.list.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert _slider(viewer) == 0 and nav.list.currentRow() == 3

    # the user's own move stands: a rebuilt queue and the sample's facts move nothing
    viewer.dims.set_current_step(0, 9)
    assert not nav.list.selectedItems()  # slice 9 is not flagged
    session.scores_changed.emit(METHOD)
    session.findings_changed.emit("qc")
    _settle(qtbot, review)
    assert _slider(viewer) == 9
    # from an unflagged slice, next goes on from the entry last moved to (slice 0, the 4th): the 5th
    _press(viewer, qtbot, NEXT_SLICE_KEY)
    assert _slider(viewer) == 2
    _press(viewer, qtbot, NEXT_SLICE_KEY)
    assert _slider(viewer) == 2 and nav.note.text() == "Last flagged slice."

    # the next sample in the queue opens on its painted slice, its model's worst
    _press(viewer, qtbot, ".")
    wait_for_sample(qtbot, session, "case_002")
    _settle(qtbot, review)
    assert _slider(viewer) == PAINT
    assert nav.entries[0].text == (
        f"slice {PAINT}: warning: slice {PAINT} unlike both neighbours; the worst slice by the {METHOD} model "
        "(label quality 0.12, Dice 0.17)"
    )


def test_a_volume_is_led_to_its_model_s_worst_slices_and_without_any_opens_at_its_middle(flagged, qtbot):
    viewer, review, session = flagged
    _open_first(viewer, review, qtbot, session)
    review.show("case_000")  # a clean case: only the model names slices, its worst first
    wait_for_sample(qtbot, session, "case_000")
    _settle(qtbot, review)
    assert _slider(viewer) == 1 and [e.z for e in review.slices.entries] == [1, 2, 3]
    assert review.slices.entries[0].reasons == (
        f"the worst slice by the {METHOD} model (label quality 0.80, Dice 0.85)",
    )
    # unscored, a clean case has no flagged slice: it opens at its middle and the panel says why
    _ranked(session.workspace, skip=("case_000",))
    session.scores_changed.emit(METHOD)
    _settle(qtbot, review)
    assert review.panel.item_of("case_000").slices == ()
    review.show("case_001")
    wait_for_sample(qtbot, session, "case_001")
    review.show("case_000")
    wait_for_sample(qtbot, session, "case_000")
    _settle(qtbot, review)
    nav = review.slices
    assert _slider(viewer) == MIDDLE and not nav.isHidden() and nav.entries == [] and nav.list.count() == 0
    assert nav.note.text().startswith("No slice of this volume is flagged")
    assert not nav.next_button.isEnabled() and not nav.previous_button.isEnabled()
    _press(viewer, qtbot, NEXT_SLICE_KEY)
    assert _slider(viewer) == MIDDLE and session.sample_id == "case_000"


def test_a_2d_workspace_shows_no_slice_list_and_its_keys_do_nothing(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, make_review_set(tmp_path / "set"))
    qc(session.workspace)
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    _settle(qtbot, review)
    first = review.queue_ids()[0]
    review.show(first)
    wait_for_sample(qtbot, session, first)
    _settle(qtbot, review)
    nav = review.slices
    assert nav.isHidden() and nav.entries == [] and review.panel.item_of(first).slices == ()
    step = tuple(viewer.dims.current_step)
    for key in (NEXT_SLICE_KEY, PREVIOUS_SLICE_KEY):
        _press(viewer, qtbot, key)
    assert nav.step(+1) is None and tuple(viewer.dims.current_step) == step and session.sample_id == first
    assert nav.isHidden()
