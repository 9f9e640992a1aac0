"""Display dock widget: where the selected image came from, display windows, a CLAHE copy, and the classes.

Windows come from the engine: the file's DICOM windows (plus CT presets for
CT: soft tissue 40/400, lung -600/1500, bone 400/1800, ...), a 1-99 percentile
window and the full range. For a volume both are taken from the few slices read
when it opened (:mod:`napari_medseg._volume_layers`), never the whole volume.
The labels' classes are listed below (:class:`napari_medseg._class_list.ClassList`). CLAHE runs as a job
(``start_job``, like every worker of the plugin: a napari progress bar while it
runs); its result is added on the main thread, and a failure reaches napari's
notification manager with its traceback.
The window menu is the dock's form (:mod:`napari_medseg._forms`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.layers import Image
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from napari_medseg._class_list import ClassList
from napari_medseg._forms import boxed, form
from napari_medseg._message_line import MessageLine
from napari_medseg._scroll import body_layout

if TYPE_CHECKING:
    import napari

PLACEHOLDER = "choose a window..."
PERCENTILE = "percentile 1-99"
FULL_RANGE = "full range"
CLAHE_CLIP_LIMIT = 0.01


def window_form(windows: Callable[[Any], list[str]]) -> Container:
    """``windows``: the menu for the active layer (asked again when the layer changes)."""
    return form(
        ComboBox(
            name="window",
            label="Display window",
            choices=windows,
            tooltip="Sets the layer's contrast limits to center -/+ width/2",
        )
    )


class DisplayWidget(QWidget):
    """Provenance and display windows of the active Image layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self._layer: Image | None = None
        self._presets: dict[str, tuple[float, float]] = {}
        self._applying = False
        self._worker = None

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.form = window_form(self._window_menu)
        self.form.window.changed.connect(self._on_preset)
        self.clahe_button = QPushButton("CLAHE copy")
        self.clahe_button.setToolTip("Add a contrast-equalised (CLAHE) copy of the image as a new layer")
        self.clahe_button.clicked.connect(self.start_clahe)
        self.status = MessageLine()
        self.classes = ClassList(napari_viewer)

        layout = body_layout(self)
        for w in (self.info, self.form.native, self.clahe_button, self.status):
            layout.addWidget(w)
        layout.addWidget(boxed("Classes", self.classes), 1)

        self.viewer.layers.selection.events.active.connect(self._on_active)
        self._on_active()

    # ------------------------------------------------------------ selection
    def _on_active(self, event: Any = None) -> None:
        if self._layer is not None:
            self._layer.events.contrast_limits.disconnect(self._on_limits_changed)
        active = self.viewer.layers.selection.active
        self._layer = active if isinstance(active, Image) else None
        if self._layer is not None:
            self._layer.events.contrast_limits.connect(self._on_limits_changed)
        self.info.setText(describe_layer(self._layer))
        self._presets = presets_for(self._layer) if self._layer is not None else {}
        window = self.form.window
        with window.changed.blocked():
            window.choices = ()  # magicgui keeps the items that stay where they were: the menu is the layer's
            window.reset_choices()  # the first, PLACEHOLDER, is chosen
        window.enabled = self._layer is not None
        self.clahe_button.setEnabled(self._layer is not None and self._worker is None)

    def _window_menu(self, _field: Any = None) -> list[str]:
        if self._layer is None:
            return []
        return list(dict.fromkeys([PLACEHOLDER, *self._presets, PERCENTILE, FULL_RANGE]))

    def preset_names(self) -> list[str]:
        """The windows offered for the active layer, in menu order."""
        return list(self.form.window.choices)[1:]

    # ------------------------------------------------------------- windows
    def _on_preset(self, name: str | None) -> None:
        if self._layer is None or name in (None, PLACEHOLDER):
            return
        try:
            limits = self.window_limits(name)
        except ValueError as e:
            from napari.utils.notifications import show_error

            show_error(f"Cannot apply window {name!r} to {self._layer.name}: {e}")
            return
        self._applying = True
        try:
            self._layer.contrast_limits = limits
        finally:
            self._applying = False

    def window_limits(self, name: str) -> tuple[float, float]:
        """Contrast limits of window ``name`` for the active layer."""
        from medseg.io.normalise import percentile_window
        from napari_medseg._layer_data import window_limits

        if name in self._presets:
            return window_limits(*self._presets[name])
        stats = ((self._layer.metadata or {}).get("medseg") or {}).get("stats")
        if stats and name in (PERCENTILE, FULL_RANGE):  # a volume: the slices read when it opened
            from napari_medseg._volume_layers import percentile_limits

            return (
                percentile_limits(stats) if name == PERCENTILE else (stats["min"], max(stats["max"], stats["min"] + 1))
            )
        values = displayed_values(self._layer, self.viewer)
        if name == PERCENTILE:
            return window_limits(*percentile_window(values, 1, 99))
        if name == FULL_RANGE:
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            return (lo, hi) if hi > lo else (lo, lo + 1)
        raise ValueError(f"unknown window {name!r}")

    def _on_limits_changed(self, event: Any = None) -> None:
        # the menu names a window only while the limits are that window's
        window = self.form.window
        if not self._applying and window.value not in (None, PLACEHOLDER):
            with window.changed.blocked():
                window.value = PLACEHOLDER

    # ---------------------------------------------------------------- CLAHE
    def start_clahe(self) -> None:
        """Compute a CLAHE copy of the active image in a thread; the layer is added when it returns."""
        layer = self._layer
        if layer is None or self._worker is not None:
            return
        values, plane = displayed_values(layer, self.viewer, with_index=True)
        ndim = values.ndim - (1 if layer.rgb else 0)
        spatial = list(layer.scale[-ndim:])
        translate = list(layer.translate[-ndim:])
        meta = {
            "medseg": {
                "kind": "derived",
                "operation": "clahe",
                "clip_limit": CLAHE_CLIP_LIMIT,
                "derived_from": layer.name,
                "source": layer.metadata.get("source"),
                "plane": list(plane) if plane else None,
            }
        }
        name = f"{layer.name} CLAHE" + (f" (plane {', '.join(map(str, plane))})" if plane else "")

        def add(result: np.ndarray) -> None:
            self.viewer.add_image(
                result,
                name=name,
                scale=spatial,
                translate=translate,
                rgb=layer.rgb,
                contrast_limits=(0.0, 1.0),
                metadata=meta,
            )

        from napari_medseg._jobs import call, start_job

        rgb = layer.rgb
        # no workspace waits for it and it cannot stop half-way: a job of no session, waited for
        self._worker = start_job(
            None,
            lambda token: call(_clahe, values, rgb),
            "CLAHE copy",
            owner=self,
            stoppable=False,
            on_result=add,
            on_error=self._clahe_failed,
            on_finished=self._clahe_done,
        ).worker
        self.clahe_button.setEnabled(False)
        self.status.setText(f"Computing CLAHE of {layer.name}...")

    def _clahe_failed(self, exc: Exception) -> None:
        from napari_medseg._notify import report

        self.status.say(*report("CLAHE failed", exc))

    def _clahe_done(self) -> None:
        self._worker = None
        self.clahe_button.setEnabled(self._layer is not None)
        if self.status.text().startswith("Computing"):
            self.status.setText("")


