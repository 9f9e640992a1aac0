"""What a Trainer is built from: device and precision, seeding, the split, the model and its preprocessing.

Every function raises before training starts, with the config field to fix
named (``ConfigError``) where the cause is a setting.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np
import torch

from medseg.datasets import open_dataset, split_by_group
from medseg.datasets.classmap import ClassMap
from medseg.errors import MedsegError
from medseg.io.normalise import IMAGENET_MEAN, IMAGENET_STD
from medseg.models.spec import ModelSpec, Preprocessing
from medseg.training.config import ConfigError, TrainConfig
from medseg.training.optim import describe_classes, load_init_checkpoint
from medseg.training.workspace_source import is_workspace, open_workspace_dataset

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device_precision(config: TrainConfig, dist: Any = None) -> tuple[torch.device, str]:
    from medseg.inference.device import resolve_device, resolve_precision

    try:
        device = (
            torch.device(dist.device)
            if dist is not None and getattr(dist, "device", None) is not None
            else resolve_device(config.device)
        )
        return device, resolve_precision(config.precision, device)
    except MedsegError as e:
        raise ConfigError([f"device / precision: {e}"]) from e


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy and torch (CPU and CUDA); ``deterministic`` picks deterministic kernels.

    Both settings are process-wide (torch has no per-model switch); warn_only
    keeps ops without a deterministic kernel running, with a warning.
    """
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic (CUDA >= 10.2)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def open_samples(config: TrainConfig, dataset: Any = None) -> tuple[list[Any], ClassMap, Any]:
    """(samples, class map, dataset) from ``dataset`` or ``data.root``, restricted to ``data.sample_ids``."""
    d = config.data
    if dataset is None and is_workspace(d.root):
        dataset = open_workspace_dataset(d.root, d.statuses)
    elif dataset is None:
        if d.statuses is not None:
            raise ConfigError([f"data.statuses: only a workspace has review statuses; {d.root} is a dataset folder"])
        try:
            dataset = open_dataset(d.root, d.layout, group_by=d.group_by, group_pattern=d.group_pattern)
        except ValueError as e:
            raise ConfigError([f"data: {e}"]) from e
    samples = list(dataset.samples)
    if d.sample_ids is not None:
        known = {s.id: s for s in samples}
        missing = [i for i in d.sample_ids if i not in known]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise ConfigError([f"data.sample_ids: {len(missing)} id(s) not in {dataset.root}: {shown}"])
        samples = [known[i] for i in dict.fromkeys(d.sample_ids)]
    if not samples and getattr(dataset, "by_status", None) and not dataset.problems:
        from medseg.workspace.label_sets import describe_statuses

        # a workspace whose samples are all of other statuses: say how they are reviewed
        wanted, chosen = " or ".join(dataset.statuses), d.statuses is not None
        raise ConfigError(
            [
                f"{'data.statuses' if chosen else 'data.root'}: {dataset.root} has no usable samples (none is "
                f"{wanted}; its {describe_statuses(dataset.by_status)})"
                + ("; review samples first, or train on more of them (--labels all)" if chosen else "")
            ]
        )
    if not samples:
        kinds = dataset.problems_by_kind() if hasattr(dataset, "problems_by_kind") else {}
        raise ConfigError(
            [(f"data.root: {dataset.root} has no usable samples" + (f" (problems: {kinds})" if kinds else ""))]
        )
    return samples, dataset.classmap, dataset


