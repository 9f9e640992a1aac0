"""The work area fits a 1366x768 laptop screen with napari's layer panels beside it: each tool scrolls inside
its dock, the tools share one tab group under a compact overview, and a window larger than its screen (napari
restores the size it saved) shrinks to the screen, so that is the size napari saves again."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QRect
from qtpy.QtWidgets import QDockWidget

from medseg.datasets.demo import make_demo_dataset
from napari_medseg import _window_fit
from napari_medseg._dataset_widget import SAMPLE_ROWS
from napari_medseg._session import session_for
from napari_medseg._work_area import TOOLS, _dock_of

pytestmark = pytest.mark.gui

PLUGIN = "napari-medseg"
LAPTOP = QRect(0, 0, 1366, 768)
TITLE_BAR = 28  # a window manager's title bar above the window
SMALL = 160  # px: a dock this short still shows a few lines of its tool, the rest scrolls
# px: ... with the tool's actions and message line pinned below them (Review's: Previous / Next, the verdicts,
# the keys, the message; 216 px in napari's style)
TOOL_SMALL = 240


def _work_area(viewer, qtbot, folder=None):
    _, area = viewer.window.add_plugin_dock_widget(PLUGIN, "Work area")
    qtbot.waitUntil(lambda: area.arranged, timeout=10000)
    # the docks read the model names in a worker: let it end inside the test, not at interpreter exit
    encoder = area.tools["Fine-tune"].form.encoder
    qtbot.waitUntil(lambda: "resnet18" in encoder.choices, timeout=60000)
    if folder is not None:
        area.tools["Dataset"].set_folder(make_demo_dataset(folder).root)
        area.tools["Dataset"].open_workspace()
        session = session_for(viewer)
        qtbot.waitUntil(lambda: session.sample_id is not None, timeout=60000)
    return area


def test_the_docked_work_area_fits_a_laptop_screen(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    area = _work_area(viewer, qtbot, tmp_path / "demo")
    window = viewer.window._qt_window
    layers = window._qt_viewer.dockLayerList, window._qt_viewer.dockLayerControls
    assert all(d.isVisible() for d in layers)  # napari's own panels stay
    hint = window.minimumSizeHint()
    assert hint.width() <= LAPTOP.width() and hint.height() <= LAPTOP.height() - TITLE_BAR, hint
    docks = [_dock_of(area.tools[name]) for name in TOOLS]
    for name, dock in zip(TOOLS, docks):
        assert dock.minimumSizeHint().height() <= TOOL_SMALL, (name, dock.minimumSizeHint())
    # one tab group in the order a user works, under the overview
    tabbed = window.tabifiedDockWidgets(docks[0])
    assert tabbed == docks[1:]
    own = _dock_of(area)
    assert own.minimumSizeHint().height() <= SMALL
    assert own.geometry().bottom() < docks[0].geometry().top()


@pytest.mark.parametrize("name", ["Display", "Dataset", "Predict", "Review", "Fine-tune", "Export"])
def test_each_tool_alone_is_short_and_scrolls(make_napari_viewer, qtbot, name):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    assert dock.minimumSizeHint().height() <= TOOL_SMALL, dock.minimumSizeHint()
    # what does not fit scrolls: the body asks for its full height, the dock does not
    assert widget.body_scroll.widget().minimumSizeHint().height() > dock.minimumSizeHint().height()
    if name in ("Predict", "Fine-tune"):
        encoder = (widget.arch_form if name == "Predict" else widget.form).encoder
        qtbot.waitUntil(lambda: "resnet18" in encoder.choices, timeout=60000)


def test_a_window_taller_than_its_screen_shrinks_to_it_and_is_saved_so(make_napari_viewer, qtbot, monkeypatch):
    from napari.settings import get_settings

    monkeypatch.setattr(_window_fit, "available_area", lambda window: QRect(LAPTOP))
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1600, 1616)  # the size napari saved when the docks would not shrink
    qtbot.waitUntil(lambda: window.height() == 1616, timeout=5000)
    _work_area(viewer, qtbot)
    frame = window.frameGeometry()
    assert LAPTOP.contains(frame), frame
    _, size, position, *_ = window._get_window_settings()
    assert size[0] <= LAPTOP.width() and size[1] <= LAPTOP.height(), size
    window._save_current_window_settings()
    saved = get_settings().application.window_size
    assert saved[0] <= LAPTOP.width() and saved[1] <= LAPTOP.height(), saved


def test_the_samples_table_shows_rows_and_grows_with_the_dock(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    area = _work_area(viewer, qtbot, tmp_path / "demo")
    window = viewer.window._qt_window
    table = area.tools["Dataset"].samples
    assert table.rowCount() == 24

    def rows_in_view() -> float:
        qtbot.wait(100)  # the resize's layout
        return table.viewport().height() / table.rowHeight(0)

    window.setGeometry(LAPTOP)
    small = rows_in_view()
    assert small >= SAMPLE_ROWS, small  # was 1.5 rows
    window.setGeometry(QRect(0, 0, 1920, 1400))
    assert rows_in_view() > small + 5  # the table takes the dock's extra height, not the overview above it
    overview = _dock_of(area)
    assert overview.height() < 1400 // 4, overview.height()
    area.show_tool("Review")  # another tab on show: the overview still gives the tools the height
    window.setGeometry(QRect(0, 0, 1920, 1080))
    qtbot.wait(100)
    assert overview.height() < 1080 // 4, overview.height()
    assert isinstance(_dock_of(table), QDockWidget)