def _clahe(values: np.ndarray, rgb: bool) -> np.ndarray:
    from medseg.io.normalise import clahe

    return clahe(values, clip_limit=CLAHE_CLIP_LIMIT, rgb=rgb)


def presets_for(layer: Image) -> dict[str, tuple[float, float]]:
    """{name: (center, width)}: the file's windows, plus the CT presets for CT."""
    from medseg.io.dicom import CT_PRESETS

    meta = layer.metadata or {}
    presets = {k: (float(v[0]), float(v[1])) for k, v in (meta.get("window_presets") or {}).items()}
    if str(meta.get("modality") or "").upper() == "CT" and not layer.rgb:
        for name, cw in CT_PRESETS.items():
            presets.setdefault(name, cw)
    return presets


def displayed_values(layer: Image, viewer: napari.viewer.Viewer, with_index: bool = False):
    """The layer's pixels: all of an in-memory array; of a lazy (dask, zarr) stack only the plane on
    screen, so that a 600-frame dataset is never decoded for a window. ``with_index`` adds that plane's
    leading indices (empty when the whole array is used)."""
    data = layer.data[-1] if layer.multiscale else layer.data
    if isinstance(data, np.ndarray):
        return (data, ()) if with_index else data
    n_lead = max(layer.ndim - viewer.dims.ndisplay, 0)
    point = layer.world_to_data(viewer.dims.point)
    lead = tuple(int(np.clip(round(float(p)), 0, data.shape[i] - 1)) for i, p in enumerate(point[:n_lead]))
    values = np.asarray(data[lead])
    return (values, lead) if with_index else values


def describe_layer(layer: Image | None) -> str:
    """Provenance of an Image layer in words (rich text)."""
    if layer is None:
        return "<i>Select an image layer.</i>"
    meta = layer.metadata or {}
    ours = meta.get("medseg") or {}
    source = str(meta.get("source") or ours.get("source") or "")
    if not source:
        return (
            f"<b>{layer.name}</b><br>No provenance: not opened by napari-medseg.<br>"
            f"Scale: {_fmt_spacing(layer.scale)} per pixel"
        )
    lines = [f"<b>{layer.name}</b>", f"Source: {source}"]
    if ours.get("kind") == "derived":
        lines.append(f"{str(ours.get('operation')).upper()} copy of layer {ours.get('derived_from')!r}")
    fmt = str(meta.get("format") or "").upper()
    modality = meta.get("modality")
    guessed = " (guessed: air at -1000 HU)" if meta.get("modality_guessed") else ""
    lines.append(f"Format: {fmt or 'unknown'}" + (f", modality {modality}{guessed}" if modality else ""))
    if ours.get("volume"):
        shape = " × ".join(str(n) for n in layer.data.shape)
        lines.append(f"Volume: {shape} (slice, row, col)" + (", read slice by slice" if ours.get("lazy") else ""))
    if meta.get("synthetic"):
        lines.append("Synthetic image, generated: not patient data")
    if meta.get("inverted"):
        lines.append(f"Stored {meta.get('original_photometric', 'MONOCHROME1')}: grey scale inverted so bone is bright")
    spacing = ours.get("spacing") or list(layer.scale)
    known = ours.get("spacing_known", meta.get("spacing_known"))
    lines.append(
        f"Spacing: {_fmt_spacing(spacing)} mm"
        if known
        else f"Spacing: unknown (pixels shown at {_fmt_spacing(spacing)})"
    )
    if ours.get("sample_ids") is not None:
        n_prob = len(ours.get("problems") or [])
        lines.append(
            f"Dataset ({ours.get('layout')}): {len(ours['sample_ids'])} samples, "
            f"{n_prob} problem{'s' if n_prob != 1 else ''}"
            + (", frames zero-padded to the largest size" if ours.get("padded") else "")
        )
    return "<br>".join(lines)


def _fmt_spacing(spacing) -> str:
    return " × ".join(f"{float(s):.4g}" for s in spacing)
