"""The training configuration: typed, validated as a whole, saved in every checkpoint.

``TrainConfig.from_dict`` collects every problem before raising, so a user with
three typos gets one message naming all three, not three runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import ConfigError


@dataclass
class DataConfig:
    root: str = ""
    layout: str | None = None
    group_by: str = "auto"
    val_fraction: float = 0.2
    split_seed: int = 0
    image_size: list[int] | None = field(default_factory=lambda: [256, 256])
    channels: int = 3
    window: Any = None
    sample_ids: list[str] | None = None
    num_workers: int = 0
    group_pattern: str | None = None
    cache_mb: float = 1024.0
    statuses: list[str] | None = None  # workspace roots only: which review statuses train (default: not excluded)
    mirror_swap: dict[str, str] | None = None  # class names exchanged when a flip mirrors the image (left/right)
    slices: int = 1  # volumes: 2.5-D with this many neighbouring slices (odd) as the input channels
    # null, "histeq", "clahe" or {method: clahe, clip_limit, kernel_size, nbins}: every input, at training and
    # at inference (stored in the checkpoint's preprocessing), unlike the random seed001_histeq / _clahe presets
    equalize: Any = None


@dataclass
class ModelConfig:
    arch: str = "Unet"
    encoder: str = "resnet34"
    encoder_weights: str | None = None
    aux: bool | str = False  # true / "presence" (class presence classifier), "segmentation" (PSPNet deep supervision)
    kwargs: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None
    freeze_encoder: bool = False


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 1e-6


@dataclass
class MixConfig:
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    p: float = 0.5


@dataclass
class PseudoLabelConfig:
    enabled: bool = False
    unlabelled_dir: str | None = None
    prob_threshold: float = 0.9
    min_confident_fraction: float = 0.95
    start_epoch: int = 1
    max_samples: int | None = None


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Any = "seed004_bce_dice"
    augment: Any = "light"
    mix: MixConfig = field(default_factory=MixConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    pseudo: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    epochs: int = 10
    batch_size: int = 8
    accumulate: int = 1
    grad_clip: float | None = None
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    deterministic: bool = True
    early_stopping_patience: int | None = None
    monitor: str = "dice"
    out_dir: str = "runs/medseg"
    val_overlays: int = 4
    max_steps_per_epoch: int | None = None
    # the network's weights (and so its activations) in NHWC: on the CPU a PlainUNet of width 8 at 64x96
    # trains a step in 0.75-0.8x the time (oneDNN's direct convolutions); off by default, results change
    # in the last bits
    channels_last: bool = False
    val_hd95: bool = False
    tensorboard: bool = False  # also write TensorBoard event files into <run>/tensorboard (needs tensorboard)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> TrainConfig:
        problems: list[str] = []
        cfg = _build(cls, d or {}, "", problems)
        problems.extend(_check_values(cfg))
        if problems:
            raise ConfigError(problems, source)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        import yaml

        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ConfigError([f"cannot read the file: {e.strerror or e}"], str(path)) from e
        except yaml.YAMLError as e:
            raise ConfigError([f"not valid YAML: {e}"], str(path)) from e
        if d is not None and not isinstance(d, dict):
            raise ConfigError([f"the top level must be a mapping, got {type(d).__name__}"], str(path))
        return cls.from_dict(d or {}, source=str(path))


OPTIMISERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MONITORS = ("dice", "iou", "hd95", "assd", "loss")  # lower is better for the last three


def _check_values(c: TrainConfig) -> list[str]:
    from medseg.models.spec import AUX_HEADS, equalize_settings  # the spec module alone; its package loads torch

    p = []
    if not c.data.root:
        p.append("data.root: required (the dataset or workspace folder)")
    if not 0.0 <= c.data.val_fraction < 1.0:
        p.append(f"data.val_fraction: must be in [0, 1), got {c.data.val_fraction}")
    if c.data.image_size is not None and (len(c.data.image_size) != 2 or min(c.data.image_size) < 8):
        p.append(f"data.image_size: must be [height, width] >= 8, got {c.data.image_size}")
    if c.data.statuses is not None:
        from medseg.workspace.records import STATUSES

        bad = [x for x in c.data.statuses if x not in STATUSES]
        if bad or not c.data.statuses:
            p.append(f"data.statuses: must be a non-empty list of {', '.join(STATUSES)}, got {c.data.statuses}")
    if c.data.slices < 1 or c.data.slices % 2 == 0:
        p.append(f"data.slices: must be an odd number >= 1 (slices centred on the one predicted), got {c.data.slices}")
    if c.data.channels not in (1, 3):
        p.append(f"data.channels: must be 1 or 3, got {c.data.channels}")
    try:
        c.data.equalize = equalize_settings(c.data.equalize)
    except ValueError as e:
        p.append(f"data.equalize: {e}")
    if not isinstance(c.model.aux, bool) and c.model.aux not in AUX_HEADS:
        p.append(f"model.aux: must be true, false or one of {', '.join(AUX_HEADS)}, got {c.model.aux!r}")
    if c.optim.name.lower() not in OPTIMISERS:
        p.append(f"optim.name: {c.optim.name!r} is not one of {', '.join(OPTIMISERS)}")
    if c.optim.scheduler.lower() not in SCHEDULERS:
        p.append(f"optim.scheduler: {c.optim.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if c.optim.nesterov and (c.optim.name.lower() != "sgd" or c.optim.momentum <= 0):
        p.append("optim.nesterov: needs optim.name 'sgd' and optim.momentum > 0")
    if c.data.cache_mb < 0:
        p.append(f"data.cache_mb: must be >= 0 (0 turns the cache off), got {c.data.cache_mb}")
    if c.data.num_workers < 0:
        p.append(f"data.num_workers: must be >= 0, got {c.data.num_workers}")
    if c.optim.lr <= 0:
        p.append(f"optim.lr: must be > 0, got {c.optim.lr}")
    if c.precision not in PRECISIONS:
        p.append(f"precision: {c.precision!r} is not one of {', '.join(PRECISIONS)}")
    for name in ("epochs", "batch_size", "accumulate"):
        if getattr(c, name) < 1:
            p.append(f"{name}: must be >= 1, got {getattr(c, name)}")
    if c.grad_clip is not None and c.grad_clip <= 0:
        p.append(f"grad_clip: must be > 0 or null, got {c.grad_clip}")
    for name in ("mixup_alpha", "cutmix_alpha"):
        if getattr(c.mix, name) < 0:
            p.append(f"mix.{name}: must be >= 0, got {getattr(c.mix, name)}")
    for name in ("max_steps_per_epoch", "early_stopping_patience"):
        if getattr(c, name) is not None and getattr(c, name) < 1:
            p.append(f"{name}: must be >= 1 or null, got {getattr(c, name)}")
    if c.val_overlays < 0:
        p.append(f"val_overlays: must be >= 0, got {c.val_overlays}")
    if c.monitor.split("/")[0] not in MONITORS:
        p.append(f"monitor: {c.monitor!r} is not one of {', '.join(MONITORS)} (or METRIC/CLASS, e.g. dice/polyp)")
    if c.monitor.split("/")[0] in ("hd95", "assd") and not c.val_hd95:
        p.append(f"monitor: {c.monitor!r} needs val_hd95: true (surface distances are computed only then)")
    if c.pseudo.enabled and not c.pseudo.unlabelled_dir:
        p.append("pseudo.unlabelled_dir: required when pseudo.enabled is true")
    if not 0.5 <= c.pseudo.prob_threshold <= 1.0:
        p.append(f"pseudo.prob_threshold: must be in [0.5, 1], got {c.pseudo.prob_threshold}")
    return p


def _build(cls: type, d: Any, prefix: str, problems: list[str]):
    if not isinstance(d, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {type(d).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in d.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            problems.append(
                f"{prefix}{key}: unknown field"
                + (f" (did you mean {close[0]!r}?)" if close else f"; valid: {', '.join(names)}")
            )
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{prefix}{key}.", problems)
            continue
        ok, coerced = _coerce(hint, value)
        if not ok:
            problems.append(f"{prefix}{key}: expected {_type_name(hint)}, got {value!r}")
            continue
        kwargs[key] = coerced
    return cls(**kwargs)


def _coerce(hint, value) -> tuple[bool, Any]:
    if hint is Any:
        return True, value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return True, None
        for a in args:
            if a is type(None):
                continue
            ok, v = _coerce(a, value)
            if ok:
                return True, v
        return False, value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for v in value:
            ok, c = _coerce(args[0] if args else Any, v)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    if origin is dict:
        return isinstance(value, dict), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
