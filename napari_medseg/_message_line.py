"""The one line a dock says what it did or what went wrong, with the rest one click away.

A QLabel with word wrap grows as tall as a long error and a path without spaces widens the whole dock;
without wrap it clips. :class:`MessageLine` shows one line elided to the width it is given (the full text in
its tooltip), and a "Details" toggle opens a read-only box with the full text and the detail (a traceback, a
config's list of problems). :func:`user_message` turns an exception into that line and detail: a user's mistake
(a :class:`~medseg.errors.MedsegError`, an OSError naming a file) is its message alone; anything else is a bug,
shown as "<Type>: <message>" with the traceback behind the toggle.
"""

from __future__ import annotations

import traceback

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy, QToolButton, QVBoxLayout, QWidget

DETAIL_LINES = 8  # the detail box's height in lines: a traceback scrolls inside it, the dock does not grow
# how a user gives, in the docks, an option an engine message names in the CLI's words (MedsegError.option)
GUI_OPTION_WORDS = {"overwrite": "tick 'Replace a previous export'"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def is_user_error(exc: BaseException) -> bool:
    """A mistake the user can fix from the message alone (a wrong folder, a bad checkpoint), not a bug."""
    from medseg.errors import MedsegError

    return isinstance(exc, (MedsegError, OSError))


def error_text(exc: BaseException) -> str:
    """The message of a user's mistake as the docks say it: the file and the cause, an option in the GUI's words."""
    from medseg.errors import MedsegError, one_line

    if not isinstance(exc, MedsegError):
        return one_line(exc).strip()
    text = exc.worded(GUI_OPTION_WORDS).strip()
    return text if "\n" in text else _one_line(text)


def user_message(exc: BaseException) -> tuple[str, str | None]:
    """(one line a user understands, the detail or None) for ``exc``.

    A user's mistake gives its message (the engine's messages name the file and the cause) and no traceback;
    a message of several lines (a config's problems) gives its first line, the whole of it as the detail.
    Any other exception is a bug: "<Type>: <message>" and its traceback. An exception passed on for another
    (the plugin's ``JobFailed`` for a ``RuntimeError``) is named by the one it carries.
    """
    if is_user_error(exc):
        text = error_text(exc)
        lines = text.splitlines()
        if len(lines) > 1:
            return lines[0], text
        return text or type(exc).__name__, None
    shown = exc.__cause__ if type(exc).__name__ == "JobFailed" and exc.__cause__ is not None else exc
    message = _one_line(str(shown))
    line = f"{type(shown).__name__}: {message}" if message else type(shown).__name__
    return line, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


class _ElidedLabel(QLabel):
    """A label that shows its text elided to its width: it never asks for more width than a few characters.

    Its text is selectable only while the pointer is over it. A selectable QLabel keeps its text in a
    QTextDocument laid out after the first paint, which asks for a second one: each new text was two
    whole-window compositions (GL) instead of one, and a live prediction says two texts a move.
    """

    def __init__(self) -> None:
        super().__init__()
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

    def enterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().enterEvent(event)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().leaveEvent(event)
        if not self.hasSelectedText():  # a selection being copied stays
            self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

    def set_full(self, text: str) -> None:
        if not self.underMouse():  # a new text ends a selection kept after the pointer left
            self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self._full = text
        self.setToolTip(text)
        self._elide()

    def elided(self) -> bool:
        return self.text() != self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        if shown != self.text():
            super().setText(shown)
            holder = self.parent()
            if isinstance(holder, _LineHolder) and isinstance(holder.parent(), MessageLine):
                holder.parent()._sync_toggle()


class _LineHolder(QWidget):
    """Holds the label without a layout, one line tall: a new text never asks the window for a new layout.

    QLabel.setText always calls updateGeometry; in a layout that request climbs every layout above it to
    the main window, which lays out and repaints all of itself (a whole-window composition through GL,
    100-360 ms under Xvfb's software GL), once per message: twice per live prediction. A widget without a
    layout ignores the request, so a message repaints only its own line.
    """

    def __init__(self, line: QLabel) -> None:
        super().__init__()
        self.line = line
        line.setParent(self)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._fit_height()
        # napari's theme sets the font after construction (a style sheet): the line's height follows it
        line.installEventFilter(self)

    def _fit_height(self) -> None:
        m = self.line.contentsMargins()
        height = max(self.line.fontMetrics().height() + m.top() + m.bottom(), self.line.sizeHint().height())
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if watched is self.line and event.type() in (
            QEvent.Type.FontChange,
            QEvent.Type.StyleChange,
            QEvent.Type.Polish,
        ):
            self._fit_height()
        return False

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.line.fontMetrics().averageCharWidth() * 8, self.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(0, self.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.line.setGeometry(self.rect())


class MessageLine(QWidget):
    """One line of text that never widens nor clips the dock, plus a "Details" toggle (see the module docstring).

    ``text()`` is the whole text last said (what a QLabel's ``text()`` gave), ``detail()`` the detail given
    ("" when none). The toggle shows when there is a detail or the line is elided; its box holds the whole
    text and the detail, to read and copy.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._text, self._detail = "", ""
        self._said: tuple[str, str] | None = None
        self.line = _ElidedLabel()
        self.holder = _LineHolder(self.line)
        self.toggle = QToolButton()
        self.toggle.setText("Details")
        self.toggle.setCheckable(True)
        self.toggle.setToolTip("Show or hide the whole message and its detail")
        self.toggle.toggled.connect(self._show_box)
        self.box = QPlainTextEdit()
        self.box.setReadOnly(True)
        self.box.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.box.setFixedHeight(self.box.fontMetrics().lineSpacing() * DETAIL_LINES + 12)
        self.box.hide()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.holder, 1)
        top.addWidget(self.toggle)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.box)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.say(text)

    def say(self, text: str, detail: str | None = None) -> None:
        """Show ``text`` as the one line (whitespace and line breaks as single spaces) and keep ``detail``."""
        if self._said == (text, detail or ""):
            return  # said already: no repaint (a live prediction says the same often)
        self._said = (text, detail or "")
        self._text, self._detail = text, detail or ""
        if "\n" in text.strip() and not self._detail:
            self._detail = text  # a message of several lines: its lines stay readable in the box
        self.line.set_full(_one_line(text))
        self.box.setPlainText(text if self._detail in ("", text) else f"{text}\n\n{self._detail}")
        self._sync_toggle()

    def setText(self, text: str) -> None:  # noqa: N802 - a QLabel's name, so a dock's code reads the same
        self.say(text)

    def text(self) -> str:
        return self._text

    def detail(self) -> str:
        return self._detail

    def clear(self) -> None:
        self.say("")

    def _sync_toggle(self) -> None:
        wanted = bool(self._detail) or self.line.elided()
        if not wanted and self.toggle.isChecked():
            self.toggle.setChecked(False)
        self.toggle.setVisible(wanted)

    def _show_box(self, on: bool) -> None:
        self.box.setVisible(on)
