"""Test-time augmentation: flips (and quarter turns) applied to a batch and undone on the output.

Each chosen transform adds one member to the identity: ``("hflip", "vflip")``
gives three predictions per model (plain, left-right, up-down) whose
probabilities the Predictor averages (and whose spread is the TTA variance).
Flips and quarter turns map a tile's pixel grid onto itself and undoing them
happens per tile, before blending, so the tiling is the same for every member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from medseg.errors import InferenceError


@dataclass(frozen=True)
class TTATransform:
    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    inverse: Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


TRANSFORMS: dict[str, TTATransform] = {
    t.name: t
    for t in (
        TTATransform("hflip", lambda x: x.flip(-1), lambda y: y.flip(-1)),
        TTATransform("vflip", lambda x: x.flip(-2), lambda y: y.flip(-2)),
        TTATransform("hvflip", lambda x: x.flip(-2, -1), lambda y: y.flip(-2, -1)),
        TTATransform("rot90", lambda x: x.rot90(1, (-2, -1)), lambda y: y.rot90(-1, (-2, -1))),
        TTATransform("rot270", lambda x: x.rot90(-1, (-2, -1)), lambda y: y.rot90(1, (-2, -1))),
    )
}
IDENTITY = TTATransform("identity", _identity, _identity)


def parse_tta(names: str | Iterable[str] | None) -> list[TTATransform]:
    """The identity followed by the named transforms, in order, without repeats.

    ``names``: None, a comma-separated string ("hflip,vflip") or a sequence of names.
    """
    if names is None:
        names = []
    elif isinstance(names, str):
        names = [n for n in names.split(",")]
    out = [IDENTITY]
    for raw in names:
        n = str(raw).strip().lower()
        if not n or n in ("none", "identity"):
            continue
        if n not in TRANSFORMS:
            raise InferenceError(f"unknown TTA transform {raw!r}; valid: {', '.join(TRANSFORMS)}")
        if all(t.name != n for t in out):
            out.append(TRANSFORMS[n])
    return out
