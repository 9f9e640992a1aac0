"""The Fine-tune form and how its values become a ``TrainConfig``.

The form covers what a user changes between runs; anything else the trainer
takes (model kwargs, steps per epoch, schedulers, mixup...) goes in the
"more options" box as YAML, deep-merged over the form, so nothing in
``TrainConfig`` is out of reach. ``TrainConfig.from_dict`` validates the
whole config and names every problem at once.

On CT/MR volumes the model learns from the volumes' slices (the workspace's
cases split by case, never a case on both sides): 2-D (each slice alone) or
2.5-D (``data.slices`` K neighbouring slices as the channels), through one
intensity window per volume (``data.window``: a CT window in HU, or MR's 1-99
percentiles), which the checkpoint keeps so prediction prepares each slice the
same way. "auto" takes the window from the modality of the workspace's volume
on screen: CT soft tissue, else the percentiles. A checkpoint fine-tuned
further keeps its own slices and window (the model learnt that input).
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
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
from medseg.workspace.label_sets import DEFAULT_LABEL_SET, LABEL_SETS
from napari_medseg._forms import form, placeholder
from napari_medseg._model_choices import DEFAULT_ARCH, DEFAULT_ENCODER, architectures, encoders
from napari_medseg._predict_model import DEVICES

if TYPE_CHECKING:
    from magicgui.widgets import Container

    from medseg.training.config import TrainConfig

# the workspace's current label revisions train (not the dataset's source masks); "Train on" says whose
WORKSPACE, FOLDER = "workspace (current labels)", "dataset folder"
NEW_MODEL, FROM_CHECKPOINT = "architecture", "current checkpoint"
SLICE_CHOICES = [("1 (2-D: each slice alone)", 1)] + [
    (f"{k} (2.5-D: a slice and {k - 1} neighbours)", k) for k in (3, 5, 7)
]
AUTO, PERCENTILE, RANGE = "auto", "percentile", "range"
VOLUME_FIELDS = ("slices", "window")  # shown when the data are volumes and the model is new


# "Train on" (data.statuses by name: medseg.workspace.label_sets; ``medseg train --labels`` takes the same)
CHOICE_TEXT = {
    "reviewed": "reviewed only (accepted + corrected)",
    "corrected": "corrected only",
    "all": "all current labels (not excluded)",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def choice_items(counts: Any, volumes: bool = False) -> list[tuple[str, str]]:
    """The "Train on" choices, (text, name): each with the samples and groups (cases) it holds when the
    workspace's ``counts`` (:class:`~medseg.workspace.label_sets.LabelCounts`) are known."""
    group = "case" if volumes else "group"
    items = []
    for name in LABEL_SETS:
        text = CHOICE_TEXT[name]
        if counts is not None:
            c = counts[name]
            text += f": {plural(c.samples, 'sample')}, {plural(len(c.groups), group)}"
        items.append((text, name))
    return items


def ct_presets() -> dict[str, tuple[float, float]]:
    """The CT windows (center, width) in HU that the Display dock offers (read when asked: pydicom's module)."""
    from medseg.io.dicom_window import CT_PRESETS

    return CT_PRESETS


def window_choices(*_: Any) -> list[tuple[str, str]]:
    return [
        ("auto (CT: soft tissue 40/400, MR: 1-99 %)", AUTO),
        *[(f"CT {name.replace('_', ' ')} {c:g}/{w:g}", name) for name, (c, w) in ct_presets().items()],
        ("MR: 1-99 percentiles of each volume", PERCENTILE),
        ("each volume's min..max", RANGE),
    ]


