"""Class maps: which label ids mean what, in which colour, for which task.

The lowest vocabulary module (no medseg import): readers, datasets, models and
exports all speak it. ``medseg.datasets.classmap`` re-exports it.

A ``ClassMap`` travels with datasets, checkpoints and exports as plain JSON
(``to_dict`` / ``from_dict``), so a model never meets a mask whose ids it
interprets differently.

Tasks:
  * ``binary``: one foreground class (id 1) over background 0.
  * ``multiclass``: exclusive ids 0..N, one id per pixel (softmax).
  * ``multilabel``: classes may overlap; masks are stored as one boolean channel
    per class (channel-last), never as a single id map (sigmoid per class).
"""

from __future__ import annotations

import colorsys
import json
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TASKS = ("binary", "multiclass", "multilabel")

# Masks store class ids as small integers: a mask whose values go above this holds the grey levels of a
# binary mask (0/255, anti-aliasing, JPEG noise), not ids. Inferring a class map from masks (dataset
# indexing, the plugin's mask reader) draws the line here.
MAX_STORED_ID = 31

# Distinct, colour-blind-tolerant defaults (Okabe-Ito, then tab10-like).
_DEFAULT_COLOURS = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (148, 103, 189),
    (140, 86, 75),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
# Past the defaults: hues a golden angle apart, cycling through tones, each kept only when it stands far
# enough (RGB distance) from every colour before it; the bar is lowered only when no hue clears it.
_GOLDEN = 0.6180339887498949
_TONES = ((0.85, 0.95), (0.55, 0.8), (0.95, 0.6), (0.35, 1.0))
_MIN_DISTANCE = 60.0