def split(samples: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Train / validation by group (``split_by_group``); no group is ever on both sides."""
    if val_fraction <= 0:
        return list(samples), []
    groups = sorted({str(s.group) for s in samples})
    if len(groups) < 2:
        raise ConfigError(
            [
                (
                    f"data.val_fraction: a validation split needs at least 2 groups, the data has "
                    f"{len(groups)} ({groups[0] if groups else 'none'}); set data.group_by / "
                    "data.group_pattern, or data.val_fraction: 0"
                )
            ]
        )
    train, val = split_by_group(samples, (1.0 - val_fraction, val_fraction), seed=seed)
    shared = {s.group for s in train} & {s.group for s in val}
    if shared:  # split_by_group promises this never happens; a leak would inflate every metric silently
        raise RuntimeError(f"group split leaked groups {sorted(shared)[:5]} into both train and validation")
    return train, val


def input_channels(config: TrainConfig) -> int:
    """The model's input channels: ``data.slices`` neighbouring slices for 2.5-D, else ``data.channels``."""
    return config.data.slices if config.data.slices > 1 else config.data.channels


def default_preprocessing(config: TrainConfig, spec: ModelSpec, stride: int, volumes: bool = False) -> Preprocessing:
    """[0, 1] input, plus ImageNet mean / std when a pretrained smp encoder expects them. On volumes the
    window's statistics are the whole scan's (``scope`` "volume"), and ``data.slices`` neighbours are the
    channels (2.5-D)."""
    from medseg.models.registry import resolve

    channels = input_channels(config)
    mean = std = None
    if spec.encoder_weights is not None and not resolve(spec.arch).own:
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        if channels != 3:  # grey or stacked slices: the grey level's mean / std on every channel
            mean, std = [float(np.mean(mean))] * channels, [float(np.mean(std))] * channels
    size = list(config.data.image_size) if config.data.image_size else None
    return Preprocessing(
        channels=channels,
        window=config.data.window,
        mean=mean,
        std=std,
        input_size=size,
        divisible_by=stride,
        resize=size is not None,
        slices=config.data.slices,
        scope="volume" if volumes else "image",
        equalize=config.data.equalize,
    )


def check_size(config: TrainConfig, stride: int) -> None:
    size = config.data.image_size
    if size is not None and any(int(s) % stride for s in size):
        fixed = [max(stride, round(int(s) / stride) * stride) for s in size]
        raise ConfigError(
            [(f"data.image_size: {list(size)} must be multiples of {stride} (the model's stride), e.g. {fixed}")]
        )


def build_model(config: TrainConfig, classmap: ClassMap, resume: Any = None, volumes: bool = False):
    """(model, spec, preprocessing, source): resumed, fine-tuned from ``model.init_checkpoint``, or new. A
    checkpoint keeps its own preprocessing (window, slices, scope): the model learnt that input."""
    from medseg.models import create_model, load_checkpoint, model_stride

    m = config.model
    size = list(config.data.image_size) if config.data.image_size else None
    if resume is not None:
        ck = load_checkpoint(resume)
        if (ck.classmap.task, ck.classmap.ids, ck.classmap.names) != (classmap.task, classmap.ids, classmap.names):
            raise ConfigError(
                [
                    (
                        f"resume: {ck.path} predicts {describe_classes(ck.classmap)}, the dataset has "
                        f"{describe_classes(classmap)}"
                    )
                ]
            )
        check_size(config, model_stride(ck.spec))
        return ck.model, ck.spec, ck.preprocessing, f"resumed from {ck.path}"
    if m.init_checkpoint:
        ck = load_init_checkpoint(m.init_checkpoint, classmap)
        check_size(config, model_stride(ck.spec))
        return (
            ck.model,
            dataclasses.replace(ck.spec, encoder_weights=None),
            dataclasses.replace(ck.preprocessing, input_size=size, resize=size is not None),
            f"fine-tuned from {ck.path}",
        )
    spec, stride = build_spec(config, classmap)
    return create_model(spec), spec, default_preprocessing(config, spec, stride, volumes), "new"


def build_spec(config: TrainConfig, classmap: ClassMap) -> tuple[ModelSpec, int]:
    """The network ``config.model`` names for ``classmap``'s output channels, and its stride; ConfigError
    for an unknown architecture or encoder, or an image size the stride does not divide."""
    from medseg.models import model_stride

    m = config.model
    try:
        spec = ModelSpec(
            arch=m.arch,
            encoder=m.encoder,
            in_channels=input_channels(config),
            classes=classmap.num_classes,
            task=classmap.task,
            encoder_weights=m.encoder_weights,
            aux=m.aux,
            kwargs=dict(m.kwargs),
        )
        stride = model_stride(spec)
    except ValueError as e:  # UnknownNameError included
        raise ConfigError([f"model: {e}"]) from e
    check_size(config, stride)
    return spec, stride


def build_loss(config: TrainConfig, task: str, spec: ModelSpec):
    from medseg.training.loss_combo import build_loss_from_config

    try:
        loss = build_loss_from_config(config.loss, task, spec.classes)
    except ValueError as e:
        raise ConfigError([f"loss: {e}"]) from e
    if loss.aux_weight > 0 and not spec.aux:
        raise ConfigError(
            [
                (
                    f"loss: has an aux term (aux_weight {loss.aux_weight}) but the model has no aux head; "
                    "set model.aux: true (presence) or segmentation"
                )
            ]
        )
    return loss


def build_train_augmentation(config: TrainConfig):
    """The pipeline without its own resize: the data pipeline resizes once, before caching."""
    from medseg.training.augment_config import build_augmentation

    try:
        return build_augmentation(config.augment, size=None)
    except ValueError as e:  # AugmentationError and UnknownNameError are ValueErrors
        raise ConfigError([f"augment: {e}"]) from e
