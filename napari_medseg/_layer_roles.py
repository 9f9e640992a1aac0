"""Which layer is for editing and which only for looking: the model's layers are locked, the label keeps the brush.

The reviewed label (``LABELS_LAYER``) is the only layer a stroke can land on.
The model's layers (:data:`MODEL_LAYERS`: the slice and whole-volume
prediction, the probability and uncertainty maps, Review's label suspicion)
are locked by :func:`lock_layer`: napari's ``editable`` is False, so its paint,
fill and erase tools fall back to pan/zoom, and stays False (napari sets
``editable`` back to True each time a Labels layer's data is replaced; the lock
turns it off again at once). napari selects each layer it adds, which put the
brush on the prediction after Predict and silently lost the strokes painted
there: whoever adds or replaces one of these layers calls
:func:`keep_label_active` (or wraps the work in :func:`label_stays_active`) to
give the selection back to the label, in the mode it was in (paint stays
paint).

Colours (the README's table):

* the label: filled, in its class map's colours (``label_colours``), napari's
  Labels opacity (0.7);
* the prediction: an outline :data:`PREDICTION_CONTOUR` pixels wide, opacity
  :data:`PREDICTION_OPACITY`, in :data:`PREDICTION_PALETTE` (class k of the
  class map in its k-th colour, yellow first; a palette colour too close to
  the label's own colour of that class is skipped), so a prediction over its
  label reads as a yellow line around a filled area (filled in a 3-D view,
  where napari draws no outline);
* probability (magma) and uncertainty (viridis) maps: :data:`MAP_OPACITY`,
  additive; the uncertainty starts hidden.

:data:`TOGGLE_PREDICTION_KEY` ('h', "hide") shows / hides the model's layers
(:func:`toggle_prediction`), bound on the viewer when the Predict dock opens:
napari binds no 'h' on the viewer nor on any layer, and our '.' / ','
(samples), 'j' / 'k' (volume slices) and Review's Shift keys differ.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari_medseg._session import (
    IMAGE_LAYER,
    LABELS_LAYER,
    PREDICTION_LAYER,
    PROBABILITY_LAYER,
    UNCERTAINTY_LAYER,
    VOLUME_PREDICTION_LAYER,
)

TOGGLE_PREDICTION_KEY = "h"
SUSPICION_LAYER = "label suspicion"  # Review's overlay (_review_suspicion imports it from here)
PREDICTION_LAYERS = (PREDICTION_LAYER, VOLUME_PREDICTION_LAYER)  # class ids: Labels layers
MAP_LAYERS = (PROBABILITY_LAYER, UNCERTAINTY_LAYER)  # per-pixel maps: Image layers
TOGGLED_LAYERS = PREDICTION_LAYERS + MAP_LAYERS  # what the toggle shows and hides
MODEL_LAYERS = TOGGLED_LAYERS + (SUSPICION_LAYER,)  # never edited, never selected by us
# Review's disagreeing duplicate, beside the sample (_review_partner): looked at, never edited
PARTNER_IMAGE_LAYER, PARTNER_LABELS_LAYER = "duplicate partner image", "duplicate partner labels"
LOOK_ONLY_LAYERS = MODEL_LAYERS + (PARTNER_IMAGE_LAYER, PARTNER_LABELS_LAYER)

PREDICTION_CONTOUR = 2  # outline width in screen pixels of the data (napari's Labels.contour)
PREDICTION_OPACITY = 0.9  # an outline needs to be opaque to read over a filled label
MAP_OPACITY = 0.5
PREDICTION_PALETTE = (  # RGB 0-255: bright, unlike the dark fill colours class maps usually hold
    (255, 221, 0),  # yellow
    (0, 229, 255),  # cyan
    (255, 64, 255),  # magenta
    (255, 128, 0),  # orange
    (128, 255, 0),  # lime
    (255, 255, 255),  # white
)
TOO_CLOSE = 96  # RGB distance under which a palette colour reads as the label's own


def prediction_colours(classmap: Any) -> dict[Any, Any] | None:
    """napari direct colours of a prediction layer: class k in the k-th palette colour that differs from the
    label's colour of that class (module doc); background transparent."""
    if classmap is None:
        return None
    colours: dict[Any, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    n = len(PREDICTION_PALETTE)
    for k, c in enumerate(classmap.classes):
        for step in range(n):
            rgb = PREDICTION_PALETTE[(k + step) % n]
            if sum((a - b) ** 2 for a, b in zip(rgb, c.colour)) ** 0.5 >= TOO_CLOSE:
                break
        colours[c.id] = tuple(v / 255 for v in rgb) + (1.0,)
    return colours


def prediction_style(layer: Any, viewer: Any) -> None:
    """Draw a prediction Labels layer as an outline with its own opacity (module doc); filled in a 3-D view,
    where napari draws no outline (it warns at each refresh after the first), the outline again back in 2-D."""
    layer, dims = _real(layer), _real(viewer).dims
    if layer.opacity != PREDICTION_OPACITY:
        layer.opacity = PREDICTION_OPACITY
    outline = {"width": PREDICTION_CONTOUR}  # the 2-D width; a user's own once they change it in 2-D
    ref = weakref.ref(layer)

    def chosen(*_: Any) -> None:
        found = ref()
        if found is not None and dims.ndisplay == 2:
            outline["width"] = found.contour

    def follow(*_: Any) -> None:
        found = ref()
        if found is None:
            dims.events.ndisplay.disconnect(follow)
            return
        width = 0 if dims.ndisplay == 3 else outline["width"]
        if found.contour != width:
            found.contour = width

    layer.events.contour.connect(chosen)
    dims.events.ndisplay.connect(follow)
    follow()


def _real(obj: Any) -> Any:
    """The viewer or layer behind napari's ``PublicOnlyProxy`` (a dock's view of them)."""
    return getattr(obj, "__wrapped__", obj)


# ---------------------------------------------------------------- locking
_LOCKED: weakref.WeakSet[Any] = weakref.WeakSet()


def lock_layer(layer: Any) -> None:
    """Make ``layer`` impossible to paint: not editable, and kept so when napari resets it (a Labels layer's
    new data makes it editable again)."""
    layer = _real(layer)  # a proxy handed to a dock dies at once: the lock holds the layer itself
    layer.editable = False
    if layer in _LOCKED:
        return
    _LOCKED.add(layer)
    ref = weakref.ref(layer)

    def relock(*_: Any) -> None:
        found = ref()
        if found is not None and found in _LOCKED and found.editable:
            found.editable = False

    layer.events.editable.connect(relock)
    layer.events.data.connect(relock)


def is_locked(layer: Any) -> bool:
    return _real(layer) in _LOCKED


# ---------------------------------------------------------------- selection
def _label_layer(viewer: Any) -> Any:
    from napari.layers import Labels

    layers = viewer.layers
    layer = layers[LABELS_LAYER] if LABELS_LAYER in layers else None
    return layer if isinstance(layer, Labels) else None


def keep_label_active(viewer: Any, previous: Any = None) -> Any:
    """Give the selection back after we added or replaced a layer: to ``previous`` (the layer active before,
    when it is a user's own layer still there, e.g. the Shapes of a region to copy), else to the reviewed
    label layer, in the mode it was in. Returns the active layer."""
    viewer, previous = _real(viewer), _real(previous)
    layers = viewer.layers
    label = _label_layer(viewer)
    kept = previous is not None and previous in layers and previous.name not in LOOK_ONLY_LAYERS
    if kept and previous.name != IMAGE_LAYER or label is None:
        target = previous if kept else None
    else:
        target = label
    if target is None:
        active = layers.selection.active
        if active is not None and active.name in LOOK_ONLY_LAYERS:
            layers.selection.active = None  # nothing to edit: at least not the prediction
        return layers.selection.active
    if layers.selection.active is not target or len(layers.selection) != 1:
        mode = getattr(target, "mode", None)
        layers.selection.active = target
        if mode is not None and target.mode != mode:
            target.mode = mode
    return target


@contextmanager
def label_stays_active(viewer: Any) -> Iterator[None]:
    """Around code that adds or replaces model layers: the layer active before stays active (the label when
    it was a model layer or none)."""
    viewer = _real(viewer)
    before = viewer.layers.selection.active
    mode = getattr(before, "mode", None)
    try:
        yield
    finally:
        active = keep_label_active(viewer, before)
        if active is before and mode is not None and getattr(active, "mode", mode) != mode:
            active.mode = mode


# ---------------------------------------------------------------- toggle
_HIDDEN: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def toggle_prediction(viewer: Any) -> bool:
    """Show or hide the model's layers (:data:`TOGGLED_LAYERS`) of the sample on screen; whether they are
    shown now. Hiding remembers which were visible; showing brings those back (the prediction itself when
    none was remembered). The selection stays where it is."""
    viewer = _real(viewer)
    layers = viewer.layers
    ours = [layer for layer in layers if layer.name in TOGGLED_LAYERS]
    if not ours:
        return False
    shown = [layer for layer in ours if layer.visible]
    before = layers.selection.active
    if shown:
        _HIDDEN[viewer] = tuple(layer.name for layer in shown)
        for layer in shown:
            layer.visible = False
        return False
    names = _HIDDEN.pop(viewer, ()) or PREDICTION_LAYERS
    chosen = [layer for layer in ours if layer.name in names] or [
        layer for layer in ours if layer.name in PREDICTION_LAYERS
    ]
    if not chosen:
        chosen = ours
    for layer in chosen:
        layer.visible = True
    if layers.selection.active is not before:
        keep_label_active(viewer, before)
    return True


def bind_toggle_key(viewer: Any) -> None:
    """Bind :data:`TOGGLE_PREDICTION_KEY` on ``viewer`` to :func:`toggle_prediction` (again: the same binding)."""
    # napari calls a viewer's key binding with the viewer: the binding holds no reference to it
    _real(viewer).bind_key(TOGGLE_PREDICTION_KEY, toggle_prediction, overwrite=True)
