"""Each tool's main actions and message line are pinned below its scrolling body: with the work area docked on a
1366x768 screen a user reaches Review's verdicts, Fine-tune's Start, Export's Export and Predict's Predict
without scrolling (before, Accept / Exclude / Save correction and the Review message were below the fold). The
Dataset dock's Problems box takes room only when there are problems; Predict offers the whole-volume prediction
only on a volume."""

from __future__ import annotations

import numpy as np
import pytest
from _volume_data import make_nnunet3d
from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import QWidget

from medseg.datasets.demo import make_demo_dataset
from napari_medseg import _window_fit
from napari_medseg._session import IMAGE_LAYER, session_for
from napari_medseg._volume_layers import open_volume_view, put_volume_image
from napari_medseg._work_area import _dock_of

pytestmark = pytest.mark.gui

PLUGIN = "napari-medseg"
LAPTOP = QRect(0, 0, 1366, 768)

# (tab, the attributes of its widget that must be on screen without scrolling)
PINNED = {
    "Review": (
        "accept_button",
        "exclude_button",
        "save_button",
        "advance",
        "keys",
        "message",
        "panel.previous_button",
        "panel.next_button",
        "verdict_form.native",
    ),
    "Fine-tune": ("start_button", "cancel_button", "resume_button", "use_button", "rescore_button", "message"),
    "Export": ("export_button", "cancel_button", "status"),
    "Predict": ("predict_button", "cancel_button", "live", "status"),
    "Dataset": ("status",),
}


def _attr(widget, path: str) -> QWidget:
    for name in path.split("."):
        widget = getattr(widget, name)
    return widget


def _within(child: QWidget, ancestor: QWidget) -> bool:
    while child is not None:
        if child is ancestor:
            return True
        child = child.parentWidget()
    return False


@pytest.fixture
def laptop_area(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The work area docked in a window filling a 1366x768 screen, the demo dataset open."""
    monkeypatch.setattr(_window_fit, "available_area", lambda window: QRect(LAPTOP))
    viewer = make_napari_viewer(show=True)
    _, area = viewer.window.add_plugin_dock_widget(PLUGIN, "Work area")
    qtbot.waitUntil(lambda: area.arranged, timeout=10000)
    encoder = area.tools["Fine-tune"].form.encoder  # the model names are read in a worker: let it end here
    qtbot.waitUntil(lambda: "resnet18" in encoder.choices, timeout=60000)
    area.tools["Dataset"].set_folder(make_demo_dataset(tmp_path / "demo").root)
    area.tools["Dataset"].open_workspace()
    session = session_for(viewer)
    qtbot.waitUntil(lambda: session.sample_id is not None, timeout=60000)
    viewer.window._qt_window.setGeometry(LAPTOP)
    qtbot.wait(100)
    return viewer, area


@pytest.mark.parametrize("tab", list(PINNED))
def test_the_main_actions_are_on_screen_without_scrolling(laptop_area, qtbot, tab):
    viewer, area = laptop_area
    area.show_tool(tab)
    widget = area.tools[tab]
    dock = _dock_of(widget)
    qtbot.waitUntil(lambda: widget.isVisible(), timeout=5000)
    qtbot.wait(100)  # the tab's layout
    body = widget.body_scroll.widget()
    assert widget.body_scroll.verticalScrollBar().value() == 0
    shown = dock.rect()
    for path in PINNED[tab]:
        control = _attr(widget, path)
        assert control.isVisible(), path
        assert not _within(control, body), f"{path} scrolls with the body"
        # all of it is drawn (nothing clips it) and it lies inside the dock, which lies inside the screen
        assert control.visibleRegion().boundingRect() == control.rect(), (path, control.visibleRegion())
        where = QRect(control.mapTo(dock, control.rect().topLeft()), control.size())
        assert shown.contains(where), (path, where, shown)
    window = viewer.window._qt_window
    assert window.rect().contains(QRect(dock.mapTo(window, QPoint(0, 0)), dock.size()))
    assert LAPTOP.contains(window.geometry())
    if tab == "Dataset":  # the samples table spans the dock after a refresh (its columns fitted to their text)
        widget.refresh()
        qtbot.wait(50)
        table = widget.samples
        assert table.horizontalHeader().length() >= table.viewport().width() - 2
    # the body above the footer still shows a few lines and scrolls what does not fit
    assert widget.body_scroll.viewport().height() >= 3 * widget.fontMetrics().height()


def test_the_problems_box_shows_only_with_problems(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, dataset = viewer.window.add_plugin_dock_widget(PLUGIN, "Dataset")
    session = session_for(viewer)
    clean = make_demo_dataset(tmp_path / "clean").root
    dataset.set_folder(clean)
    dataset.open_workspace()
    qtbot.waitUntil(lambda: session.workspace is not None and dataset.worker is None, timeout=60000)
    assert dataset.problems.count() == 0
    assert dataset.problems.isHidden() and dataset.problems_title.isHidden()

    messy = make_demo_dataset(tmp_path / "messy").root
    (messy / "images" / "25.png").write_bytes((messy / "images" / "1.png").read_bytes())  # an image, no mask
    dataset.set_folder(messy)
    dataset.open_workspace()
    qtbot.waitUntil(lambda: session.workspace is not None and session.workspace.root != clean, timeout=60000)
    qtbot.waitUntil(lambda: dataset.problems.count() > 0, timeout=10000)
    assert any("25.png" in dataset.problems.item(k).text() for k in range(dataset.problems.count()))
    assert not dataset.problems.isHidden() and not dataset.problems_title.isHidden()


def test_whole_volume_prediction_is_offered_on_a_volume_only(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    button = widget.volume_button
    assert button.isHidden()  # nothing on screen
    flat = viewer.add_image(np.zeros((32, 32), np.uint8), name=IMAGE_LAYER)
    assert button.isHidden()
    viewer.layers.remove(flat)
    stack = viewer.add_image(np.zeros((4, 32, 32), np.uint8), name=IMAGE_LAYER)  # frames, not a volume
    assert button.isHidden()
    viewer.layers.remove(stack)
    root = make_nnunet3d(tmp_path / "ds", n_cases=1)
    image = put_volume_image(viewer, open_volume_view(root / "imagesTr" / "case_000_0000.nii.gz"), IMAGE_LAYER)
    assert not button.isHidden()
    assert not widget.copy_form.source.native.isHidden()
    # the same layer given a stack's metadata (a sample of frames reusing it) is no volume any more
    image.metadata = {}
    assert button.isHidden()
    image.metadata = {"medseg": {"volume": True}}
    assert not button.isHidden()
    viewer.layers.remove(image)
    assert button.isHidden()
    qtbot.waitUntil(lambda: "resnet18" in widget.arch_form.encoder.choices, timeout=60000)
