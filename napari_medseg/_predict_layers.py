"""Which image the Predict widget reads, the plane on screen, and its output layers (updated in place).

Outputs have the image's spatial shape (a stack keeps its leading axes; only
the predicted slice is written), its scale and translate, so they overlay it
exactly. ``Outputs.predicted`` records which planes hold a prediction, so a
copy into the labels never writes slices the model has not seen. They are
locked and never left selected (:mod:`napari_medseg._layer_roles`): a stroke
always lands on the labels; the prediction is drawn as an outline in its own
colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_medseg._layer_data import labels_layer
from napari_medseg._layer_roles import (
    MAP_OPACITY,
    PREDICTION_OPACITY,
    bind_toggle_key,
    label_stays_active,
    lock_layer,
    prediction_colours,
    prediction_style,
)
from napari_medseg._session import (
    IMAGE_LAYER,
    PREDICTION_LAYER,
    PROBABILITY_LAYER,
    UNCERTAINTY_LAYER,
)

OUTPUT_LAYERS = (PREDICTION_LAYER, PROBABILITY_LAYER, UNCERTAINTY_LAYER)


def target_image(viewer, last: Image | None = None) -> Image | None:
    """The session's image layer, else the selected Image layer, else the one used last (if still shown),
    else the topmost Image layer (selecting a Labels layer to edit it keeps the image beneath)."""
    layers = viewer.layers
    if IMAGE_LAYER in layers and isinstance(layers[IMAGE_LAYER], Image):
        return layers[IMAGE_LAYER]
    active = layers.selection.active
    if isinstance(active, Image) and active.name not in OUTPUT_LAYERS:
        return active
    if last is not None and last in layers:
        return last
    images = [layer for layer in layers if isinstance(layer, Image) and layer.name not in OUTPUT_LAYERS]
    return images[-1] if images else None


def _full_res(layer: Image):
    return layer.data[0] if layer.multiscale else layer.data


def spatial_shape(layer: Image) -> tuple[int, ...]:
    """The image's shape without its colour axis: (..., H, W)."""
    shape = tuple(_full_res(layer).shape)
    return shape[:-1] if layer.rgb else shape


def plane_of(layer: Image, viewer) -> tuple[int, ...]:
    """Leading (non-spatial) indices of the plane on screen; () for a 2-D image."""
    shape = spatial_shape(layer)
    n_lead = len(shape) - 2
    if n_lead <= 0:
        return ()
    point = layer.world_to_data(viewer.dims.point)
    return tuple(int(np.clip(round(float(p)), 0, shape[i] - 1)) for i, p in enumerate(point[:n_lead]))


@dataclass(frozen=True)
class ImageSnapshot:
    """What a worker needs to read one plane of a layer, taken on the main thread (no layer access after)."""

    data: Any
    plane: tuple[int, ...]
    rgb: bool
    spacing: tuple[float, ...]
    metadata: dict
    volume: bool = False  # a CT/MR volume: its slice is predicted with the volume's window and neighbours

    def image(self):
        """The plane as an engine ImageData (decodes a lazy plane: call it in the worker)."""
        from medseg.io.types import ImageData

        a = np.asarray(self.data[self.plane] if self.plane else self.data)
        return ImageData(a, self.spacing, self.metadata, rgb=self.rgb)


def snapshot(layer: Image, plane: tuple[int, ...]) -> ImageSnapshot:
    from napari_medseg._predict_volume import is_volume_layer

    meta = {k: v for k, v in (layer.metadata or {}).items() if k != "medseg"}
    spacing = tuple(float(s) for s in layer.scale[-2:])
    return ImageSnapshot(_full_res(layer), plane, bool(layer.rgb), spacing, meta, volume=is_volume_layer(layer))


def label_values(prediction) -> np.ndarray:
    """What the prediction layer shows: class ids (H, W); for overlapping (multilabel) classes one plane
    per class holding its id, (C, H, W): the labels layer's own form for them."""
    cm = prediction.classmap
    if cm.task != "multilabel":
        return prediction.labels
    ids = np.asarray(cm.ids, dtype=np.min_scalar_type(max(cm.ids)))
    return np.moveaxis(prediction.labels, -1, 0).astype(ids.dtype) * ids.reshape(-1, 1, 1)


def foreground_probability(prediction) -> np.ndarray:
    """(H, W) probability that a pixel is not background."""
    p, task = prediction.probs, prediction.classmap.task
    if task == "binary":
        return p[0]
    if task == "multiclass":
        return 1.0 - p[0]
    return p.max(0)


def _writable(data: Any) -> bool:
    """Whether an output layer's array can be written in place (ours always is; a user's may not be numpy)."""
    return isinstance(data, np.ndarray) and data.flags.writeable


def refresh_pixels(layer, layers) -> None:
    """Redraw a model layer whose pixels changed in place: no thumbnail, no extent (the shape is the same),
    and unseen by the layer list (``layers``: the viewer's).

    Each repaint of any widget is one of the whole window while the canvas's GL widget is in it (through
    Xvfb's software GL, 50-300 ms). A thumbnail costs a downsampling and colouring of the slice and a
    repaint of the layer list. The list also repaints the layer's row at any event the layer emits (it
    hears them through the list's own emitter; the refresh's ``set_data``), in a composition of its own
    after the canvas's; nothing in the row changes here: its name, visibility, lock and thumbnail stay.
    The canvas hears the layer's own emitters, which are not blocked. A model layer's thumbnail is the
    prediction in miniature and follows at napari's next refresh of the layer (a slice change).
    """
    with layers.events.blocker():
        layer.refresh(thumbnail=False, extent=False)


