"""Resumable training state, stored without pickle next to the model in ``last.medseg/``.

``train_state.safetensors`` holds every tensor: the optimiser's per-parameter
state (``optim/<param>/<name>``), the loss's learnable weights (``loss/...``),
torch's CPU and CUDA RNG states (ByteTensors) and the images and labels of the
epoch's pseudo-labelled samples. ``train_state.json`` holds the rest: counters
(epoch, batches done in it, global step), best metric and early-stopping
count, the micro-batch after OOM recoveries, the optimiser's param groups,
scheduler and GradScaler state dicts, numpy's and Python's RNG states, and the
sha256 of the tensor file. Both are written by ``save_checkpoint``'s
``extra_files`` hook into the checkpoint's temporary folder, so weights and
state are swapped in together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from medseg.errors import CheckpointError
from medseg.training.data import Decoded

STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
FORMAT = "medseg-train-state"
VERSION = 1


@dataclass
class RunState:
    """Where a run stands: ``position`` optimiser steps of ``epoch`` are done (the counters a resume needs;
    what a run reports as it goes is :class:`medseg.training.events.Step`)."""

    epoch: int = 0
    position: int = 0
    global_step: int = 0
    epoch_first_step: int = 0
    epoch_loss_sum: float = 0.0
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    micro_batch: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- RNG
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng/torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    np_state = np.random.get_state(legacy=False)
    np_state = {**np_state, "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()}}
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": np_state, "python": [version, list(internal), gauss]}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch_cpu"])
    cuda = [
        tensors[k]
        for k in sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    np_state = dict(meta["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.asarray(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------- optimiser
def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            key = f"{pid}/{name}"
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{key}"] = v.detach().cpu().contiguous()
            else:
                scalars[key] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            pid, name = k[len("optim/") :].split("/", 1)
            state.setdefault(int(pid), {})[name] = v
    for k, v in meta["scalars"].items():
        pid, name = k.split("/", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------- files
def state_writers(
    progress: RunState,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    loss: torch.nn.Module | None = None,
    pseudo: list[Decoded] | None = None,
) -> dict[str, Callable[[Path], None]]:
    """``extra_files`` for ``save_checkpoint``: the two state files, captured now."""
    tensors, optim_meta = _optimizer_split(optimizer)
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    for k, v in (loss.state_dict() if loss is not None else {}).items():
        tensors[f"loss/{k}"] = v.detach().cpu().contiguous()
    pseudo_meta = []
    for i, d in enumerate(pseudo or []):
        tensors[f"pseudo/{i}/image"] = torch.from_numpy(np.ascontiguousarray(d.image))
        tensors[f"pseudo/{i}/label"] = torch.from_numpy(np.ascontiguousarray(d.label))
        pseudo_meta.append({"id": d.id, "spacing": list(d.spacing)})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "progress": asdict(progress),
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_meta,
        "pseudo": pseudo_meta,
    }
    text = json.dumps(meta, allow_nan=True)  # fail here, before any file is written, if not JSON

    def write_tensors(path: Path) -> None:
        save_file(tensors, str(path), metadata={"format": FORMAT})

    def write_json(path: Path) -> None:
        digest = _sha256(path.parent / STATE_TENSORS)
        path.write_text(text[:-1] + f', "tensors_sha256": "{digest}"}}\n', encoding="utf-8")

    return {STATE_TENSORS: write_tensors, STATE_JSON: write_json}


@dataclass
class LoadedState:
    progress: RunState
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def pseudo(self) -> list[Decoded]:
        return [
            Decoded(
                p["id"],
                self.tensors[f"pseudo/{i}/image"].numpy(),
                self.tensors[f"pseudo/{i}/label"].numpy(),
                tuple(p["spacing"]),
            )
            for i, p in enumerate(self.meta.get("pseudo", []))
        ]

    def restore(
        self, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, loss: torch.nn.Module | None = None
    ) -> None:
        """Load optimiser, scheduler, scaler, loss weights and RNG states (call after building all of them)."""
        optimizer.load_state_dict(_optimizer_join(self.tensors, self.meta["optimizer"]))
        if scheduler is not None and self.meta.get("scheduler") is not None:
            scheduler.load_state_dict(self.meta["scheduler"])
        if scaler is not None and self.meta.get("scaler"):
            scaler.load_state_dict(self.meta["scaler"])
        if loss is not None:
            own = {k[len("loss/") :]: v for k, v in self.tensors.items() if k.startswith("loss/")}
            if own:
                loss.load_state_dict(own)
        set_rng_state(self.tensors, self.meta["rng"])


def load_state(folder: str | Path) -> LoadedState:
    """Read the state files of a ``last.medseg`` checkpoint folder; CheckpointError names what is wrong."""
    folder = Path(folder)
    jpath, tpath = folder / STATE_JSON, folder / STATE_TENSORS
    for p in (jpath, tpath):
        if not p.is_file():
            raise CheckpointError(
                p,
                "missing: this checkpoint holds no resumable training state (only "
                "last.medseg from a training run does; best.medseg does not)",
            )
    try:
        meta = json.loads(jpath.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(jpath, f"invalid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(jpath, f"not a medseg training state of version {VERSION}")
    if _sha256(tpath) != meta.get("tensors_sha256"):
        raise CheckpointError(tpath, f"changed or corrupted: its sha256 differs from the one in {STATE_JSON}")
    try:
        tensors = load_file(str(tpath), device="cpu")
        progress = RunState(**meta["progress"])
    except Exception as e:  # safetensors and dataclass errors alike mean a damaged file
        raise CheckpointError(tpath, f"cannot be read: {type(e).__name__}: {e}") from e
    return LoadedState(progress, tensors, meta)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
