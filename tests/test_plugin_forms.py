"""The two form fields magicgui lacks (napari_medseg._forms): a choice or typed text, and a folder left empty."""

from __future__ import annotations

import pytest

from napari_medseg._forms import TypedChoice, form, placeholder

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
