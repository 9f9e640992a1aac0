"""The classes of the labels on screen as a list: colour, name and id; which to show; the class under the cursor.

A volume of the abdomen holds 41 named structures: no one reviews them all at
once. Each row of the list is one class of the labels layer's class map (its
colour swatch, its name, its id, how many voxels it holds here, greyed when
none). Unchecking a row hides that class (its colour becomes transparent, the
voxels keep their id: hiding is never an edit); "Only checked" / "All" pick the
classes to review. Clicking a row makes it the brush's label; a double click
moves the slider to the middle slice of that class. The class under the mouse
is named below the list (napari's status bar names it too, from the layer's
``features``).

The list follows ``LABELS_LAYER`` (the workspace sample's labels), else the
selected Labels layer that carries a class map from this plugin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from napari_medseg._qt_helpers import button, row
from napari_medseg._session import LABELS_LAYER
from napari_medseg._viewer_access import layer_named, real_viewer

ID_ROLE = Qt.ItemDataRole.UserRole


def class_names(layer: Any) -> dict[int, str]:
    """{id: name} of the foreground classes the layer's class map names (empty for a layer of no class map)."""
    names = ((layer.metadata or {}).get("medseg") or {}).get("class_names") or {}
    return {int(k): str(v) for k, v in names.items() if int(k) != 0}


def class_colours(layer: Any) -> dict[int, tuple[float, float, float, float]]:
    """{id: RGBA 0..1} from the class map in the layer's metadata (the colours it was made with)."""
    from medseg.datasets.classmap import ClassMap

    cm = ((layer.metadata or {}).get("medseg") or {}).get("classmap")
    if not cm:
        return {}
    return {c.id: (*(v / 255 for v in c.colour), 1.0) for c in ClassMap.from_dict(cm).classes}


def voxel_counts(data: Any) -> dict[int, int]:
    """{id: voxels} of an in-memory labels array (empty for lazy data: counting would decode it)."""
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "ub":
        return {}
    counts = np.bincount(data.ravel())
    return {int(i): int(n) for i, n in enumerate(counts) if n and i}


