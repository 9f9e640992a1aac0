"""The one way a dock builds its form: a magicgui ``Container`` of named value widgets.

A form is the labelled fields a dock's work reads (Predict's settings, a
training config, export options, the folders to open). Each dock builds its
forms with :func:`form` from magicgui's value widgets, in a builder function
that *returns* the form (the dock keeps it, e.g. ``self.form``, and reads
``form.<name>.value``); a builder never sets attributes on another widget.
What is not a field -- buttons, lists, tables, plots, status lines -- stays
plain Qt (:mod:`napari_medseg._qt_helpers`) and is laid out around
``form.native``.

Why magicgui rather than hand-built ``QFormLayout`` rows: it is napari's own
form library, already behind the Fine-tune and Export forms; every field has a
typed ``value`` and one ``changed`` signal whatever its kind; a label hides
with its field (``field.visible``); ``FileEdit`` brings the folder chooser and
``Select`` a multiple choice; scripts and tests set ``form.<name>.value``
instead of reaching into Qt widgets. Two fields magicgui lacks are here:
:class:`TypedChoice` (a choice or typed text) and :class:`FolderEdit` (a
folder that may be left empty).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit
from magicgui.widgets.bases import Widget
from psygnal import Signal
from qtpy.QtWidgets import QComboBox, QGroupBox, QLayout, QVBoxLayout, QWidget


def form(*fields: Widget) -> Container:
    """Labelled fields, one per row, without margins of their own (the dock's layout spaces them)."""
    container = Container(widgets=list(fields))
    container.native.layout().setContentsMargins(0, 0, 0, 0)
    return container


def boxed(title: str, *parts: Container | QWidget | QLayout) -> QGroupBox:
    """A titled group of forms and the Qt widgets or rows that belong with them, in order."""
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for part in parts:
        if isinstance(part, Widget):
            layout.addWidget(part.native)
        elif isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    return box


def refresh_choices(field: Any) -> None:
    """Ask a combo-box field's choices function again (magicgui also does when the field is re-parented),
    keeping its value when it is still offered. Fields whose choices change are built with a function, never
    a fixed list: magicgui would put the list back."""
    value = field.value
    field.reset_choices()
    if value in field.choices:
        field.value = value


def placeholder(field: Any, text: str) -> None:
    """Grey hint text in an empty text field (magicgui has no option for it)."""
    native = field.line_edit.native if hasattr(field, "line_edit") else field.native  # FileEdit: its text field
    if isinstance(native, QComboBox):
        native = native.lineEdit()  # an editable one (TypedChoice)
    native.setPlaceholderText(text)


class TypedChoice(ComboBox):
    """A combo box that also takes typed text: its value is the text shown, one of the choices or what was
    typed (magicgui's ``ComboBox`` value is only ever one of its choices). ``changed`` follows the text."""

    def __init__(self, value: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.native.setEditable(True)
        self.native.currentTextChanged.connect(self.changed.emit)
        if value is not None:
            self.value = value  # after the choices: magicgui would replace a value that is not one of them

    def _on_value_change(self, value: Any = None) -> None:
        pass  # the text change reports it (once)

    def reset_choices(self, *_: Any) -> None:
        """New choices keep the text (magicgui would put the first choice in place of typed text)."""
        if not self.native.isEditable():  # still being built
            return super().reset_choices()
        text = self.value
        super().reset_choices()
        with self.changed.blocked():
            self.value = text

    @property
    def value(self) -> str:
        return self.get_value()

    @value.setter
    def value(self, value: Any) -> None:
        self.set_value(value)

    def get_value(self) -> str:
        return self.native.currentText()

    def set_value(self, value: Any) -> None:
        self.native.setCurrentText("" if value is None else str(value))


class FolderEdit(FileEdit):
    """A folder typed or chosen with "Browse...", whose empty text means no folder: its value is a ``Path``, or
    None while the text is empty (magicgui's ``FileEdit`` reads empty text as ``Path("")``, the current
    directory, and writes ``""`` as that directory's full path). ``changed`` follows every key;
    ``committed`` (the value) comes once the user is done: Enter or leaving the field, or a folder picked."""

    committed = Signal(object)

    def __init__(self, value: Any = None, **kwargs: Any):
        super().__init__(mode="d", nullable=True, **kwargs)
        self.value = value
        self.line_edit.native.editingFinished.connect(lambda: self.committed.emit(self.value))

    @property
    def _btn_text(self) -> str:
        return "Browse..."

    def get_value(self) -> Path | None:
        text = self.line_edit.value.strip()
        return Path(text) if text else None

    def set_value(self, value: Any) -> None:
        if value is None or not str(value).strip():
            self.line_edit.value = ""
        else:
            super().set_value(str(value).strip())

    def _on_choose_clicked(self) -> None:
        start = self.value.expanduser().absolute() if self.value is not None else Path.home()
        chosen = self._show_file_dialog(
            self.mode, caption="Choose a folder", start_path=os.fspath(start), filter=self.filter
        )
        if chosen:
            self.value = chosen
            self.committed.emit(self.value)
