"""The two form fields magicgui lacks (napari_medseg._forms): a choice or typed text, and a folder left empty."""

from __future__ import annotations

import pytest

from napari_medseg._forms import FolderEdit, TypedChoice, form, placeholder

pytestmark = pytest.mark.gui


def test_typed_choice_value_is_the_text_shown(qtbot):
    f = form(TypedChoice(name="reason", label="Reason", choices=("", "image unusable", "duplicate")))
    qtbot.addWidget(f.native)
    seen = []
    f.reason.changed.connect(seen.append)
    placeholder(f.reason, "reason to exclude")
    assert f.reason.value == "" and f.reason.native.lineEdit().placeholderText() == "reason to exclude"

    f.reason.native.setCurrentIndex(1)  # picked from the list
    f.reason.value = "motion blur"  # typed: magicgui's ComboBox would refuse it
    assert f.reason.value == "motion blur" and seen == ["image unusable", "motion blur"]
    f.reason.reset_choices()  # new choices (or a new parent) keep the typed text, without a change
    assert f.reason.value == "motion blur" and seen == ["image unusable", "motion blur"]

    other = TypedChoice(name="x", choices=["a", "b"], value="not offered")
    assert other.value == "not offered"
    assert TypedChoice(name="y", choices=["a", "b"]).value == "a"


def test_folder_edit_empty_is_no_folder(qtbot, tmp_path, monkeypatch):
    f = form(FolderEdit(name="folder", label="Folder"))
    qtbot.addWidget(f.native)
    committed = []
    f.folder.committed.connect(committed.append)
    assert f.folder.value is None and f.folder.choose_btn.text == "Browse..."
    f.folder.value = tmp_path
    assert f.folder.value == tmp_path and f.folder.line_edit.value == str(tmp_path)
    for empty in ("", "  ", None):  # never the current directory
        f.folder.value = empty
        assert f.folder.value is None and f.folder.line_edit.value == ""
    assert committed == []  # set by code: not a user's choice

    f.folder.line_edit.native.setText(f" {tmp_path} ")
    f.folder.line_edit.native.editingFinished.emit()  # Enter, or the field loses focus
    assert committed == [tmp_path]

    asked = []
    picked = tmp_path / "picked"

    def dialog(mode, caption, start_path, filter):
        asked.append((mode.value, caption, start_path))
        return str(picked)

    monkeypatch.setattr(f.folder, "_show_file_dialog", dialog)
    f.folder.choose_btn.native.click()
    assert asked == [("d", "Choose a folder", str(tmp_path))] and committed == [tmp_path, picked]
    monkeypatch.setattr(f.folder, "_show_file_dialog", lambda *a, **k: None)  # the dialog cancelled
    f.folder.choose_btn.native.click()
    assert f.folder.value == picked and committed == [tmp_path, picked]
