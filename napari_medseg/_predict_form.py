"""The Predict dock's forms: the model, the settings, the copy into the labels (the widget module holds the
behaviour). Each builder returns its form (:mod:`napari_medseg._forms`); the architectures and encoders
arrive after the dock is built (:mod:`napari_medseg._model_choices`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from medseg.choices import PRECISIONS
from napari_medseg._forms import form, placeholder
from napari_medseg._model_choices import DEFAULT_ARCH, DEFAULT_ENCODER, architectures, encoders
from napari_medseg._predict_copy import COPY_MODES
from napari_medseg._predict_copy_volume import SLICE_SOURCE, SOURCES
from napari_medseg._predict_model import DEVICES

CHECKPOINTS, ARCHITECTURE = "checkpoint(s)", "architecture (untrained)"
UNTRAINED_NOTE = (
    "<span style='color:#e0a030'><b>Untrained model</b>: random decoder weights, so its "
    "predictions mean nothing until it is fine-tuned. Use it to try the workflow.</span>"
)


def source_form() -> Container:
    """Checkpoints, or an untrained architecture."""
    return form(ComboBox(name="source", label="Model", choices=[CHECKPOINTS, ARCHITECTURE], value=CHECKPOINTS))


def architecture_form() -> Container:
    """The untrained model: architecture, encoder (typed names allowed, e.g. a timm ``tu-`` encoder) and an
    optional local encoder weights file."""
    encoder = ComboBox(name="encoder", label="Encoder", choices=encoders, value=DEFAULT_ENCODER)
    encoder.native.setEditable(True)
    weights = LineEdit(name="weights", label="Weights")
    placeholder(weights, "optional local encoder weights file")
    return form(
        ComboBox(name="arch", label="Architecture", choices=architectures, value=DEFAULT_ARCH), encoder, weights
    )


def settings_form() -> Container:
    tile = SpinBox(name="tile", label="Tile size", value=0, min=0, max=4096, step=32)
    tile.native.setSpecialValueText("auto")
    return form(
        ComboBox(
            name="device",
            label="Device",
            choices=list(DEVICES),
            value="auto",
            tooltip="auto picks a GPU when there is one",
        ),
        ComboBox(name="precision", label="Precision", choices=list(PRECISIONS), value="auto"),
        FloatSpinBox(name="threshold", label="Threshold", value=0.5, min=0.01, max=0.99, step=0.05),
        CheckBox(name="tta", text="TTA: average with horizontal + vertical flips"),
        tile,
        FloatSpinBox(name="overlap", label="Tile overlap", value=0.25, min=0.0, max=0.9, step=0.05),
        CheckBox(name="show_probability", text="Show the probability layer"),
        CheckBox(name="show_uncertainty", text="Show the uncertainty layer"),
    )


def copy_form(shape_layers: Callable[[Any], list[str]]) -> Container:
    """``shape_layers``: the names of the viewer's Shapes layers (the region choices, asked again when the
    layers change)."""
    return form(
        ComboBox(
            name="source",
            label="From",
            choices=list(SOURCES),
            value=SLICE_SOURCE,
            tooltip="CT/MR volumes: the slices predicted so far, or the last 'Predict whole volume' of this volume",
        ),
        ComboBox(name="copy_mode", label="Copy", choices=list(COPY_MODES), value=next(iter(COPY_MODES))),
        ComboBox(
            name="shapes",
            label="Region",
            choices=shape_layers,
            tooltip="Shapes layer whose polygons / rectangles mark the region to copy",
        ),
    )
