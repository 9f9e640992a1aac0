"""The controls of the Predict dock widget and their layout (the widget module holds the behaviour)."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_medseg._predict_copy import COPY_MODES
from napari_medseg._predict_model import DEVICES

CHECKPOINTS, ARCHITECTURE = "checkpoint(s)", "architecture (untrained)"
UNTRAINED_NOTE = ("<span style='color:#e0a030'><b>Untrained model</b>: random decoder weights, so its "
                  "predictions mean nothing until it is fine-tuned. Use it to try the workflow.</span>")


def build_controls(w: QWidget) -> None:
    """Create the Predict widget's controls as attributes of ``w`` and lay them out."""
    from medseg.inference.device import PRECISIONS, available_devices
    from medseg.models import list_architectures, list_encoders

    w.source = _combo([CHECKPOINTS, ARCHITECTURE])
    w.checkpoint_list = QListWidget()
    w.checkpoint_list.setMaximumHeight(70)
    w.add_button, w.remove_button = QPushButton("Add checkpoint..."), QPushButton("Remove")
    w.arch = _combo(list_architectures(), "Unet")
    w.encoder = _combo(list_encoders(), "resnet34", editable=True)
    w.weights = QLineEdit()
    w.weights.setPlaceholderText("optional local encoder weights file")
    w.untrained_note = QLabel(UNTRAINED_NOTE)
    w.untrained_note.setWordWrap(True)
    w.device = _combo(list(DEVICES))
    w.precision = _combo(list(PRECISIONS))
    w.threshold = _spin(QDoubleSpinBox(), 0.01, 0.99, 0.5, step=0.05)
    w.tta = QCheckBox("average with horizontal + vertical flips (TTA)")
    w.tile = _spin(QSpinBox(), 0, 4096, 0, step=32)
    w.tile.setSpecialValueText("auto")
    w.overlap = _spin(QDoubleSpinBox(), 0.0, 0.9, 0.25, step=0.05)
    w.show_probability = QCheckBox("probability layer")
    w.show_uncertainty = QCheckBox("uncertainty layer")
    w.predict_button, w.cancel_button = QPushButton("Predict"), QPushButton("Cancel")
    w.live = QCheckBox("Live: predict on every slice, sample or image change")
    w.status = QLabel()
    w.status.setWordWrap(True)
    w.copy_mode = _combo(list(COPY_MODES))
    w.shapes = QComboBox()
    w.shapes.setToolTip("Shapes layer whose polygons / rectangles mark the region to copy")
    w.copy_button = QPushButton("Copy prediction into labels")
    _layout(w)
    w.device.setToolTip("auto picks a GPU when there is one; devices here: " + ", ".join(available_devices()))


def _layout(w: QWidget) -> None:
    model = w.model_form = QFormLayout()
    model.addRow("Model", w.source)
    model.addRow(w.checkpoint_list)
    buttons = QHBoxLayout()
    buttons.addWidget(w.add_button)
    buttons.addWidget(w.remove_button)
    model.addRow(buttons)
    for label, control in (("Architecture", w.arch), ("Encoder", w.encoder), ("Weights", w.weights)):
        model.addRow(label, control)
    model.addRow(w.untrained_note)
    settings = QFormLayout()
    for label, control in (("Device", w.device), ("Precision", w.precision), ("Threshold", w.threshold),
                           ("TTA", w.tta), ("Tile size", w.tile), ("Tile overlap", w.overlap),
                           ("Show", w.show_probability), ("", w.show_uncertainty)):
        settings.addRow(label, control)
    run = QHBoxLayout()
    run.addWidget(w.predict_button)
    run.addWidget(w.cancel_button)
    copy = QFormLayout()
    copy.addRow("Copy", w.copy_mode)
    copy.addRow("Region", w.shapes)
    copy.addRow(w.copy_button)
    layout = QVBoxLayout(w)
    for title, form in (("Model", model), ("Settings", settings), ("Into the labels", copy)):
        box = QGroupBox(title)
        box.setLayout(form)
        layout.addWidget(box)
        if title == "Settings":
            layout.addLayout(run)
            layout.addWidget(w.live)
            layout.addWidget(w.status)
    layout.addStretch(1)


def _combo(items: list[str], current: str | None = None, editable: bool = False) -> QComboBox:
    box = QComboBox()
    box.addItems(items)
    box.setEditable(editable)
    if current is not None:
        box.setCurrentText(current)
    return box


def _spin(box, low: float, high: float, value: float, step: float):
    box.setRange(low, high)
    box.setSingleStep(step)
    if isinstance(box, QDoubleSpinBox):
        box.setDecimals(2)
    box.setValue(value)
    return box