def build_form() -> Container:
    """The training form (:mod:`napari_medseg._forms`); the architectures and encoders it offers arrive after
    it is built (:mod:`napari_medseg._model_choices`)."""
    lr = FloatSpinBox(name="lr", label="Learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4)
    lr.native.setDecimals(6)
    extra = TextEdit(name="extra", label="More options (YAML)")
    placeholder(
        extra,
        "any TrainConfig field, e.g.\nmax_steps_per_epoch: 50\n"
        "data: {window: [50, 350]}\nmodel: {encoder_weights: /path/w.pth}",
    )
    return form(
        ComboBox(name="data", label="Data", choices=[WORKSPACE, FOLDER], value=WORKSPACE),
        FileEdit(name="dataset", label="Dataset folder", mode="d"),
        ComboBox(
            name="statuses",
            label="Train on",
            choices=choice_items(None),
            value=DEFAULT_LABEL_SET,
            tooltip="which workspace samples' current labels train (their review status), and how many "
            "samples and groups each choice holds; a validation split needs 2 groups",
        ),
        ComboBox(name="start", label="Start from", choices=[NEW_MODEL, FROM_CHECKPOINT], value=NEW_MODEL),
        ComboBox(name="arch", label="Architecture", choices=architectures, value=DEFAULT_ARCH),
        ComboBox(name="encoder", label="Encoder", choices=encoders, value=DEFAULT_ENCODER),
        ComboBox(
            name="slices",
            label="Volume slices",
            choices=SLICE_CHOICES,
            value=1,
            tooltip="CT/MR volumes: the input of each slice; 2.5-D gives the model its neighbours as channels",
        ),
        ComboBox(
            name="window",
            label="Intensity window",
            choices=window_choices(),
            value=AUTO,
            tooltip="CT/MR volumes: how voxel values become the model's input, one window per volume; "
            "stored in the checkpoint (a custom one: 'data: {window: [CENTER, WIDTH]}' below)",
        ),
        ComboBox(name="loss", label="Loss", choices=list(LOSS_PRESETS), value="seed004_bce_dice"),
        SpinBox(name="epochs", label="Epochs", value=10, min=1, max=10000),
        lr,
        SpinBox(name="batch_size", label="Batch size", value=8, min=1, max=1024),
        SpinBox(name="image_size", label="Image size", value=256, min=32, max=4096, step=32),
        ComboBox(name="augment", label="Augmentation", choices=list(AUGMENT_PRESETS), value="light"),
        ComboBox(name="device", label="Device", choices=list(DEVICES), value="auto"),
        FloatSpinBox(name="val_fraction", label="Validation fraction", value=0.2, min=0.0, max=0.9, step=0.05),
        CheckBox(name="freeze_encoder", label="Freeze encoder", value=False),
        FileEdit(
            name="out",
            label="Output folder",
            mode="d",
            tooltip="each run gets a folder in it; by default beside the workspace (<workspace>-runs)",
        ),
        extra,
    )


def default_output(workspace: Any) -> Path:
    """Beside the workspace (``<name>-runs``: a run folder a user chose is refused inside a workspace or a
    dataset), else in the home folder; the dock moves it with the workspace until the user picks one."""
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


def is_volume_workspace(workspace: Any) -> bool:
    """True when the workspace holds CT/MR volumes (its samples are trained on slice by slice)."""
    return workspace is not None and any(r.is_volume for r in workspace.samples())


def window_value(choice: str, modality: str | None, volumes: bool) -> Any:
    """``data.window`` of a window choice; "auto" on volumes follows ``modality`` (of the volume on screen),
    elsewhere it is the engine's default (each image's own range)."""
    presets = ct_presets()
    if choice in presets:
        return list(presets[choice])
    if choice == PERCENTILE:
        return "percentile"
    if choice == AUTO and volumes:
        return list(presets["soft_tissue"]) if str(modality or "").upper() == "CT" else "percentile"
    return None


def describe_window(window: Any) -> str:
    if isinstance(window, (list, tuple)):
        name = next((n for n, cw in ct_presets().items() if list(cw) == [float(v) for v in window]), None)
        return f"CT window {window[0]:g}/{window[1]:g}" + (f" ({name.replace('_', ' ')})" if name else "")
    if window == "percentile":
        return "1-99 percentiles of each volume"
    return "each volume's min..max" if window is None else str(window)


def split_problem(workspace: Any, config: TrainConfig, volumes: bool) -> tuple[str, bool] | None:
    """Why the workspace samples ``config`` trains on cannot make its train / validation split, and whether
    training without validation would do (None: they can), in one line naming the count: a run needs a
    sample, a validation split 2 groups (cases of volumes; a group is never on both sides)."""
    from medseg.workspace.label_sets import count_statuses, describe_statuses, label_rows, label_set_name

    statuses = config.data.statuses
    rows = label_rows(workspace)  # one short read of the workspace, when Start is pressed
    chosen = count_statuses(rows, statuses)
    name = label_set_name(statuses)
    what = f"Train on '{CHOICE_TEXT[name] if name else ' + '.join(statuses)}'"
    group = "case" if volumes else "group"
    if not chosen.samples:
        wanted = " or ".join(statuses or LABEL_SETS[DEFAULT_LABEL_SET])
        by_status = describe_statuses(dict(Counter(r.status for r in rows.values())))
        return (
            f"{what} holds no sample: no sample of {workspace.root} is {wanted} (its {by_status}); accept or "
            "correct samples in Review, or train on more labels",
            False,
        )
    groups = chosen.groups
    if config.data.val_fraction > 0 and len(groups) < 2:
        return (
            f"{what} holds {plural(chosen.samples, 'sample')}, all one {group} ({groups[0]}); a validation split "
            f"needs at least 2 {group}s (a {group} is never on both sides). Validation fraction is now 0: press "
            f"Start again to train without validation, or train on more {group}s",
            True,
        )
    return None


def started_text(d: dict[str, Any]) -> str:
    """What a run trains on, from its Started event's detail: images, or the slices of volumes and how."""
    where = f" on {d.get('device')}, {d.get('precision')}" + (", resumed" if d.get("resumed_from") else "")
    if not d.get("volumes"):
        return f"Training on {d.get('n_train')} images ({d.get('n_val')} for validation){where}"
    config = d.get("config") or {}
    data = config.get("data") or {}
    k = int(data.get("slices") or 1)
    if (config.get("model") or {}).get("init_checkpoint"):
        how = "with the checkpoint's slices and window"
    else:
        how = (f"2.5-D ({k} slices as channels)" if k > 1 else "2-D") + f", {describe_window(data.get('window'))}"
    return (
        f"Training on {d.get('n_train_items')} slices of {d.get('n_train')} volume(s) "
        f"({d.get('n_val_items')} slices of {d.get('n_val')} for validation), {how}{where}"
    )


def config_from_form(
    values: dict[str, Any],
    *,
    workspace: Any,
    checkpoints: list[str],
    out_dir: Path,
    volumes: bool = False,
    modality: str | None = None,
) -> TrainConfig:
    """The TrainConfig the form describes; ConfigError names every problem (form and YAML alike). Loads the
    training package (torch): called when a run starts. ``volumes``: the workspace holds CT/MR volumes;
    ``modality``: that of its volume on screen (the "auto" window)."""
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
    statuses = None if values.get("statuses") in (None, DEFAULT_LABEL_SET) else LABEL_SETS[values["statuses"]]
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
    data: dict[str, Any] = {"root": root, "val_fraction": float(values["val_fraction"]), "image_size": [size, size]}
    if values["data"] == WORKSPACE and statuses is not None:
        data["statuses"] = list(statuses)
    # the volume fields count where they are shown: volumes (a volume workspace, or any dataset folder)
    # and a new model (a checkpoint keeps the slices and window it learnt)
    if (volumes or values["data"] != WORKSPACE) and init is None and values["start"] == NEW_MODEL:
        data["slices"] = int(values.get("slices") or 1)
        data["window"] = window_value(values.get("window") or AUTO, modality, volumes)
        if volumes:
            data["channels"] = 1  # grey slices; 2.5-D takes its channels from the slices
    d = {
        "data": data,
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
