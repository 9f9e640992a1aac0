"""The work area: one menu item that docks every napari-medseg widget and shows where the work stands.

The returned "Work area" widget is the overview a person cleaning a dataset
keeps an eye on: which workspace is open, how many samples are reviewed,
which model predicts, and buttons that bring each tool back if its dock was
closed. It reads everything from the session; it owns no state.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from medseg.workspace.records import UNREVIEWED
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._session import session_for

PLUGIN = "napari-medseg"
# Dataset on the right top, the tools it feeds tabbed below it (the order a user works in)
TOOLS = ("Dataset", "Review", "Predict", "Fine-tune", "Export")


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
        self.tools = dock_tools(napari_viewer)
        self.session = session_for(napari_viewer)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        buttons = QGridLayout()
        for i, name in enumerate(TOOLS):
            button = QPushButton(name)
            button.setToolTip(f"Show the {name} tool")
            button.clicked.connect(lambda _=False, n=name: self.show_tool(n))
            buttons.addWidget(button, i // 3, i % 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
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

    def show_tool(self, name: str) -> None:
        dock, _ = self.viewer.window.add_plugin_dock_widget(PLUGIN, name)
        dock.show()
        dock.raise_()

    def refresh(self, *_: Any) -> None:
        self.summary.setText(overview_text(self.session))


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