class ClassList(QWidget):
    """See the module docstring."""

    def __init__(self, viewer: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = real_viewer(viewer)
        self.layer: Labels | None = None
        self._names: dict[int, str] = {}
        self._setting = False
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter classes by name or id")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.list = QListWidget()
        self.list.setMinimumHeight(120)
        self.list.itemChanged.connect(self._on_checked)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(self._on_double_click)
        self.only_checked_button = button("Show only selected", self.show_only_selected, "Hide every other class")
        self.all_button = button("Show all", self.show_all)
        self.hover = QLabel()
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.filter, self.list):
            layout.addWidget(w)
        layout.addLayout(row(self.only_checked_button, self.all_button))
        layout.addWidget(self.hover)
        layout.addWidget(self.note)
        layers = self.viewer.layers
        pairs = [
            (layers.events.inserted, self.follow),
            (layers.events.removed, self.follow),
            (layers.selection.events.active, self.follow),
            (self.viewer.cursor.events.position, self._on_cursor),
        ]
        for signal, slot in pairs:
            signal.connect(slot)
        self.destroyed.connect(lambda *_: [s.disconnect(f) for s, f in pairs])
        self.follow()

    # ------------------------------------------------------------- the layer
    def target(self) -> Labels | None:
        layer = layer_named(self.viewer, LABELS_LAYER, Labels)
        if layer is not None:
            return layer
        active = self.viewer.layers.selection.active
        return active if isinstance(active, Labels) and class_names(active) else None

    def follow(self, *_: Any) -> None:
        """Follow the labels layer (a new one, or its class map changed)."""
        layer = self.target()
        if layer is not self.layer:
            if self.layer is not None:
                self.layer.events.data.disconnect(self.refresh)
                self.layer.events.metadata.disconnect(self.refresh)
            self.layer = layer
            if layer is not None:
                layer.events.data.connect(self.refresh)
                layer.events.metadata.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """The rows of the layer's classes, with their voxel counts; checks kept while the classes stay."""
        layer = self.layer
        names = class_names(layer) if layer is not None else {}
        hidden = self.hidden_ids() if names == self._names else set()
        self._names = names
        colours = class_colours(layer) if layer is not None else {}
        counts = voxel_counts(layer.data) if layer is not None else {}
        self._setting = True
        try:
            self.list.clear()
            for cid, name in sorted(names.items()):
                n = counts.get(cid)
                item = QListWidgetItem(f"{name}  ({cid})")
                item.setData(ID_ROLE, cid)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if cid in hidden else Qt.CheckState.Checked)
                item.setIcon(_swatch(colours.get(cid, (0.5, 0.5, 0.5, 1.0))))
                if counts:
                    item.setToolTip(f"{name}: id {cid}, {n or 0:,} voxels here")
                    if not n:
                        item.setForeground(QColor("gray"))
                self.list.addItem(item)
        finally:
            self._setting = False
        self._apply_filter()
        self._apply_visibility()
        present = sum(1 for cid in names if counts.get(cid))
        self.note.setText(
            f"{len(names)} classes" + (f", {present} drawn here" if counts else "") + "; uncheck to hide, "
            "double-click to go to a class"
            if names
            else "No labels layer with named classes."
        )

    # --------------------------------------------------------------- showing
    def ids(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def hidden_ids(self) -> set[int]:
        return {
            self.list.item(i).data(ID_ROLE)
            for i in range(self.list.count())
            if self.list.item(i).checkState() != Qt.CheckState.Checked
        }

    def set_shown(self, ids) -> None:
        """Show exactly the classes ``ids`` (the rest hidden)."""
        keep = {int(i) for i in ids}
        self._setting = True
        try:
            for i in range(self.list.count()):
                item = self.list.item(i)
                item.setCheckState(Qt.CheckState.Checked if item.data(ID_ROLE) in keep else Qt.CheckState.Unchecked)
        finally:
            self._setting = False
        self._apply_visibility()

    def show_only_selected(self) -> None:
        """Show the selected rows' classes only (the current row when none is selected)."""
        rows = self.list.selectedItems() or ([self.list.currentItem()] if self.list.currentItem() else [])
        if rows:
            self.set_shown(r.data(ID_ROLE) for r in rows)

    def show_all(self) -> None:
        self.set_shown(self.ids())

    def _on_checked(self, item: QListWidgetItem) -> None:
        if not self._setting:
            self._apply_visibility()

    def _apply_visibility(self) -> None:
        from napari_medseg._layer_data import TRANSPARENT

        layer = self.layer
        if layer is None or not self._names:
            return
        hidden = self.hidden_ids()
        colours = {None: TRANSPARENT, 0: TRANSPARENT}
        for cid, colour in class_colours(layer).items():
            colours[cid] = TRANSPARENT if cid in hidden else colour
        current = getattr(layer.colormap, "color_dict", None)
        if current is None or any(not np.allclose(current.get(k, TRANSPARENT), v) for k, v in colours.items()):
            layer.colormap = colours

    def _apply_filter(self, *_: Any) -> None:
        text = self.filter.text().strip().lower()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(text) and text not in item.text().lower())

    # ------------------------------------------------------------ navigating
    def _on_current(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is not None and self.layer is not None:
            self.layer.selected_label = int(item.data(ID_ROLE))

    def _on_double_click(self, item: QListWidgetItem) -> None:
        self.go_to_class(int(item.data(ID_ROLE)))

    def go_to_class(self, class_id: int) -> int | None:
        """Move the slider to the middle slice holding ``class_id``; that slice (None: not drawn here)."""
        from napari_medseg._volume_layers import go_to_slice, slices_holding

        layer = self.layer
        if layer is None or layer.ndim != 3:
            return None
        zs = slices_holding(layer.data, class_id)
        if zs.size == 0:
            self.note.setText(f"{self._names.get(class_id, class_id)} is not drawn in this volume.")
            return None
        z = int(zs[zs.size // 2])
        go_to_slice(self.viewer, z)
        self.note.setText(f"{self._names.get(class_id, class_id)}: slices {zs[0]}-{zs[-1]}; showing {z}.")
        return z

    def _on_cursor(self, *_: Any) -> None:
        self.hover.setText(self.hovered_text())

    def hovered_text(self) -> str:
        """The class under the mouse, as "Under the cursor: liver (5)"."""
        layer = self.layer
        if layer is None or not layer.visible:
            return ""
        value = layer.get_value(self.viewer.cursor.position, world=True)
        if value is None or (isinstance(value, tuple)):
            return ""
        cid = int(value)
        name = "background" if cid == 0 else self._names.get(cid, f"unknown id {cid}")
        return f"Under the cursor: {name} ({cid})"


def _swatch(rgba) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor.fromRgbF(*[float(v) for v in rgba]))
    return QIcon(pix)
