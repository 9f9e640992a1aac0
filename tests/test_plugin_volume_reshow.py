"""Showing the volume on screen again reuses its decoded image and unedited labels (no second copy)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _review_data import open_dataset_widget, wait_for_sample
from _volume_data import make_nnunet3d

from napari_medseg._review_autosave import autosave_for
from napari_medseg._sample_layers import show_sample
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER

pytestmark = pytest.mark.gui


def _show(qtbot, viewer, sid):
    worker = show_sample(viewer, sid)
    with qtbot.waitSignal(worker.returned, timeout=30000):
        pass


def test_the_same_volume_shown_again_shares_its_arrays_until_edited_or_changed(make_napari_viewer, qtbot, tmp_path):
    root = make_nnunet3d(tmp_path / "ds", n_cases=2)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    ws, sid = session.workspace, session.sample_id
    image, labels = viewer.layers[IMAGE_LAYER], viewer.layers[LABELS_LAYER]
    source, ids = image.data, labels.data
    pixels = np.asarray(source).copy()

    _show(qtbot, viewer, sid)  # unchanged: the same decoded voxels and label array, nothing read again
    assert image.data is source and labels.data is ids
    np.testing.assert_array_equal(labels.data, ws.current_mask(sid))

    viewer.dims.set_current_step(0, 4)
    labels.paint((4, 18, 20), 2)  # an edit pending: the labels are saved, then read as the new head
    _show(qtbot, viewer, sid)
    head = ws.sample(sid).head_revision
    assert ws.revisions(sid)[-1].origin == "manual" and labels.data[4, 18, 20] == 2
    assert autosave_for(viewer).base_revision == head
    np.testing.assert_array_equal(labels.data, ws.mask_at(head))
    assert image.data is source

    path = ws.sample(sid).image_path
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file touched: decoded again
    _show(qtbot, viewer, sid)
    assert image.data is not source
    np.testing.assert_array_equal(np.asarray(image.data), pixels)

    other = next(s for s in ws.sample_ids() if s != sid)
    shown = image.data
    show_sample(viewer, other)
    wait_for_sample(qtbot, session, other)
    assert image.data is not shown and str(image.data.path) == str(ws.sample(other).image_path)