class Outputs:
    """The prediction / probability / uncertainty layers of one image, written plane by plane."""

    def __init__(self, viewer):
        self.viewer = viewer
        bind_toggle_key(viewer)  # the Predict dock makes these layers: its key shows / hides them
        self.source: tuple[int, int] | None = None  # (id of the image layer, its data version)
        self.predicted: np.ndarray | None = None
        self.classmap = None

    def show(
        self, image: Image, version: int, plane: tuple[int, ...], prediction, probability: bool, uncertainty: bool
    ) -> None:
        shape = spatial_shape(image)
        if self.source != (id(image), version) or self.predicted is None or self.predicted.shape != shape[:-2]:
            self.invalidate()
            self.source, self.predicted = (id(image), version), np.zeros(shape[:-2], bool)
        self.classmap = prediction.classmap
        with label_stays_active(self.viewer):  # napari selects each layer it adds
            self._write_all(image, shape, plane, prediction, probability, uncertainty)

    def _write_all(self, image: Image, shape, plane, prediction, probability: bool, uncertainty: bool) -> None:
        self._write(PREDICTION_LAYER, image, shape, plane, label_values(prediction), self._labels_kwargs)
        self.predicted[plane] = True
        if probability:
            self._write(
                PROBABILITY_LAYER,
                image,
                shape,
                plane,
                foreground_probability(prediction),
                lambda: {
                    "colormap": "magma",
                    "contrast_limits": (0.0, 1.0),
                    "opacity": MAP_OPACITY,
                    "blending": "additive",
                },
            )
        if uncertainty:
            self._write(
                UNCERTAINTY_LAYER,
                image,
                shape,
                plane,
                prediction.uncertainty,
                lambda: {
                    "colormap": "viridis",
                    "contrast_limits": (0.0, 1.0),
                    "opacity": MAP_OPACITY,
                    "blending": "additive",
                    "visible": False,
                },
            )

    def invalidate(self) -> None:
        """The image changed: blank the outputs (they belong to the old pixels) until a new prediction."""
        if self.source is None:
            return  # nothing written since the last blanking
        self.source = self.predicted = None
        for layer in list(self.viewer.layers):
            if layer.name in OUTPUT_LAYERS:
                # through napari's data setter, not in place: blanking in place when the image changes
                # crashed Mesa's software GL (glDrawArrays, segfault) on the next draw after a stack
                # layer was removed (bench_gui_responsiveness.py, opening a workspace after a stack)
                layer.data = np.zeros(layer.data.shape, layer.data.dtype)

    def _labels_kwargs(self) -> dict:
        _, kwargs, _ = labels_layer(None, PREDICTION_LAYER, "model prediction", (1.0, 1.0), self.classmap)
        kwargs.pop("scale")
        colours = prediction_colours(self.classmap)
        return {**kwargs, **({"colormap": colours} if colours else {}), "opacity": PREDICTION_OPACITY}

    def _write(self, name: str, image: Image, shape, plane, values: np.ndarray, make_kwargs) -> None:
        layers, is_labels = self.viewer.layers, name == PREDICTION_LAYER
        classes = values.shape[:-2]  # (C,) for one plane per class, else ()
        full_shape, index = classes + tuple(shape), (slice(None),) * len(classes) + tuple(plane)
        dtype = values.dtype if is_labels else np.float32
        n = len(shape)
        geometry = {
            "scale": (1.0,) * len(classes) + tuple(image.scale[-n:]),
            "translate": (0.0,) * len(classes) + tuple(image.translate[-n:]),
        }
        layer = next((x for x in layers if x.name == name), None)
        if layer is not None and not isinstance(layer, Labels if is_labels else Image):
            layers.remove(layer)  # a user's layer of the wrong type under our name
            layer = None
        if layer is None:
            full = np.zeros(full_shape, dtype)
            full[index] = values
            kwargs = {**make_kwargs(), **geometry, "name": name}
            layer = self.viewer.add_labels(full, **kwargs) if is_labels else self.viewer.add_image(full, **kwargs)
            lock_layer(layer)
            if is_labels:
                prediction_style(layer, self.viewer)  # once: a user's later choice of outline or opacity stays
            return
        data = layer.data
        if data.shape != full_shape or not np.can_cast(values.dtype, data.dtype) or not _writable(data):
            full = np.zeros(full_shape, np.result_type(dtype, data.dtype) if data.shape == full_shape else dtype)
            full[index] = values
            layer.data = full
        else:
            # in place, also for a 2-D image: a new array costs napari's whole data setter (about 2.5x a
            # refresh on a 288x384 Labels layer) and a second repaint; only the slice on screen changes
            data[index] = values
            refresh_pixels(layer, layers)
        for key, value in geometry.items():
            if tuple(getattr(layer, key)) != value:
                setattr(layer, key, value)
        if is_labels and self.classmap is not None:
            kwargs = self._labels_kwargs()
            ours = kwargs["metadata"]["medseg"]
            if (layer.metadata.get("medseg") or {}).get("classmap") != ours.get("classmap"):  # another model
                layer.metadata["medseg"] = ours
                layer.colormap = kwargs["colormap"]
        lock_layer(layer)  # also a layer a user made under our name: it is overwritten, never edited
