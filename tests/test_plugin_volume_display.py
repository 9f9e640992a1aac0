"""Volumes in napari, opened directly: spacing as scale, the slice slider, CT window presets, MR 1-99 %
normalisation from a few slices, and the 41 named classes of the real CT (names, colours, which to show)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _volume_data import make_nnunet3d, real_nnunet3d

from medseg.classmap import ClassMap, distinct_colours
from medseg.io.volume_labels import read_label_volume
from napari_medseg._display_widget import DisplayWidget
from napari_medseg._review_autosave import autosave_for
from napari_medseg._sample_layers import put_labels
from napari_medseg._session import IMAGE_LAYER
from napari_medseg._volume_layers import (
    current_slice,
    go_to_slice,
    open_volume_view,
    put_volume_image,
)

pytestmark = pytest.mark.gui


def _show(viewer, image_path, label_path, classmap):
    view = open_volume_view(image_path)
    image = put_volume_image(viewer, view, IMAGE_LAYER)
    ids, geometry = read_label_volume(label_path)
    labels = put_labels(viewer, ids, view.spacing, classmap, image_path.parent, None, autosave_for(viewer))
    return view, image, labels, ids, geometry


def sampled(layer) -> np.ndarray:
    """The slices the volume's window statistics were read from."""
    return np.stack([np.asarray(layer.data[z]) for z in layer.metadata["medseg"]["stats"]["slices"]])


def _real_classmap(labels_json) -> ClassMap:
    names = {int(k): v for k, v in json.loads(labels_json.read_text()).items() if int(k) != 0}
    table = dict(zip(sorted(names), distinct_colours(len(names))))
    return ClassMap.from_colour_table(table, names=names, task="multiclass")


def test_ct_volume_scale_slider_and_window_presets(make_napari_viewer, qtbot, tmp_path):
    root = make_nnunet3d(tmp_path / "ds", n_cases=1)
    viewer = make_napari_viewer()
    cm = ClassMap.from_names(["liver", "spleen", "kidney_left"])
    view, image, labels, ids, geometry = _show(
        viewer, root / "imagesTr" / "case_000_0000.nii.gz", root / "labelsTr" / "case_000.nii.gz", cm
    )
    # NIfTI voxels (40, 36, 10) with spacing (0.8, 0.8, 2.5) are shown as (slice, row, col)
    assert image.data.shape == labels.data.shape == (10, 36, 40) == geometry.shape
    assert tuple(image.scale) == tuple(labels.scale) == pytest.approx((2.5, 0.8, 0.8))
    assert view.modality == "CT" and view.metadata["modality_guessed"]  # air at about -900 HU
    assert tuple(image.contrast_limits) == pytest.approx((-160.0, 240.0))  # opens in soft tissue 40/400

    assert viewer.dims.ndisplay == 2 and viewer.dims.nsteps[0] == 10
    go_to_slice(viewer, 7)
    assert viewer.dims.current_step[0] == 7 and current_slice(viewer, labels) == 7
    np.testing.assert_array_equal(labels._slice.image.raw, ids[7])  # the slider shows that slice's labels

    display = DisplayWidget(viewer)
    qtbot.addWidget(display)
    viewer.layers.selection.active = image
    assert {"soft_tissue", "lung", "bone"} <= set(display.preset_names())
    assert "modality CT (guessed" in display.info.text() and "Volume: 10 × 36 × 40" in display.info.text()
    for name, limits in {"lung": (-1350.0, 150.0), "bone": (-500.0, 1300.0), "soft_tissue": (-160.0, 240.0)}.items():
        display.form.window.value = name
        assert tuple(image.contrast_limits) == pytest.approx(limits), name
    lo, hi = np.percentile(sampled(image), [1, 99])
    display.form.window.value = "percentile 1-99"
    assert tuple(image.contrast_limits) == pytest.approx((lo, hi))


def test_mr_volume_opens_in_its_1_99_percentile_window(make_napari_viewer, qtbot, ct_mr_dir, tmp_path):
    root = real_nnunet3d(ct_mr_dir, tmp_path / "mr", "mr")
    viewer = make_napari_viewer()
    view = open_volume_view(root / "imagesTr" / "mr_000_0000.nii.gz")
    image = put_volume_image(viewer, view, IMAGE_LAYER)
    assert view.modality in (None, "MR") and image.data.shape == (20, 91, 117)
    assert tuple(image.scale) == pytest.approx((3.0, 3.0, 3.0))
    values = sampled(image)
    assert values.shape[0] == 7  # a few slices, never the whole volume, give the window
    lo, hi = image.contrast_limits
    assert (lo, hi) == pytest.approx(tuple(np.percentile(values, [1, 99])))
    whole = np.asarray(image.data)
    assert np.percentile(whole, 0.2) <= lo < hi <= np.percentile(whole, 99.8)  # the scan's own intensities
    lo_range, hi_range = image.contrast_limits_range
    assert lo_range <= lo and hi <= hi_range


