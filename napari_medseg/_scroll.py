"""Tool bodies that scroll, so a dock never asks for more height than a laptop screen has.

Each tool builds its controls into :func:`body_layout`'s layout. The body sits
in a frameless scroll area whose minimum height is a few lines: a dock (or the
tab group of docks) can be made as short as the screen needs, and what does not
fit scrolls. Its minimum width stays the body's own (up to :data:`MAX_MIN_WIDTH`)
so the controls are not squeezed; a wider body scrolls sideways.

A tool's main actions and its message line are pinned below the scroll area by
:func:`pin_footer`: they stay on screen whatever the dock's height, as the
action bar of a dialog does, and only the settings above them scroll.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QAbstractItemView, QFrame, QLayout, QListWidget, QScrollArea, QVBoxLayout, QWidget

# The most width a tool may insist on: 1366 px minus napari's layer panels and a usable canvas
MAX_MIN_WIDTH = 560
# The height a tool insists on, in text lines: enough to see that it scrolls
MIN_LINES = 6
# ... and with a footer pinned below it, which already shows the tool's actions
FOOTER_MIN_LINES = 3


class BodyScroll(QScrollArea):
    """A frameless scroll area over one tool's body; its minimum height is a few lines, not the body's."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.min_lines = MIN_LINES

    def setWidget(self, widget: QWidget) -> None:
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        # the body's content changed (a longer line, a new row): the dock asks this area's hints again
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(obj, event)

    def minimumSizeHint(self) -> QSize:
        body = self.widget()
        if body is None:
            return super().minimumSizeHint()
        inner = body.minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width() + 4  # napari's style draws the bar a little wider
        width = min(inner.width() + bar, MAX_MIN_WIDTH)
        height = min(inner.height(), self.min_lines * self.fontMetrics().height())
        return QSize(width, height)

    def sizeHint(self) -> QSize:
        # QScrollArea caps its hint at 24 text lines: a tall screen gives the body what it asks for
        body = self.widget()
        if body is None:
            return super().sizeHint()
        hint = body.sizeHint()
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), hint.height())


def body_layout(widget: QWidget) -> QVBoxLayout:
    """Give ``widget`` a scrolling body and return the body's layout, to fill as the widget's own."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = BodyScroll(widget)
    body = QWidget()
    body.setObjectName("medseg-body")
    scroll.setWidget(body)
    outer.addWidget(scroll)
    widget.body_scroll = scroll
    return QVBoxLayout(body)


def pin_footer(widget: QWidget, *items: QWidget | QLayout) -> QVBoxLayout:
    """Put ``items`` (widgets or layouts, in order) below ``widget``'s scrolling body (:func:`body_layout`),
    after any pinned before; return the footer's layout. The footer never scrolls: it is the tool's actions and
    message line, always on screen; the body above it keeps a few lines at least."""
    footer = getattr(widget, "footer", None)
    if footer is None:
        footer = QWidget(widget)
        footer.setObjectName("medseg-footer")
        layout = QVBoxLayout(footer)
        margins = widget.body_scroll.widget().layout().contentsMargins()  # the footer lines up with the body
        layout.setContentsMargins(margins.left(), margins.top() // 2, margins.right(), margins.bottom())
        widget.layout().addWidget(footer)
        widget.footer = footer
        widget.body_scroll.min_lines = FOOTER_MIN_LINES
        widget.body_scroll.updateGeometry()
    layout = footer.layout()
    for item in items:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return layout


class ShortList(QListWidget):
    """A list that asks for ``rows`` rows (Qt asks 192 px whatever the rows): in a scrolling body it takes that
    height, and more only where the dock has height to spare, so what follows it is not pushed below the fold."""

    def __init__(self, rows: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows = rows

    def sizeHint(self) -> QSize:
        row = self.sizeHintForRow(0) if self.count() else self.fontMetrics().height() + 2
        return QSize(super().sizeHint().width(), self.rows * max(row, 1) + 2 * self.frameWidth())


def show_rows(view: QAbstractItemView, rows: int) -> None:
    """Make a table or list at least ``rows`` rows tall (its header included), so it is useful; it stretches
    beyond that with its dock, and the tool's body scrolls where the dock is shorter."""
    view._rows_keeper = _RowsKeeper(view, rows)


class _RowsKeeper(QObject):
    """Keeps a view's minimum height at a number of rows as napari's style sets its row and header heights."""

    EVENTS = (QEvent.Type.Polish, QEvent.Type.StyleChange, QEvent.Type.FontChange, QEvent.Type.Show)

    def __init__(self, view: QAbstractItemView, rows: int):
        super().__init__(view)
        self.view, self.rows = view, rows
        view.installEventFilter(self)
        self.update()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.view and event.type() in self.EVENTS:
            self.update()
        return False

    def update(self) -> None:
        view = self.view
        rows_header = getattr(view, "verticalHeader", None)
        row = rows_header().defaultSectionSize() if rows_header else view.fontMetrics().height() + 8
        header = getattr(view, "horizontalHeader", None)
        head = header().sizeHint().height() if header is not None and not header().isHidden() else 0
        bar = view.horizontalScrollBar().sizeHint().height()
        view.setMinimumHeight(self.rows * row + head + 2 * view.frameWidth() + bar)
