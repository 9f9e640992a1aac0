"""Between per-class mask files, one id map, and one boolean channel per class.

Multiclass masks are exclusive (one id per pixel); multilabel masks may
overlap (stomach over small bowel) and stay (..., C) boolean channels in the
class map's order, never squashed into ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg.classmap import ClassMap
from medseg.errors import MaskError
from medseg.io.mask_read import _shrink, check_ids, read_mask

OVERLAP_POLICIES = ("error", "first", "last")


def _name(src: object, key: object) -> str:
    return f"{src} (class {key})" if isinstance(src, (str, Path)) else f"array for class {key}"


def _fail(reason: str, *sources: object) -> None:
    path = next((s for s in sources if isinstance(s, (str, Path))), None)
    if path is not None:
        raise MaskError(path, reason)
    raise ValueError(reason)


def _foreground(src: object, key: object) -> np.ndarray:
    """Boolean foreground of a single-class mask whose values are 0 and one other value."""
    arr = read_mask(src) if isinstance(src, (str, Path)) else np.asarray(src)
    if arr.dtype == bool:
        return arr
    values = np.unique(arr)
    nonzero = values[values != 0]
    if len(nonzero) > 1:
        shown = ", ".join(str(v) for v in nonzero[:6].tolist()) + (" ..." if len(nonzero) > 6 else "")
        _fail(
            f"mask of class {key} is not binary: besides 0 it holds {len(nonzero)} values ({shown}); "
            "binarise it first (medseg.io.masks.binarise) and pass the result",
            src,
        )
    return arr != 0


def _foregrounds(masks: Mapping[object, object]) -> list[tuple[object, object, np.ndarray]]:
    if not masks:
        raise ValueError("no class masks given")
    out = []
    for key, src in masks.items():
        fg = _foreground(src, key)
        if out and fg.shape != out[0][2].shape:
            k0, s0, f0 = out[0]
            _fail(f"{_name(s0, k0)} has shape {f0.shape} but {_name(src, key)} has shape {fg.shape}", src, s0)
        out.append((key, src, fg))
    return out


def merge_class_masks(masks: Mapping[int, str | Path | np.ndarray], overlap: str = "error") -> np.ndarray:
    """One id map from single-class masks, e.g. {1: leftMask.png, 2: rightMask.png}.

    Each mask is 0 plus one foreground value (0/255, 0/1 or bool); masks with
    grey levels raise (binarise them first). Pixels claimed by two classes
    raise MaskError naming both files and the pixel count, unless ``overlap``
    is "first" or "last" (the earlier / later class in ``masks`` order wins).
    """
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {OVERLAP_POLICIES}, got {overlap!r}")
    for key in masks:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 1:
            raise ValueError(f"class ids must be integers >= 1 (0 is background), got {key!r}")
    fgs = _foregrounds(masks)
    ids = np.zeros(fgs[0][2].shape, dtype=np.int64)
    for i, (key, src, fg) in enumerate(fgs):
        clash = fg & (ids != 0)
        if clash.any():
            if overlap == "error":
                for k0, s0, f0 in fgs[:i]:
                    n = int((f0 & fg).sum())
                    if n:
                        _fail(
                            f"{_name(s0, k0)} and {_name(src, key)} overlap in {n:,} pixels; "
                            "pass overlap='first' or 'last' to choose, or use stack_class_masks "
                            "for a multilabel task",
                            s0,
                            src,
                        )
            if overlap == "first":
                fg = fg & ~clash
        ids[fg] = int(key)
    return _shrink(ids)


def stack_class_masks(masks: Mapping[int | str, str | Path | np.ndarray], classmap: ClassMap) -> np.ndarray:
    """(..., C) bool channels in ``classmap`` order from {class id or name: mask}; overlaps kept.

    Classes without a mask get an empty channel.
    """
    channel = {}
    for key in masks:
        try:
            cid = classmap.id_of(key) if isinstance(key, str) else int(key)
            if cid == 0:
                raise ValueError("background (id 0) has no channel")
            classmap.name_of(cid)  # KeyError for an id the class map lacks
        except KeyError as e:
            raise ValueError(str(e.args[0])) from None
        channel[key] = classmap.ids.index(cid)
    fgs = _foregrounds(masks)
    out = np.zeros(fgs[0][2].shape + (len(classmap.classes),), dtype=bool)
    for key, _, fg in fgs:
        out[..., channel[key]] |= fg
    return out


def ids_to_channels(ids: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """(..., C) bool, channel k = ``ids == classmap.ids[k]`` (no background channel)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {ids.dtype}")
    check_ids(ids, classmap)
    return np.stack([ids == cid for cid in classmap.ids], axis=-1)


def channels_to_ids(channels: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """Inverse of :func:`ids_to_channels`; overlapping channels raise ValueError (keep them as channels)."""
    ch = np.asarray(channels)
    if ch.ndim < 1 or ch.shape[-1] != len(classmap.classes):
        raise ValueError(
            f"expected (..., {len(classmap.classes)}) channels for classes {classmap.names}, got shape {ch.shape}"
        )
    if ch.dtype != bool:
        if not np.isin(ch, (0, 1)).all():
            raise ValueError("channels must be boolean or 0/1")
        ch = ch.astype(bool)
    n_on = ch.sum(axis=-1)
    if (n_on > 1).any():
        pairs = []
        for a in range(ch.shape[-1]):
            for b in range(a + 1, ch.shape[-1]):
                n = int((ch[..., a] & ch[..., b]).sum())
                if n:
                    pairs.append(f"{classmap.names[a]} & {classmap.names[b]}: {n:,} px")
        raise ValueError(
            f"channels overlap in {int((n_on > 1).sum()):,} pixels ({'; '.join(pairs)}): "
            "one id per pixel cannot hold them; keep multilabel masks as channels"
        )
    ids = np.zeros(ch.shape[:-1], dtype=np.int64)
    for k, cid in enumerate(classmap.ids):
        ids[ch[..., k]] = cid
    return _shrink(ids)