def test_41_classes_of_the_real_ct_named_coloured_and_chosen(make_napari_viewer, qtbot, ct_mr_dir, tmp_path):
    root = real_nnunet3d(ct_mr_dir, tmp_path / "ct", "ct")
    cm = _real_classmap(root / "labelsTr" / "labels.json")
    assert len(cm.ids) == 41 and max(cm.ids) == 117
    viewer = make_napari_viewer()
    view, image, labels, ids, _ = _show(
        viewer, root / "imagesTr" / "ct_000_0000.nii.gz", root / "labelsTr" / "ct_000.nii.gz", cm
    )
    assert view.modality == "CT" and tuple(image.contrast_limits) == pytest.approx((-160.0, 240.0))
    display = DisplayWidget(viewer)
    qtbot.addWidget(display)
    classes = display.classes
    assert classes.layer is labels and classes.ids() == cm.ids
    rows = {classes.list.item(i).data(256): classes.list.item(i).text() for i in range(classes.list.count())}
    liver, spleen = cm.id_of("liver"), cm.id_of("spleen")
    assert rows[liver] == f"liver  ({liver})" and "41 classes" in classes.note.text()
    colours = [tuple(np.round(labels.colormap.map(i)[:3], 3)) for i in cm.ids]
    assert len(set(colours)) == 41  # each class its own colour on screen

    # the class under the cursor is named, in the list's line and in napari's status bar
    z, y, x = (int(v[len(v) // 2]) for v in np.nonzero(ids == liver))
    go_to_slice(viewer, z)
    viewer.cursor.position = tuple(np.array([z, y, x]) * np.asarray(labels.scale))
    assert classes.hovered_text() == f"Under the cursor: liver ({liver})"
    status = labels.get_status(viewer.cursor.position, world=True)
    assert "liver" in str(status)

    # reviewing the liver only: every other class transparent, the voxels untouched
    before = labels.data.copy()
    classes.set_shown([liver])
    assert labels.colormap.map(liver)[3] == 1.0 and labels.colormap.map(spleen)[3] == 0.0
    assert classes.hidden_ids() == set(cm.ids) - {liver}
    np.testing.assert_array_equal(labels.data, before)
    classes.show_all()
    assert labels.colormap.map(spleen)[3] == 1.0

    classes.filter.setText("kidney")
    shown = [classes.list.item(i).text() for i in range(classes.list.count()) if not classes.list.item(i).isHidden()]
    assert shown and all("kidney" in t for t in shown)
    classes.filter.setText("")
    classes.list.setCurrentRow(cm.ids.index(spleen))
    assert labels.selected_label == spleen  # the brush paints the chosen class
    z_spleen = classes.go_to_class(spleen)
    assert z_spleen is not None and (ids[z_spleen] == spleen).any() and viewer.dims.current_step[0] == z_spleen


def test_an_uncompressed_volume_is_never_decoded_whole(make_napari_viewer, qtbot, ct_mr_dir, tmp_path, monkeypatch):
    """Opening, windowing and moving through a .nii read only the slices shown and the few for statistics."""
    import nibabel as nib

    from medseg.io.volume_source import VolumeSource

    root = real_nnunet3d(ct_mr_dir, tmp_path / "ct", "ct")
    nii = tmp_path / "ct.nii"
    nib.save(nib.load(root / "imagesTr" / "ct_000_0000.nii.gz"), nii)

    def whole(self):
        raise AssertionError(f"{self.path} decoded whole")

    monkeypatch.setattr(VolumeSource, "array", whole)
    view = open_volume_view(nii)
    assert isinstance(view.data, VolumeSource) and view.lazy
    viewer = make_napari_viewer()
    image = put_volume_image(viewer, view, IMAGE_LAYER)
    display = DisplayWidget(viewer)
    qtbot.addWidget(display)
    viewer.layers.selection.active = image
    for z in (0, 12, 29):
        go_to_slice(viewer, z)
        assert np.array_equal(image._slice.image.raw, view.data.slice(z))
    for name in ("bone", "percentile 1-99", "full range"):
        display.form.window.value = name
    assert "read slice by slice" in display.info.text()
