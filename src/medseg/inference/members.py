"""What a Predictor is made of: its members (a model with its spec, class map and preprocessing), checked to
fit together as one ensemble (task, classes, training size), and the input-size multiple they need."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medseg.datasets.classmap import ClassMap
from medseg.errors import InferenceError, MedsegError
from medseg.models.spec import ModelSpec, Preprocessing


@dataclass
class Member:
    """One model with what it needs to be run: a Checkpoint without the file."""

    model: torch.nn.Module
    spec: ModelSpec
    classmap: ClassMap
    preprocessing: Preprocessing
    name: str = ""
    checkpoint: bool = False  # read from a checkpoint (backend "auto" may run it in onnxruntime), not in memory


def as_member(source: Any) -> Member:
    if isinstance(source, Member):
        return source
    if isinstance(source, (str, Path)):
        from medseg.models.checkpoint import load_checkpoint

        source = load_checkpoint(source)
    if isinstance(source, tuple) and len(source) == 4 and isinstance(source[0], torch.nn.Module):
        return Member(*source)
    if all(hasattr(source, a) for a in ("model", "spec", "classmap", "preprocessing")):
        return Member(
            source.model,
            source.spec,
            source.classmap,
            source.preprocessing or Preprocessing(),
            str(getattr(source, "path", "") or ""),
            checkpoint=True,
        )
    raise InferenceError(
        f"cannot predict with {type(source).__name__}: give a Checkpoint, a checkpoint path "
        "or a (model, spec, classmap, preprocessing) tuple"
    )


def member_stride(m: Member) -> int:
    """The input-size multiple the member needs: its preprocessing's, and its architecture's when registered."""
    stride = int(m.preprocessing.divisible_by or 1)
    try:
        from medseg.models import model_stride

        stride = math.lcm(stride, int(model_stride(m.spec)))
    except (MedsegError, ImportError, ValueError, KeyError, TypeError):
        pass  # a hand-made model outside the registry: its preprocessing says it all
    return stride


def check_compatible(members: Sequence[Member]) -> ClassMap:
    first = members[0]
    key = (first.classmap.task, first.classmap.ids, first.classmap.names)
    for m in members:
        if m.spec.task != m.classmap.task:
            raise InferenceError(
                f"model {m.name or m.spec.arch}: spec task {m.spec.task!r} differs from "
                f"its class map's task {m.classmap.task!r}"
            )
        if m.spec.classes != m.classmap.num_classes:
            raise InferenceError(
                f"model {m.name or m.spec.arch}: {m.spec.classes} output channels but its "
                f"class map needs {m.classmap.num_classes}"
            )
        other = (m.classmap.task, m.classmap.ids, m.classmap.names)
        if other != key:
            raise InferenceError(
                "ensemble members must share task and classes: "
                f"{first.name or 'member 1'} has {key[0]} {dict(zip(key[1], key[2]))}, "
                f"{m.name or 'another member'} has {other[0]} {dict(zip(other[1], other[2]))}"
            )
    return first.classmap


def resize_size(members: Sequence[Member]) -> tuple[int, int] | None:
    """The one size every member was trained at on resized whole images, or None (tile at native scale)."""
    sizes = {
        tuple(m.preprocessing.input_size) if m.preprocessing.resize and m.preprocessing.input_size else None
        for m in members
    }
    if len(sizes) > 1:
        raise InferenceError(
            "the ensemble mixes models trained on images resized to different sizes "
            f"({', '.join(str(s) for s in sizes)}); predict with them separately"
        )
    size = sizes.pop()
    return None if size is None else (int(size[0]), int(size[1]))
