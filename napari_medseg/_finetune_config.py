"""The Fine-tune form and how its values become a ``TrainConfig``.

The form covers what a user changes between runs; anything else the trainer
takes (model kwargs, steps per epoch, schedulers, mixup...) goes in the
"more options" box as YAML, deep-merged over the form, so nothing in
``TrainConfig`` is out of reach. ``TrainConfig.from_dict`` validates the
whole config and names every problem at once.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    SpinBox,
    TextEdit,
)

from medseg.choices import AUGMENT_PRESETS, LOSS_PRESETS
from napari_medseg._forms import form, placeholder
from napari_medseg._model_choices import DEFAULT_ARCH, DEFAULT_ENCODER, architectures, encoders
from napari_medseg._predict_model import DEVICES

if TYPE_CHECKING:
    from magicgui.widgets import Container

    from medseg.training.config import TrainConfig

WORKSPACE, FOLDER = "workspace (corrected labels)", "dataset folder"
NEW_MODEL, FROM_CHECKPOINT = "architecture", "current checkpoint"


def build_form() -> Container:
    """The training form (:mod:`napari_medseg._forms`); the architectures and encoders it offers arrive after
    it is built (:mod:`napari_medseg._model_choices`)."""
    lr = FloatSpinBox(name="lr", label="Learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4)
    lr.native.setDecimals(6)
    extra = TextEdit(name="extra", label="More options (YAML)")
    placeholder(
        extra,
        "any TrainConfig field, e.g.\nmax_steps_per_epoch: 50\n"
        "data: {statuses: [corrected, accepted]}\nmodel: {encoder_weights: /path/w.pth}",
    )
    return form(
        ComboBox(name="data", label="Data", choices=[WORKSPACE, FOLDER], value=WORKSPACE),
        FileEdit(name="dataset", label="Dataset folder", mode="d"),
        ComboBox(name="start", label="Start from", choices=[NEW_MODEL, FROM_CHECKPOINT], value=NEW_MODEL),
        ComboBox(name="arch", label="Architecture", choices=architectures, value=DEFAULT_ARCH),
        ComboBox(name="encoder", label="Encoder", choices=encoders, value=DEFAULT_ENCODER),
        ComboBox(name="loss", label="Loss", choices=list(LOSS_PRESETS), value="seed004_bce_dice"),
        SpinBox(name="epochs", label="Epochs", value=10, min=1, max=10000),
        lr,
        SpinBox(name="batch_size", label="Batch size", value=8, min=1, max=1024),
        SpinBox(name="image_size", label="Image size", value=256, min=32, max=4096, step=32),
        ComboBox(name="augment", label="Augmentation", choices=list(AUGMENT_PRESETS), value="light"),
        ComboBox(name="device", label="Device", choices=list(DEVICES), value="auto"),
        FloatSpinBox(name="val_fraction", label="Validation fraction", value=0.2, min=0.0, max=0.9, step=0.05),
        CheckBox(name="freeze_encoder", label="Freeze encoder", value=False),
        FileEdit(name="out", label="Output folder", mode="d"),
        extra,
    )


def default_output(workspace: Any) -> Path:
    """Beside the workspace (never inside the dataset), else in the home folder."""
    if workspace is not None:
        root = Path(workspace.root)
        return root.parent / f"{root.name}-runs"
    return Path.home() / "medseg-runs"


def run_folder(out: Path) -> Path:
    """A new run folder under ``out``, named by the time it starts."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, k = out / f"run-{stamp}", 1
    while folder.exists():
        k += 1
        folder = out / f"run-{stamp}-{k}"
    return folder


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_from_form(values: dict[str, Any], *, workspace: Any, checkpoints: list[str], out_dir: Path) -> TrainConfig:
    """The TrainConfig the form describes; ConfigError names every problem (form and YAML alike). Loads the
    training package (torch): called when a run starts."""
    import yaml

    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.training.config import ConfigError, TrainConfig

    problems = []
    if values["data"] == WORKSPACE:
        root = str(workspace.root) if workspace is not None else ""
        if workspace is None:
            problems.append("data: no workspace is open (open one in the Dataset widget, or train on a dataset folder)")
    else:
        root = str(values["dataset"] or "")
        if not root or root == ".":
            problems.append("data: choose the dataset folder to train on")
    init = None
    if values["start"] == FROM_CHECKPOINT:
        if not checkpoints:
            problems.append(
                "model.init_checkpoint: there is no current checkpoint (choose one in Predict, or "
                "start from an architecture)"
            )
        else:
            init = str(checkpoints[0])
    size = int(values["image_size"])
    d = {
        "data": {"root": root, "val_fraction": float(values["val_fraction"]), "image_size": [size, size]},
        "model": {
            "arch": values["arch"],
            "encoder": values["encoder"],
            "init_checkpoint": init,
            "freeze_encoder": bool(values["freeze_encoder"]),
        },
        "loss": values["loss"],
        "augment": values["augment"],
        "epochs": int(values["epochs"]),
        "batch_size": int(values["batch_size"]),
        "optim": {"lr": float(values["lr"])},
        "device": DEVICES[values["device"]],
        "out_dir": str(out_dir),
    }
    text = (values.get("extra") or "").strip()
    if text:
        try:
            extra = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(problems + [f"more options: not valid YAML: {e}"]) from e
        if not isinstance(extra, dict):
            problems.append(f"more options: must be a YAML mapping (e.g. 'max_steps_per_epoch: 20'), got {extra!r}")
        else:
            d = _merge(d, extra)
    try:
        config = TrainConfig.from_dict(d)
    except ConfigError as e:
        problems += [p for p in e.problems if not p.startswith("data.root: required")]
    if problems:
        raise ConfigError(problems)
    return config
