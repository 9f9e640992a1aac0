"""Optimisers, the learning-rate schedule, frozen encoders and fine-tuning starts.

Schedule (``EpochSchedule``, run by a ``LambdaLR`` stepped once per optimiser
step): linear warm-up over ``warmup_epochs`` (fractional), then cosine
annealing from ``lr`` down to ``min_lr`` at the last epoch, or constant. The
factor is a function of the *fractional epoch* (epoch + step in epoch /
steps in epoch) rather than of a global step count, so epochs of different
lengths (pseudo-labels added, a different world size after resuming) keep
the curve's shape; the trainer calls ``begin_epoch`` before each epoch. The
object's fields are plain numbers, so ``LambdaLR.state_dict()`` is JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.datasets.classmap import ClassMap
from medseg.training.config import ConfigError, OptimConfig


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper (or the model itself)."""
    inner = getattr(model, "module", None)
    return (
        inner
        if isinstance(inner, nn.Module) and type(model).__name__ in ("DistributedDataParallel", "DataParallel")
        else model
    )


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The encoder's parameters: ``model.encoder`` holds them for smp models and the own U-Nets alike."""
    m = unwrap(model)
    encoder = getattr(m, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"{type(m).__name__} has no .encoder module, so its encoder cannot be frozen")
    return list(encoder.parameters())


def freeze_encoder(model: nn.Module) -> int:
    """Stop training the encoder; returns how many parameters were frozen.

    Its BatchNorm layers must also stop updating their running statistics:
    call ``keep_frozen_encoder_eval`` after every ``model.train()``.
    """
    params = encoder_parameters(model)
    for p in params:
        p.requires_grad_(False)
    return sum(p.numel() for p in params)


def keep_frozen_encoder_eval(model: nn.Module) -> None:
    """Put a frozen encoder back in eval mode (BatchNorm statistics fixed, dropout off)."""
    unwrap(model).encoder.eval()


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, loss_parameters: Iterable[nn.Parameter] = ()
) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over the trainable model parameters, plus the loss's learnable weights.

    The loss weights (uncertainty weighting) get their own group without
    weight decay: decaying a log-variance towards 0 would pull every term's
    weight towards 1 regardless of the data.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    groups: list[dict[str, Any]] = [{"params": params, "weight_decay": cfg.weight_decay}]
    extra = list(loss_parameters)
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    name = cfg.name.lower()
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    raise ValueError(f"unknown optimiser {cfg.name!r}; valid: adam, adamw, sgd")


class EpochSchedule:
    """Learning-rate factor for optimiser step ``s`` (see the module docstring)."""

    def __init__(self, kind: str, epochs: int, warmup_epochs: float, min_ratio: float, steps_per_epoch: int):
        if kind not in ("cosine", "constant"):
            raise ValueError(f"unknown scheduler {kind!r}; valid: cosine, constant")
        self.kind, self.epochs, self.warmup = kind, int(epochs), float(warmup_epochs)
        self.min_ratio = float(min(max(min_ratio, 0.0), 1.0))
        self.epoch, self.first_step, self.n_steps = 0, 0, max(1, int(steps_per_epoch))

    def begin_epoch(self, epoch: int, first_step: int, n_steps: int) -> None:
        self.epoch, self.first_step, self.n_steps = int(epoch), int(first_step), max(1, int(n_steps))

    def progress(self, step: int) -> float:
        """Epochs done when step ``step`` starts."""
        return self.epoch + (step - self.first_step) / self.n_steps

    def __call__(self, step: int) -> float:
        p = self.progress(step)
        if self.warmup > 0 and p < self.warmup:
            # counted at the step's end, so the very first step does not run at lr 0
            return min(1.0, (p + 1.0 / self.n_steps) / self.warmup)
        if self.kind == "constant":
            return 1.0
        span = self.epochs - self.warmup
        t = 1.0 if span <= 0 else min(max((p - self.warmup) / span, 0.0), 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LambdaLR, EpochSchedule]:
    schedule = EpochSchedule(cfg.scheduler.lower(), epochs, cfg.warmup_epochs, cfg.min_lr / cfg.lr, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), schedule


def refresh_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Re-apply the schedule at the current step (after ``begin_epoch`` changed the epoch's length)."""
    step = scheduler.last_epoch
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(step)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


def describe_classes(cm: ClassMap) -> str:
    return f"{cm.task} {dict(zip(cm.ids, cm.names))}"


def load_init_checkpoint(path: str | Path, classmap: ClassMap):
    """The checkpoint to fine-tune (``model.init_checkpoint``); its classes must be the dataset's."""
    from medseg.models.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    mine = (ck.classmap.task, ck.classmap.ids, ck.classmap.names)
    theirs = (classmap.task, classmap.ids, classmap.names)
    if mine != theirs:
        raise ConfigError(
            [
                (
                    f"model.init_checkpoint: {ck.path} predicts {describe_classes(ck.classmap)} but the "
                    f"dataset has {describe_classes(classmap)}; fine-tuning keeps the checkpoint's output "
                    "layer, so the classes (task, ids and names) must be the same"
                )
            ]
        )
    return ck
