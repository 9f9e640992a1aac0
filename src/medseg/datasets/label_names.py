"""Class names of a volume dataset: a labels JSON beside the labels, or the dataset's ``dataset.json``.

Two spellings are met in the wild and both are read:

  * value -> name, ``{"0": "background", "1": "spleen", ..., "117": "costal_cartilages"}``
    (TotalSegmentator, the Medical Segmentation Decathlon's ``labels``);
  * name -> value, ``{"background": 0, "liver": 1}`` (nnU-Net v2's ``labels``).

Ids may be sparse (a TotalSegmentator CT holds 41 structures numbered up to
117): the class map keeps them as they are, each class in its own colour.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.errors import ReadError

# Looked for in the label folder first (in this order, then a lone *.json there), then in the dataset root.
LABEL_FILES = ("labels.json", "classes.json")
ROOT_FILES = ("labels.json", "classes.json", "dataset.json")


def label_names_file(label_dir: Path, root: Path) -> Path | None:
    """The JSON that names the classes of the labels in ``label_dir``, or None."""
    for name in LABEL_FILES:
        if (label_dir / name).is_file():
            return label_dir / name
    lone = sorted(p for p in label_dir.glob("*.json") if p.is_file() and not p.name.startswith("."))
    if len(lone) == 1:
        return lone[0]
    for name in ROOT_FILES:
        path = root / name
        if path.is_file() and (name != "dataset.json" or _has_labels(path)):
            return path
    return None


def _has_labels(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # let the reader name the broken file
    return isinstance(meta, dict) and "labels" in meta


def read_label_names(path: Path) -> ClassMap:
    """The class map a labels JSON (or a ``dataset.json``'s ``labels``) declares; ReadError naming the file."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReadError(path, f"is not readable JSON ({e})") from None
    labels = meta.get("labels") if isinstance(meta, dict) and isinstance(meta.get("labels"), dict) else meta
    if not isinstance(labels, dict) or not labels:
        raise ReadError(path, 'holds no label names: expected {"<value>": "<name>", ...} or {"<name>": <value>, ...}')
    by_value = _by_value(path, labels)
    if any(v < 0 for v in by_value):
        raise ReadError(path, f"declares negative label values {sorted(v for v in by_value if v < 0)}")
    if not [v for v in by_value if v != 0]:
        raise ReadError(path, "declares no class besides the background (0)")
    try:
        return ClassMap.from_id_names(by_value, extra={"source": path.name})
    except ValueError as e:
        raise ReadError(path, f"cannot be a class map: {e}") from None


def _by_value(path: Path, labels: dict) -> dict[int, str]:
    if any(isinstance(v, list) for v in labels.values()):
        raise ReadError(path, "declares region-based labels (lists of values); medseg reads one class per value")
    if all(_int(k) is not None for k in labels):  # {"1": "spleen"}
        if not all(isinstance(v, str) and v.strip() for v in labels.values()):
            raise ReadError(path, "maps label values to something other than names: expected {value: name}")
        return {_int(k): v for k, v in labels.items()}
    values = {k: _int(v) for k, v in labels.items()}
    if all(v is not None for v in values.values()):  # {"spleen": 1}
        by_value: dict[int, str] = {}
        for name, v in values.items():
            if v in by_value:
                raise ReadError(path, f"gives value {v} to both {by_value[v]!r} and {name!r}")
            by_value[v] = str(name)
        return by_value
    raise ReadError(
        path, f'mixes names and values: expected {{"<value>": "<name>"}} or {{"<name>": <value>}}, got {labels}'
    )


def _int(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None
