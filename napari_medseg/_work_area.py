"""The work area: one menu item that docks every napari-medseg widget and shows where the work stands.

The returned "Work area" widget is the overview a person cleaning a dataset
keeps an eye on: which workspace is open, how many samples are reviewed,
which model predicts, and buttons that bring each tool back if its dock was
closed. It reads everything from the session; it owns no state.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QGridLayout, QLabel, QPushButton, QSizePolicy, QTabWidget, QWidget

from medseg.workspace.records import UNREVIEWED
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._scroll import body_layout
from napari_medseg._session import session_for
from napari_medseg._window_fit import fit_to_screen

PLUGIN = "napari-medseg"
# The tools, tabbed together below the work area in the order a user works in
TOOLS = ("Dataset", "Review", "Predict", "Fine-tune", "Export", "Overview")


def dock_tools(viewer: Any) -> dict[str, Any]:
    """Dock every tool once (an already docked one is reused); their widgets by name."""
    widgets = {}
    for i, name in enumerate(TOOLS):
        _, widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=i > 1)
    return widgets


class WorkArea(QWidget):
    """The menu command's widget: docks every tool, then shows the session's overview and a button per tool."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.arranged = False  # the docks are arranged once napari has docked this widget
        self._docks: tuple[QDockWidget, list[QDockWidget]] | None = None  # (this overview's, the tools')
        self.tools = dock_tools(napari_viewer)
        self.session = session_for(napari_viewer)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        buttons = QGridLayout()
        for i, name in enumerate(TOOLS):
            button = QPushButton(name)
            button.setToolTip(f"Show the {name} tool")
            button.clicked.connect(lambda _=False, n=name: self.show_tool(n))
            buttons.addWidget(button, 0, i)  # one row: the overview stays a few lines tall
        layout = body_layout(self)
        # compact: a taller window gives its height to the tools below, not to this overview (an Ignored
        # height also keeps napari from adding a stretch under the scroll area)
        self.body_scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        s = self.session
        signals = (
            s.workspace_changed,
            s.sample_changed,
            s.checkpoints_changed,
            s.revision_saved,
            s.status_changed,
            s.scores_changed,
        )
        connect_until_destroyed(self, ((signal, self.refresh) for signal in signals))
        self.refresh()
        # napari docks this widget after building it: arrange the docks once that has happened
        self._arrange_timer = QTimer(self)
        self._arrange_timer.setSingleShot(True)
        self._arrange_timer.timeout.connect(self.arrange)
        self._arrange_timer.start(0)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.timeout.connect(self._fit_overview)

    def arrange(self) -> None:
        """The work area on top, compact, the tools tabbed below it; then the window fits its screen."""
        own, docks = _dock_of(self), [_dock_of(w) for w in self.tools.values()]
        window = own.parentWidget() if own is not None else None
        if window is None or not hasattr(window, "splitDockWidget") or None in docks:
            return  # not docked in a main window (built on its own)
        area = window.dockWidgetArea(own)
        if area == window.dockWidgetArea(docks[0]):
            window.splitDockWidget(own, docks[0], Qt.Orientation.Vertical)
            for dock in docks[1:]:
                window.tabifyDockWidget(docks[0], dock)
            window.setTabPosition(area, QTabWidget.TabPosition.North)  # tabs read as the panel's headings
            for name, dock in zip(TOOLS, docks):
                dock.setWindowTitle(name)  # the tab's text: "Fine-tune (napari-medseg)" was cut to "Fine-tune (n..."
            docks[0].raise_()
            window.layout().activate()
            self._docks = (own, docks)
            self._fit_overview()
            window.installEventFilter(self)  # a resized window gives its height to the tools, not the overview
        fit_to_screen(window)
        self.arranged = True

    def eventFilter(self, obj: Any, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self._docks:
            self._fit_timer.start(0)  # after the window's layout has shared out the new size
        return False

    def _wanted_height(self, dock: QDockWidget) -> int:
        """The dock's height showing the whole overview at the dock's width (its text wraps)."""
        body = self.body_scroll.widget()
        title = dock.titleBarWidget()
        title_height = title.sizeHint().height() if title is not None else 0
        return title_height + body.heightForWidth(dock.width()) + 8  # the dock's margins

    def show_tool(self, name: str) -> None:
        dock, _ = self.viewer.window.add_plugin_dock_widget(PLUGIN, name)
        dock.show()
        dock.raise_()

    def refresh(self, *_: Any) -> None:
        self.summary.setText(overview_text(self.session))
        if self._docks:
            self._fit_timer.start(0)

    def _fit_overview(self) -> None:
        """The overview's dock as tall as its text and buttons (up to a third of the window), the tools below
        it take the rest."""
        own, docks = self._docks
        window = own.parentWidget()
        # the tab on show stands for its group (Qt does not resize a tab that is hidden behind another)
        tools = next((d for d in docks if not d.visibleRegion().isEmpty() and not d.isFloating()), None)
        if window is None or tools is None or own.isFloating() or own.isHidden():
            return
        if window.dockWidgetArea(own) != window.dockWidgetArea(tools):
            return  # the user moved them apart
        wanted = min(self._wanted_height(own), window.height() // 3)
        total = own.height() + tools.height()
        if own.height() != wanted and total > wanted:
            window.resizeDocks([own, tools], [wanted, total - wanted], Qt.Orientation.Vertical)


def _dock_of(widget: QWidget) -> QDockWidget | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def overview_text(session: Any) -> str:
    """Plain words: workspace, review progress, sample on screen, model in use."""
    ws = session.workspace
    if ws is None:
        lines = ["No dataset open: open a dataset folder or a workspace in the Dataset tool."]
    else:
        counts = ws.summary()["by_status"]
        total = sum(counts.values())
        done = total - counts.get(UNREVIEWED, 0)
        lines = [
            f"Workspace {ws.root.name} over {ws.dataset_root}",
            f"Reviewed {done} of {total}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n),
        ]
        if session.sample_id is not None:
            lines.append(f"On screen: {session.sample_id}")
    models = session.checkpoints
    if models:
        names = ", ".join(_short(m) for m in models)
        lines.append(("Ensemble: " if len(models) > 1 else "Model: ") + names)
    else:
        lines.append("No model chosen: pick a checkpoint in Predict, or train one in Fine-tune.")
    return "\n".join(lines)


def _short(path: str) -> str:
    from pathlib import Path

    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
