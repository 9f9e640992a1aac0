"""Messages (issue 16, finding 10): one line a user understands, the whole of it and any traceback behind
"Details"; a user's mistake shows no traceback, a long message neither clips nor widens the dock."""

from __future__ import annotations

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
