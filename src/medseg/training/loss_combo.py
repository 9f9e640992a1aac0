"""Weighted sums of losses, the seeds' presets, a Dice-to-boundary schedule and learnable weights.

``CombinedLoss(terms, aux_weight, aux_loss)`` returns ``(total, parts)``:
``total = sum w_i * L_i + aux_weight * L_aux`` and ``parts`` the detached
value of every term by name (plus ``"aux"``) for logging (tensors, so that
logging does not force a device sync each step).

The auxiliary term scores ``model.last_aux``, what a model built with an aux
head keeps from its last forward (see ``medseg.models.aux_head``): mask
logits (B, classes, H, W) of the "segmentation" head (PSPNet's deep
supervision) get the task's cross-entropy (``segmentation_aux_loss``);
presence logits (B, classes) of the "presence" classifier a BCE over
per-class presence in the image (``presence_targets``) in every mode. The
segmentation head runs only in training mode, so a loss evaluated without
gradients (validation) and given no aux logits leaves the aux term out.

Schedule (``RebalanceSchedule``, Kervadec et al.): ``alpha`` falls linearly
from ``start`` by ``step`` per epoch down to ``floor``; ``set_epoch(e)``
gives the region term (Dice) weight alpha and the boundary term 1 - alpha.

Learnable weights (``learnable=True``): homoscedastic uncertainty weighting
(Kendall, Gal & Cipolla 2018), ``L = sum exp(-s_i) L_i + s_i`` with one
``nn.Parameter`` s_i per term, initialised to ``-ln w_i`` so training starts
from the configured weights; ``loss_parameters()`` are to be added to the
optimiser (and the loss moved to the model's device). The aux term keeps
its fixed weight.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import MissingDistanceMapsError, UnknownNameError
from medseg.models.aux_head import presence_targets, segmentation_aux_loss
from medseg.training.distance_losses import BoundaryLoss, HausdorffDTLoss
from medseg.training.losses import LOSSES, MODES, build_loss

DISTANCE_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "boundary": lambda mode, **kw: BoundaryLoss(mode, **kw),
    "hausdorff_dt": lambda mode, **kw: HausdorffDTLoss(mode, **kw),
}

PRESETS: dict[str, dict[str, Any]] = {
    "seed004_bce_tversky": {
        "terms": [{"name": "bce", "weight": 0.5}, {"name": "tversky", "weight": 0.5, "alpha": 0.5, "beta": 0.5}]
    },
    "seed004_bce_dice": {"terms": [{"name": "bce", "weight": 0.6}, {"name": "dice", "weight": 0.4}]},
    "seed001_dice_boundary": {
        "terms": [{"name": "dice", "weight": 0.01}, {"name": "boundary", "weight": 0.99}],
        "aux_weight": 0.3,
    },
}

CONFIG_KEYS = ("terms", "aux_weight", "schedule", "learnable", "preset", "class_weights")
WEIGHTED_TERMS = ("ce",)  # the terms that take class_weights (torch's CrossEntropyLoss weight=)


def all_loss_names() -> list[str]:
    return sorted([*LOSSES, *DISTANCE_LOSSES])


def build_term(name: str, mode: str, **kwargs: Any) -> nn.Module:
    """One loss by name: smp/torch losses (``build_loss``) or the distance losses."""
    if name in DISTANCE_LOSSES:
        try:
            return DISTANCE_LOSSES[name](mode, **kwargs)
        except TypeError as e:
            raise TypeError(f"loss {name!r}: {e}") from e
    if name not in LOSSES:
        raise UnknownNameError("loss", name, all_loss_names())
    return build_loss(name, mode, **kwargs)


def presence_bce(aux_logits: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    """BCE of the aux logits (B, classes) against per-class presence of ``target``."""
    return F.binary_cross_entropy_with_logits(
        aux_logits, presence_targets(target, mode, aux_logits.shape[1]).to(aux_logits)
    )


@dataclass
class RebalanceSchedule:
    """Weight ``alpha(epoch)`` on term ``region`` and ``1 - alpha`` on term ``boundary``."""

    region: str = "dice"
    boundary: str = "boundary"
    start: float = 1.0
    floor: float = 0.01
    step: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= self.start <= 1.0 or self.step < 0:
            raise ValueError(
                f"schedule needs 0 <= floor ({self.floor}) <= start ({self.start}) <= 1 and step ({self.step}) >= 0"
            )

    def alpha(self, epoch: int) -> float:
        return max(self.floor, self.start - self.step * epoch)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RebalanceSchedule:
        d = dict(d)
        epochs = d.pop("epochs", None)
        unknown = set(d) - {"region", "boundary", "start", "floor", "step"}
        if unknown:
            raise ValueError(
                f"unknown schedule keys {sorted(unknown)}; valid: region, boundary, start, "
                "floor, step, epochs (epochs to reach the floor, instead of step)"
            )
        if epochs is not None:
            if "step" in d:
                raise ValueError("give the schedule either 'step' or 'epochs', not both")
            if not epochs > 0:
                raise ValueError(f"schedule epochs must be > 0, got {epochs!r}")
            d["step"] = (d.get("start", 1.0) - d.get("floor", 0.01)) / epochs
        return cls(**d)


class CombinedLoss(nn.Module):
    """``sum w_i * L_i + aux_weight * aux_loss(aux_logits, target)``; see the module docstring."""

    def __init__(
        self,
        terms: Sequence[tuple[float, nn.Module]],
        aux_weight: float = 0.0,
        aux_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        names: Sequence[str] | None = None,
        mode: str | None = None,
        schedule: RebalanceSchedule | None = None,
        learnable: bool = False,
    ):
        super().__init__()
        if not terms:
            raise ValueError("a combined loss needs at least one (weight, loss) term")
        names = list(names) if names is not None else [type(loss).__name__.lower() for _, loss in terms]
        if len(names) != len(terms):
            raise ValueError(f"{len(names)} names for {len(terms)} terms")
        self.names = _unique(names)
        self.losses = nn.ModuleList([loss for _, loss in terms])
        self.weights = [float(w) for w, _ in terms]
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        if aux_weight > 0 and aux_loss is None and mode not in MODES:
            raise ValueError("an aux term with the default presence BCE needs mode= (binary, multiclass, multilabel)")
        self.aux_weight, self.aux_loss, self.mode = float(aux_weight), aux_loss, mode
        if schedule is not None and learnable:
            raise ValueError("a weight schedule and learnable weights exclude each other; choose one")
        self.schedule = schedule
        if schedule is not None:
            missing = [n for n in (schedule.region, schedule.boundary) if n not in self.names]
            if missing:
                raise ValueError(f"schedule names terms {missing} that the loss does not have; terms: {self.names}")
            self.set_epoch(0)
        self.log_vars: nn.Parameter | None = None
        if learnable:
            bad = [n for n, w in zip(self.names, self.weights) if not w > 0]
            if bad:
                raise ValueError(f"learnable weights start from the configured weights, which must be > 0: {bad}")
            self.log_vars = nn.Parameter(torch.tensor([-math.log(w) for w in self.weights]))

    @property
    def needs_dist_maps(self) -> bool:
        return any(getattr(loss, "needs_dist_maps", False) for loss in self.losses)

    def set_epoch(self, epoch: int) -> None:
        """Applies the schedule (if any) for ``epoch`` (0-based)."""
        if self.schedule is None:
            return
        a = self.schedule.alpha(epoch)
        self.weights[self.names.index(self.schedule.region)] = a
        self.weights[self.names.index(self.schedule.boundary)] = 1.0 - a

    def loss_parameters(self) -> list[nn.Parameter]:
        """The learnable log-variances s_i (empty without ``learnable``): add them to the optimiser."""
        return [self.log_vars] if self.log_vars is not None else []

    def current_weights(self) -> dict[str, float]:
        """The effective weight of each term now (exp(-s_i) when learnable)."""
        if self.log_vars is not None:
            return dict(zip(self.names, torch.exp(-self.log_vars.detach()).tolist()))
        return dict(zip(self.names, self.weights))

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        dist_maps: Any = None,
        aux_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=logits.device)
        for i, (name, loss) in enumerate(zip(self.names, self.losses)):
            if getattr(loss, "needs_dist_maps", False):
                if dist_maps is None:
                    raise MissingDistanceMapsError(
                        f"loss term {name!r} needs the batch's signed distance maps (dist_maps=...), and the "
                        "batch has none: add medseg.training.distance_maps.DistanceMaps to the data pipeline"
                    )
                value = loss(logits, target, dist_maps=dist_maps)
            else:
                value = loss(logits, target)
            parts[name] = value.detach()
            if self.log_vars is not None:
                s = self.log_vars[i]
                total = total + torch.exp(-s) * value + s
            else:
                total = total + self.weights[i] * value
        if self.aux_weight > 0 and not (aux_logits is None and not torch.is_grad_enabled()):
            if aux_logits is None:
                raise ValueError(
                    "the loss has an aux term (aux_weight > 0) but no aux logits were given: build "
                    "the model with aux=True and pass aux_logits=model.last_aux"
                )
            if self.aux_loss is not None:
                value = self.aux_loss(aux_logits, target)
            elif aux_logits.ndim == 4:
                value = segmentation_aux_loss(aux_logits, target, self.mode)  # type: ignore[arg-type]
            else:
                value = presence_bce(aux_logits, target, self.mode)  # type: ignore[arg-type]
            parts["aux"] = value.detach()
            total = total + self.aux_weight * value
        return total, parts

    def extra_repr(self) -> str:
        w = ", ".join(f"{n}={v:.4g}" for n, v in self.current_weights().items())
        return f"weights({w}), aux_weight={self.aux_weight}, learnable={self.log_vars is not None}"


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        k, i = n, 2
        while k in out:
            k, i = f"{n}_{i}", i + 1
        out.append(k)
    return out


def _class_weight_problems(weights: Any, channels: int | None, where: str) -> list[str]:
    """What is wrong with a per-class weight list (one number > 0 per logit channel), if anything."""
    if not isinstance(weights, (list, tuple)) or not weights:
        return [f"{where} must be a list of numbers, one per class (background first for multiclass), got {weights!r}"]
    bad = [w for w in weights if not isinstance(w, (int, float)) or isinstance(w, bool) or not w > 0]
    if bad:
        return [f"{where} must all be numbers > 0, got {bad[:5]}"]
    if channels is not None and len(weights) != channels:
        return [
            f"{where} has {len(weights)} weights but the model has {channels} classes "
            "(for multiclass: background first, then each class of the class map): give one weight per class"
        ]
    return []


def build_loss_from_config(config: dict[str, Any] | str, mode: str, num_classes: int | None = None) -> CombinedLoss:
    """A ``CombinedLoss`` from a config dict or a preset name (``PRESETS``).

    Config: ``{"terms": [{"name": "bce", "weight": 0.5}, {"name": "tversky",
    "weight": 0.5, "alpha": 0.5, "beta": 0.5}], "aux_weight": 0.3,
    "schedule": {"region": "dice", "boundary": "boundary", "floor": 0.01,
    "step": 0.01}, "learnable": false}``; each term's other keys are the loss
    class's arguments. ``{"preset": NAME, ...}`` starts from a preset and
    overrides its keys. ``"class_weights": [w_background, w_1, ...]`` (one
    number > 0 per logit channel, ``num_classes`` of them when it is given)
    weighs the cross-entropy terms' classes (torch's ``weight=``); it needs a
    "ce" term, and a ce term's own ``class_weights`` take precedence. Every
    problem found is listed in one ValueError; unknown loss or preset names
    raise ``UnknownNameError``.
    """
    if mode not in MODES:
        raise UnknownNameError("loss mode", mode, list(MODES))
    if isinstance(config, str):
        config = {"preset": config}
    config = copy.deepcopy(dict(config))
    preset = config.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise UnknownNameError("loss preset", preset, sorted(PRESETS))
        config = {**copy.deepcopy(PRESETS[preset]), **config}
    problems = [f"unknown key {k!r}" for k in config if k not in CONFIG_KEYS]
    terms_cfg = config.get("terms")
    if not isinstance(terms_cfg, list) or not terms_cfg:
        problems.append("'terms' must be a non-empty list of {name, weight, ...} entries")
        terms_cfg = []
    learnable = bool(config.get("learnable", False))
    class_weights = config.get("class_weights")
    if class_weights is not None:
        problems.extend(_class_weight_problems(class_weights, num_classes, "class_weights"))
        if not any(isinstance(t, dict) and t.get("name") in WEIGHTED_TERMS for t in terms_cfg):
            problems.append(
                f"class_weights weigh the cross-entropy terms ({', '.join(WEIGHTED_TERMS)}) and the loss has none: "
                "add a term {name: ce, weight: ...} (multiclass tasks)"
            )
    terms: list[tuple[float, nn.Module]] = []
    names: list[str] = []
    for i, entry in enumerate(terms_cfg):
        if not isinstance(entry, dict) or "name" not in entry:
            problems.append(f"terms[{i}] must be a dict with a 'name', got {entry!r}")
            continue
        kw = dict(entry)
        name, weight = kw.pop("name"), kw.pop("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            problems.append(f"terms[{i}] ({name}): weight must be a number >= 0, got {weight!r}")
            continue
        own = kw.pop("class_weights", None)  # "weight" is the term's weight in the sum
        if own is not None and name not in WEIGHTED_TERMS:
            problems.append(f"terms[{i}] ({name}): class_weights apply to {', '.join(WEIGHTED_TERMS)} terms only")
            continue
        if name in WEIGHTED_TERMS and (own if own is not None else class_weights) is not None:
            if own is not None:
                found = _class_weight_problems(own, num_classes, f"terms[{i}] ({name}): class_weights")
                if found:
                    problems.extend(found)
                    continue
            kw["weight"] = list(own if own is not None else class_weights)
        if name == "boundary" and learnable:
            if kw.get("nonnegative") is False:
                problems.append(
                    f"terms[{i}]: learnable weights need the boundary term shifted to >= 0 (nonnegative=True)"
                )
            kw["nonnegative"] = True
        try:
            terms.append((float(weight), build_term(name, mode, **kw)))
            names.append(name)
        except UnknownNameError:
            raise
        except (TypeError, ValueError) as e:
            problems.append(f"terms[{i}] ({name}): {e}")
    aux_weight = config.get("aux_weight", 0.0)
    if not isinstance(aux_weight, (int, float)) or isinstance(aux_weight, bool) or aux_weight < 0:
        problems.append(f"aux_weight must be a number >= 0, got {aux_weight!r}")
        aux_weight = 0.0
    schedule = None
    if config.get("schedule") is not None:
        try:
            schedule = RebalanceSchedule.from_dict(config["schedule"])
        except (TypeError, ValueError) as e:
            problems.append(f"schedule: {e}")
    if problems:
        raise ValueError("invalid loss config: " + "; ".join(problems))
    try:
        return CombinedLoss(
            terms, aux_weight=aux_weight, names=names, mode=mode, schedule=schedule, learnable=learnable
        )
    except ValueError as e:
        raise ValueError(f"invalid loss config: {e}") from e
