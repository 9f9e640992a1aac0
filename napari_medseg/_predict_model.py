"""What the Predict widget runs: the model choice as a hashable value, and building its Predictor.

A ``ModelChoice`` is everything that changes the Predictor (checkpoints or
architecture, device, precision, threshold, TTA, tiling); the widget keeps
the Predictor it built for one choice and builds a new one, in a worker, only
when the choice changes. Checkpoint files are read once per (path, mtime): a
threshold or TTA change rebuilds the Predictor around the loaded weights.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICES = {"auto": "auto", "CPU": "cpu", "GPU": "cuda"}
TTA_FLIPS = ("hflip", "vflip")


@dataclass(frozen=True)
class ModelChoice:
    """``checkpoints`` non-empty: those (an ensemble if several); else an untrained ``arch`` + ``encoder``
    (``weights``: an optional local encoder weights file) for ``classmap_json`` (the workspace's classes)."""

    checkpoints: tuple[str, ...] = ()
    arch: str = "Unet"
    encoder: str = "resnet34"
    weights: str | None = None
    classmap_json: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threshold: float = 0.5
    tta: bool = False
    tile: int | None = None
    overlap: float = 0.25

    @property
    def untrained(self) -> bool:
        return not self.checkpoints

    def describe(self) -> str:
        if self.checkpoints:
            names = ", ".join(Path(p).name for p in self.checkpoints)
            return f"ensemble of {len(self.checkpoints)}: {names}" if len(self.checkpoints) > 1 else names
        weights = f"encoder weights {Path(self.weights).name}" if self.weights else "random weights"
        return f"UNTRAINED {self.arch} / {self.encoder} ({weights})"

    def options(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.precision,
            "threshold": self.threshold,
            "tta": TTA_FLIPS if self.tta else (),
            "tile_size": self.tile,
            "overlap": self.overlap,
        }


_CACHE_LOCK = threading.Lock()
_CHECKPOINTS: dict[tuple[str, float], Any] = {}
_CACHE_SIZE = 4


def _checkpoint(path: str):
    from napari_medseg._torch_guard import load_torch

    load_torch()  # done by build_predictor, its caller; cheap again
    from medseg.models import load_checkpoint
    from medseg.models.checkpoint import checkpoint_path

    # the path as chosen when it is there (a file gets load_checkpoint's verdict on that file, not on NAME.medseg)
    folder = Path(path) if Path(path).exists() else checkpoint_path(path)
    try:
        key = (str(folder.resolve()), folder.stat().st_mtime)
    except OSError:
        key = (str(folder), -1.0)  # let load_checkpoint name what is missing
    with _CACHE_LOCK:
        if key in _CHECKPOINTS:
            return _CHECKPOINTS[key]
    ck = load_checkpoint(folder)
    with _CACHE_LOCK:
        while len(_CHECKPOINTS) >= _CACHE_SIZE:  # oldest first: an ensemble's members stay together
            _CHECKPOINTS.pop(next(iter(_CHECKPOINTS)))
        _CHECKPOINTS[key] = ck
    return ck


def build_predictor(choice: ModelChoice):
    """The Predictor of ``choice`` (slow: reads weights, folds BatchNorm); run it in a worker."""
    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.inference import Predictor
    from napari_medseg._threads import limit_torch_threads

    limit_torch_threads()

    if choice.checkpoints:
        # onnxruntime once its export, in a thread, is ready: the first prediction does not wait for it
        return Predictor([_checkpoint(p) for p in choice.checkpoints], warm_up="background", **choice.options())
    from medseg.datasets.classmap import ClassMap
    from medseg.io.normalise import IMAGENET_MEAN, IMAGENET_STD
    from medseg.models import create_model, model_stride
    from medseg.models.spec import ModelSpec, Preprocessing

    classmap = ClassMap.from_json(choice.classmap_json) if choice.classmap_json else ClassMap.binary()
    spec = ModelSpec(
        arch=choice.arch,
        encoder=choice.encoder,
        in_channels=3,
        classes=classmap.num_classes,
        task=classmap.task,
        encoder_weights=choice.weights or None,
    )
    model = create_model(spec).eval()
    stats = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)} if choice.weights else {}
    prep = Preprocessing(channels=3, divisible_by=model_stride(spec), **stats)
    return Predictor.from_model(model, spec, classmap, prep, **choice.options())
