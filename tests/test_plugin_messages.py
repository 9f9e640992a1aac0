"""Messages (issue 16, finding 10): one line a user understands, the whole of it and any traceback behind
"Details"; a user's mistake shows no traceback, a long message neither clips nor widens the dock."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import CheckpointError, ConfigError
from napari_medseg._message_line import MessageLine, user_message

pytestmark = pytest.mark.gui


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001 - the test wants the raised exception with its traceback
        return e


def test_user_message_of_a_mistake_has_no_traceback_and_a_bug_has_one():
    line, detail = user_message(_raised(CheckpointError("/data/model.pt", "not a checkpoint")))
    assert line == "/data/model.pt: not a checkpoint" and detail is None

    line, detail = user_message(_raised(ConfigError(["epochs must be > 0", "lr must be > 0"], "run.yaml")))
    assert line == "run.yaml: invalid training config (2 problems):" and "lr must be > 0" in detail
    assert "Traceback" not in detail

    line, detail = user_message(_raised(KeyError("spacing")))
    assert line == "KeyError: 'spacing'"
    assert detail.startswith("Traceback") and "_raised" in detail


def test_message_line_long_text_is_elided_and_whole_behind_details(qtbot):
    line = MessageLine()
    qtbot.addWidget(line)
    line.resize(300, 40)
    line.show()
    qtbot.waitExposed(line)
    long = "Export to /tmp/" + "x" * 560 + " failed: the folder holds files medseg did not write"
    line.say(long)
    assert line.text() == long and line.detail() == ""
    assert line.minimumSizeHint().width() < 150 and line.sizeHint().width() < 300
    assert line.line.toolTip() == long and line.line.text() != long  # elided on screen, whole in the tip
    assert line.toggle.isVisible() and not line.box.isVisible()
    line.toggle.click()
    assert line.box.isVisible() and line.box.toPlainText() == long

    line.say("Saved.", "Traceback (most recent call last): ...")
    assert line.text() == "Saved." and line.detail().startswith("Traceback") and line.toggle.isVisible()
    assert "Saved." in line.box.toPlainText() and "Traceback" in line.box.toPlainText()
    line.setText("Done.")
    assert line.detail() == "" and not line.toggle.isVisible() and not line.box.isVisible()
    line.clear()
    assert line.text() == "" and line.detail() == ""


# ------------------------------------------------------------------ the docks
def _notes(monkeypatch) -> list:
    """Every napari notification from now on (message form and exception form alike)."""
    from napari.utils.notifications import notification_manager

    shown: list = []
    monkeypatch.setattr(notification_manager, "dispatch", shown.append)
    return shown


def _one_line_shown(line: MessageLine, full: str) -> None:
    """``full`` is said as one line on screen, whole in the tooltip and behind Details, with no traceback."""
    # a long message does not grow the dock's height: one line of text (HEAD wrapped it over many lines)
    assert line.sizeHint().height() <= 2 * line.fontMetrics().lineSpacing() + 12
    assert line.text() == full and "\n" not in line.line.text() and "Traceback" not in full
    assert line.line.toolTip() == " ".join(full.split())
    if line.toggle.isVisible():  # a line elided to the dock's width: the whole of it is one click away
        line.toggle.click()
        assert full in line.box.toPlainText() and "Traceback" not in line.box.toPlainText()
        line.toggle.click()


def test_wrong_folder_in_the_dataset_dock_is_one_line_without_traceback(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    from napari_medseg._dataset_widget import DatasetWidget

    folder = tmp_path / "not_a_dataset"
    folder.mkdir()
    (folder / "notes.txt").write_text("minutes of the meeting")
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Dataset")
    assert isinstance(widget, DatasetWidget)
    shown = _notes(monkeypatch)
    widget.set_folder(folder)
    widget.open_button.click()
    qtbot.waitUntil(lambda: bool(shown) and widget.worker is None, timeout=30000)
    text = widget.status.text()
    assert f"{folder}: no known dataset layout here (found notes.txt)" in text
    _one_line_shown(widget.status, text)
    assert widget.status.detail() == ""
    (note,) = shown  # napari's message form: no "View Traceback" button for a user's mistake
    assert note.message == text and not hasattr(note, "exception")


def test_a_text_file_named_pt_in_the_predict_dock_names_the_file(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_medseg._predict_widget import PredictWidget

    bad = tmp_path / "model.pt"
    bad.write_text("these are not weights\n")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="frame")
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    shown = _notes(monkeypatch)
    widget.set_checkpoints([str(bad)])
    assert widget.request(force=True)
    qtbot.waitUntil(lambda: bool(shown) and not widget.queue.busy, timeout=30000)
    text = widget.status.text()
    # the file as chosen (HEAD looked for "model.pt.medseg" and said it was missing), and what is wrong with it
    assert f"{bad}: pickle-based checkpoints are refused" in text and "model.pt.medseg" not in text
    _one_line_shown(widget.status, text)
    assert [n.message for n in shown] == [text] and not hasattr(shown[0], "exception")


def test_a_previous_export_is_replaced_in_the_docks_words(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from _export_data import make_frames

    from medseg.workspace import Workspace
    from napari_medseg._export_widget import ExportWidget
    from napari_medseg._session import session_for

    ws = Workspace.create(tmp_path / "frames.medseg", make_frames(tmp_path / "frames"))
    try:
        viewer = make_napari_viewer()
        session_for(viewer).set_workspace(ws)
        widget = ExportWidget(viewer)
        qtbot.addWidget(widget)
        widget.form.out.value = tmp_path / "clean"
        for _ in range(2):
            assert widget.start()
            qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
        text = widget.status.text()
        assert "holds a previous medseg export" in text and "tick 'Replace a previous export' to replace" in text
        assert "overwrite" not in text.lower()  # neither HEAD's "overwrite=True" nor the CLI's --overwrite
        _one_line_shown(widget.status, text)
    finally:
        ws.close()


def test_a_bug_shows_its_traceback_behind_details(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import medseg.workspace.open_job as open_job
    from napari_medseg._dataset_widget import DatasetWidget

    def broken(folder, workspace, cancel=None, **options):
        raise KeyError("layout")
        yield

    monkeypatch.setattr(open_job, "iter_open_or_create", broken)
    viewer = make_napari_viewer()
    widget = DatasetWidget(viewer)
    qtbot.addWidget(widget)
    shown = _notes(monkeypatch)
    widget.set_folder(tmp_path)
    widget.open_button.click()
    qtbot.waitUntil(lambda: bool(shown) and widget.worker is None, timeout=30000)
    assert widget.status.text() == f"Cannot open the workspace of {tmp_path}: KeyError: 'layout'"
    assert widget.status.detail().startswith("Traceback") and "in broken" in widget.status.detail()
    assert widget.status.toggle.isVisibleTo(widget)
    (note,) = shown  # napari's exception form: its notification offers the traceback
    assert note.message == widget.status.text() and isinstance(note.exception, KeyError)


@pytest.mark.parametrize("dock", ["Dataset", "Predict", "Export", "Display"])
def test_a_long_message_does_not_widen_the_dock(make_napari_viewer, qtbot, tmp_path, dock):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", dock)
    before = widget.minimumSizeHint().width()
    long = "/data/" + "polyp_frames_" * 45 + "/mask.png: unreadable"  # 600 characters, no space to wrap at
    assert len(long) >= 600
    widget.status.setText(long)
    assert widget.minimumSizeHint().width() <= max(before, 200)
    assert widget.status.text() == long and widget.status.line.toolTip() == long
    widget.status.toggle.click()
    assert widget.status.box.toPlainText() == long


def test_a_new_message_repaints_its_line_without_a_new_layout_of_the_window(qtbot):
    """QLabel.setText asks for a new layout; in the dock's layouts that climbed to the main window, which laid
    out and repainted itself (with the canvas's GL, a whole-window composition) at every live prediction."""
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QVBoxLayout, QWidget

    class Requests(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            self.count += event.type() == QEvent.Type.LayoutRequest
            return False

    window = QWidget()
    qtbot.addWidget(window)
    line = MessageLine("Predicting...")
    QVBoxLayout(window).addWidget(line)
    window.resize(400, 80)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)  # the layout requests of showing it
    requests = Requests()
    window.installEventFilter(requests)
    for text in ("model on frame slice 3: 0.29 s on cpu", "Predicting...", "model on frame slice 4: 0.31 s on cpu"):
        line.say(text)
        qtbot.wait(20)
        assert line.line.text() == text and line.line.toolTip() == text
    assert requests.count == 0
    # what does change the line's layout still lays the window out: a detail shows the Details toggle
    line.say("Failed.", "Traceback (most recent call last): ...")
    qtbot.waitUntil(lambda: requests.count > 0 and line.toggle.isVisible())


def test_the_line_is_as_tall_as_its_font_after_the_theme_sets_it(qtbot):
    """The line holder has no layout, so its height is set by hand: from the font the style sheet gives the
    label when it is shown (napari's theme), not the default font at construction (clipped the text)."""
    from qtpy.QtWidgets import QVBoxLayout, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    line = MessageLine("QC: 42 findings over 24 samples in 4.6 s.")
    QVBoxLayout(window).addWidget(line)
    before = line.holder.height()
    window.setStyleSheet("QLabel { font-size: 22pt; }")
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: line.holder.height() >= line.line.fontMetrics().height())
    assert line.holder.height() > before and line.line.height() == line.holder.height()
