"""Conversion of a trusted PyTorch state dict into a safe ``.medseg`` checkpoint.

The only place in medseg where a pickle is read, and then with
``torch.load(weights_only=True)``, which unpickles tensors and plain
containers only. Run it once on files you trust; afterwards share and load
the ``.medseg`` folder, which never needs unpickling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medseg.datasets.classmap import ClassMap
from medseg.errors import CheckpointError
from medseg.models.checkpoint import _create_model, _describe, _sha256, save_checkpoint
from medseg.models.spec import ModelSpec, Preprocessing

_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def import_state_dict(
    pth: str | os.PathLike,
    spec: ModelSpec,
    classmap: ClassMap,
    preprocessing: Preprocessing,
    out: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Convert a TRUSTED ``.pt``/``.pth``/``.ckpt`` state dict for ``spec`` into ``out`` (``.medseg``).

    Accepts a bare state dict or one nested under ``state_dict`` /
    ``model_state_dict`` / ``model`` (Lightning and common training scripts);
    a ``module.`` (DataParallel) or ``model.`` prefix on every key is removed. The weights must fit
    ``create_model(spec)`` exactly. Provenance records the source file and its
    sha256. Returns the checkpoint folder.
    """
    pth = Path(pth)
    try:
        obj = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, OSError, ... depending on the damage
        raise CheckpointError(pth, f"cannot read it as a weights-only PyTorch state dict: {str(e)[:400]}") from e
    for key in _NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(pth, "does not hold a state dict (a mapping of names to tensors)")
    for prefix in ("module.", "model."):  # DataParallel / a LightningModule holding self.model
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    model = _create_model(spec)
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as e:
        raise CheckpointError(pth, f"weights do not fit the {_describe(spec)} model: {str(e)[:600]}") from e
    prov = {"imported_from": {"file": str(pth.resolve()), "sha256": _sha256(pth)}, **(provenance or {})}
    return save_checkpoint(out, model, spec, classmap, preprocessing, prov)
