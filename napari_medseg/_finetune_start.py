"""What the Fine-tune dock checks before a run starts: the form's TrainConfig, and on the workspace the train /
validation split its samples can make (said here, not by the training process seconds later); the modality
of the volume on screen, which the "auto" intensity window follows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_medseg._finetune_config import WORKSPACE, config_from_form, split_problem


def screen_modality(viewer: Any, session: Any) -> str | None:
    """The modality ("CT", "MR") of the session's workspace volume on screen; None for anything else."""
    from napari.layers import Image

    from napari_medseg._predict_volume import is_volume_layer
    from napari_medseg._session import IMAGE_LAYER
    from napari_medseg._viewer_access import layer_named

    layer = layer_named(viewer, IMAGE_LAYER, Image)
    if layer is None or session.sample_id is None or not is_volume_layer(layer):
        return None
    return layer.metadata.get("modality")


def checked_config(
    form: Any, session: Any, run_dir: Path, volume_workspace: bool, modality: Callable[[], str | None]
) -> tuple[Any, Any, Any]:
    """(why not, None, None) when a run cannot start: a ``ConfigError``, or the text of a split the chosen
    samples cannot make (with the form's validation fraction set to 0 when training without validation
    would do: Start again trains on the one case); else (None, the TrainConfig, the workspace the run
    trains on or None). ``volume_workspace``: the session's workspace holds volumes; ``modality()``: that
    of the volume on screen."""
    from napari_medseg._torch_guard import load_torch

    load_torch()  # the training config's package; the run itself is a child process
    from medseg.training.config import ConfigError

    values, ws = form.asdict(), session.workspace
    on_workspace = values["data"] == WORKSPACE
    volumes = on_workspace and volume_workspace
    try:
        config = config_from_form(
            values,
            workspace=ws,
            checkpoints=session.checkpoints,
            out_dir=run_dir,
            volumes=volumes,
            modality=modality() if volumes else None,
        )
    except ConfigError as e:
        return e, None, None
    if not on_workspace:
        return None, config, None
    problem = split_problem(ws, config, volumes)  # the split is made by group (case of a volume)
    if problem is not None:
        text, without_validation = problem
        if without_validation:
            form.val_fraction.value = 0.0
        return text, None, None
    return None, config, ws