def distinct_colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct RGB colours, always the same for the same ``n`` and each a prefix of the next.

    The first twelve are the colour-blind-tolerant defaults; 41 classes (a
    TotalSegmentator CT) stay at least 60 apart in RGB.
    """
    out = list(_DEFAULT_COLOURS[:n])
    bar, k = _MIN_DISTANCE, 0
    while len(out) < n:
        s, v = _TONES[k % len(_TONES)]
        colour = tuple(int(round(255 * x)) for x in colorsys.hsv_to_rgb((k * _GOLDEN) % 1.0, s, v))
        k += 1
        if all(sum((a - b) ** 2 for a, b in zip(colour, o)) >= bar * bar for o in out):
            out.append(colour)
        if k % 400 == 0:
            bar *= 0.8
    return out


@dataclass(frozen=True)
class LabelClass:
    id: int
    name: str
    colour: tuple[int, int, int]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _checked(c: LabelClass) -> LabelClass:
    """The class with plain int id and colour, or ValueError saying what is wrong."""
    if not isinstance(c, LabelClass):
        raise ValueError(f"class map entries must be LabelClass, got {c!r}")
    if not _is_int(c.id):
        raise ValueError(f"class id must be an integer, got {c.id!r}")
    if not isinstance(c.name, str) or not c.name.strip():
        raise ValueError(f"class {c.id} needs a non-empty name, got {c.name!r}")
    colour = tuple(c.colour) if isinstance(c.colour, (tuple, list)) else ()
    if len(colour) != 3 or not all(_is_int(v) and 0 <= v <= 255 for v in colour):
        raise ValueError(f"colour of class {c.name!r} must be 3 integers in 0..255, got {c.colour!r}")
    return LabelClass(int(c.id), c.name, tuple(int(v) for v in colour))


@dataclass
class ClassMap:
    """Foreground classes (background id 0 is implicit and never listed)."""

    classes: list[LabelClass]
    task: str = "multiclass"
    background: str = "background"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        self.classes = [_checked(c) for c in self.classes]
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate class ids in class map: {ids}")
        if any(i <= 0 for i in ids):
            raise ValueError(f"class ids must be >= 1 (0 is background): {ids}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in class map: {names}")
        if self.background in names:
            raise ValueError(f"class name {self.background!r} is the background's name (id 0)")
        if self.task == "binary" and ids != [1]:
            raise ValueError(f"a binary class map has exactly one class with id 1, got ids {ids}")
        self.classes = sorted(self.classes, key=lambda c: c.id)

    # construction -----------------------------------------------------------
    @classmethod
    def from_names(
        cls, names: Iterable[str], task: str | None = None, colours: Iterable[tuple[int, int, int]] | None = None
    ) -> ClassMap:
        """Ids 1..N in the order given; ``task`` defaults to binary for one name."""
        names = list(names)
        colours = list(colours) if colours is not None else None
        if task is None:
            task = "binary" if len(names) == 1 else "multiclass"
        colours = colours or distinct_colours(len(names))
        classes = [LabelClass(i + 1, n, tuple(colours[i])) for i, n in enumerate(names)]
        return cls(classes, task=task)

    @classmethod
    def from_id_names(
        cls,
        names: Mapping[int, str],
        task: str | None = None,
        background: str = "background",
        extra: dict[str, Any] | None = None,
    ) -> ClassMap:
        """Classes from {id: name}, ids as given (sparse ids such as TotalSegmentator's 117 stay), each in
        its own colour (:func:`distinct_colours`, in id order); id 0, if present, names the background.

        ``task`` defaults to binary when the only id is 1, else multiclass.
        """
        by_id = {int(i): str(n) for i, n in names.items()}
        background = by_id.pop(0, background)
        ids = sorted(by_id)
        colours = distinct_colours(len(ids))
        classes = [LabelClass(i, by_id[i], colours[k]) for k, i in enumerate(ids)]
        if task is None:
            task = "binary" if ids == [1] else "multiclass"
        return cls(classes, task=task, background=background, extra=dict(extra or {}))

    @classmethod
    def from_colour_table(
        cls, table: dict[int, tuple[int, int, int]], names: dict[int, str] | None = None, task: str | None = None
    ) -> ClassMap:
        """Classes from {id: (r, g, b)} (id 0, if present, is background and dropped).

        ``names`` maps ids to names (default ``class_<id>``); ``task`` defaults to
        binary when the only id is 1, else multiclass.
        """
        names = dict(names or {})
        ids = sorted(int(i) for i in table if int(i) != 0)
        classes = [LabelClass(i, names.get(i, f"class_{i}"), tuple(table[i])) for i in ids]
        if task is None:
            task = "binary" if ids == [1] else "multiclass"
        return cls(classes, task=task)

    @classmethod
    def binary(cls, name: str = "foreground") -> ClassMap:
        return cls.from_names([name], task="binary")

    # queries ----------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """Model output channels: 1 for binary, N+1 for multiclass (with background), N for multilabel."""
        if self.task == "binary":
            return 1
        if self.task == "multiclass":
            return len(self.classes) + 1
        return len(self.classes)

    def name_of(self, class_id: int) -> str:
        if class_id == 0:
            return self.background
        for c in self.classes:
            if c.id == class_id:
                return c.name
        raise KeyError(f"class id {class_id} is not in the class map (ids: {self.ids})")

    def id_of(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise KeyError(f"class {name!r} is not in the class map (names: {self.names})")

    def colour_table(self) -> dict[int, tuple[int, int, int]]:
        return {c.id: c.colour for c in self.classes}

    def napari_colour_dict(self) -> dict[int | None, tuple[float, float, float, float]]:
        """{id: (r, g, b, a)} in 0..1 for napari's DirectLabelColormap.

        Background 0 and ``None`` (napari's default for ids not listed) are transparent.
        """
        out: dict[int | None, tuple[float, float, float, float]] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
        for c in self.classes:
            out[c.id] = (c.colour[0] / 255, c.colour[1] / 255, c.colour[2] / 255, 1.0)
        return out

    # serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "background": self.background,
            "classes": [{"id": c.id, "name": c.name, "colour": list(c.colour)} for c in self.classes],
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassMap:
        if not isinstance(d, dict):
            raise ValueError(f"not a class map: expected a mapping, got {type(d).__name__}")
        try:
            classes = [
                LabelClass(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["colour"])) for c in d["classes"]
            ]
            return cls(
                classes,
                task=d.get("task", "multiclass"),
                background=d.get("background", "background"),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a class map: missing or malformed field {e}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClassMap:
        return cls.from_dict(json.loads(text))
