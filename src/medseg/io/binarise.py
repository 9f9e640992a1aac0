"""Turning a grey binary mask (0/255 with noise) into 0/1, and saying what changed.

Binary masks are often stored as 0/255 and picked up grey levels on the way:
JPEG ringing near edges (0..7, 248..255), anti-aliasing, or stray label noise
(CVC-ClinicDB's original frame 1 mask holds 42 grey levels, 8..112, in a faint
block far from the polyp). ``mask > 0`` silently makes all of it foreground.
:func:`binarise` decides each grey pixel by an explicit rule and returns a
:class:`BinariseReport` of every pixel it had to decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.mask_read import read_mask_values

_NOMINAL_MAXIMA = (1, 255, 65535, 2**32 - 1)


@dataclass
class BinariseReport:
    """What :func:`binarise` did. A pixel is foreground iff ``value >= threshold``.

    ``grey_levels`` are the stored values other than 0 and ``nominal_max``
    (with ``grey_level_counts`` pixels each); ``n_ambiguous`` pixels hold them.
    Each of those pixels had to be re-assigned: ``n_to_background`` went to 0,
    ``n_to_foreground`` to 1, and ``n_changed`` is their sum (pixels stored as
    exactly 0 or ``nominal_max`` never change, so it equals ``n_ambiguous``).
    ``n_differs_from_nonzero`` counts pixels whose class differs from the naive
    ``mask > 0`` (grey pixels sent to background).
    """

    rule: str
    threshold: float
    nominal_max: float
    grey_levels: list[float]
    grey_level_counts: list[int]
    n_pixels: int
    n_foreground: int
    n_ambiguous: int
    n_to_background: int
    n_to_foreground: int
    n_changed: int
    n_differs_from_nonzero: int
    source: str | None = None
    note: str = ""

    @property
    def levels_to_background(self) -> list[float]:
        """Grey levels below the threshold (set to 0)."""
        return [v for v in self.grey_levels if v < self.threshold]

    @property
    def levels_to_foreground(self) -> list[float]:
        """Grey levels at or above the threshold (set to 1)."""
        return [v for v in self.grey_levels if v >= self.threshold]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels_to_background"] = self.levels_to_background
        d["levels_to_foreground"] = self.levels_to_foreground
        d["summary"] = self.summary()
        return d

    def summary(self) -> str:
        """One sentence for a log or a status bar."""
        rule = f"rule {self.rule}: foreground iff value >= {_fmt(self.threshold)}"
        if self.note:
            rule += f"; note: {self.note}"
        if not self.grey_levels:
            return f"already binary (values 0/{_fmt(self.nominal_max)}), nothing re-assigned ({rule})"
        lo, hi = _fmt(self.grey_levels[0]), _fmt(self.grey_levels[-1])
        span = f"{lo}" if lo == hi else f"{lo}..{hi}"
        n = len(self.grey_levels)
        return (
            f"{n} grey level{'s' if n != 1 else ''} ({span}) in {self.n_ambiguous:,} pixels: "
            f"{self.n_to_background:,} set to background, {self.n_to_foreground:,} to foreground "
            f"({rule})"
        )


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _nominal_max(observed_max: float) -> float:
    """The stored foreground value: the smallest of 1, 255, 65535, 2**32-1 that is >= the max."""
    for m in _NOMINAL_MAXIMA:
        if observed_max <= m:
            return m
    return observed_max


def _as_values(mask: Any) -> tuple[np.ndarray, str | None]:
    if isinstance(mask, (str, Path)):
        return read_mask_values(mask), str(mask)
    arr = np.asarray(mask)
    return arr, None


def _value_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(arr, return_counts=True)``; for 8- and 16-bit integers (never negative here) by counting
    each value, without the sort (about half of binarising a small 0/255 mask)."""
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        every = np.bincount(arr.ravel())
        values = np.flatnonzero(every)
        return values.astype(arr.dtype), every[values]
    return np.unique(arr, return_counts=True)


def binarise(
    mask: np.ndarray | str | Path, rule: str | float = "half", nominal_max: float | None = None
) -> tuple[np.ndarray, BinariseReport]:
    """Binarise a single-class mask (array or file) to uint8 0/1, with a report.

    Foreground iff ``value >= threshold``. Rules:

    * ``"half"`` (default): threshold = half of the nominal foreground value,
      rounded up for integer masks: 128 for 0/255 masks, 1 for 0/1 masks,
      32768 for 16-bit, 0.5 for float 0..1. Each grey pixel goes to the nominal
      value it is nearer to (an exact half, possible only for even or float
      maxima, goes to foreground). So JPEG ringing (0..7, 248..255) snaps back
      where it belongs, anti-aliased edges split at 50 % coverage (area is kept
      on average), and faint label noise far below half intensity is dropped
      instead of becoming foreground as with ``mask > 0``. Unlike Otsu it does
      not depend on how many noisy pixels there are.
    * ``"otsu"``: the Otsu threshold of the mask's values (skimage), for masks
      whose foreground was not stored at full intensity; needs two values.
    * a number: that threshold, in (0, nominal_max].

    ``nominal_max`` (default: the smallest of 1, 255, 65535 that holds the
    mask's maximum, so a 0/255 mask that lost its foreground to noise is still
    read against 255) is the stored value of a clean foreground pixel.
    """
    arr, source = _as_values(mask)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"cannot binarise values of type {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError("mask holds NaN or infinite values")
    if arr.size and arr.min() < 0:
        raise ValueError(f"mask holds negative values (min {arr.min()}); 0 must be background")
    is_int = np.issubdtype(arr.dtype, np.integer)
    observed = float(arr.max()) if arr.size else 0.0
    nominal = float(nominal_max) if nominal_max is not None else float(_nominal_max(observed))
    if nominal <= 0 or observed > nominal:
        raise ValueError(f"nominal_max {_fmt(nominal)} must be positive and >= the mask's max {_fmt(observed)}")

    values, counts = _value_counts(arr)
    note = ""
    if rule == "half":
        threshold = float(math.ceil(nominal / 2) if is_int else nominal / 2)
    elif rule == "otsu":
        if len(values) < 2:
            threshold = float(math.ceil(nominal / 2) if is_int else nominal / 2)
            note = "fewer than two distinct values: Otsu is undefined, used half of nominal_max"
        else:
            from skimage.filters import threshold_otsu

            t = float(threshold_otsu(hist=(counts, values)))
            # skimage's rule is value > t; express it as value >= threshold
            threshold = float(math.floor(t) + 1) if is_int else float(np.nextafter(t, np.inf))
    elif isinstance(rule, (int, float, np.integer, np.floating)) and not isinstance(rule, bool):
        threshold = float(rule)
        if not 0 < threshold <= nominal:
            raise ValueError(
                f"threshold {rule} must be in (0, {_fmt(nominal)}]: outside it clean "
                "background or foreground pixels would flip"
            )
        rule = "threshold"
    else:
        raise ValueError(f"unknown binarise rule {rule!r}; use 'half', 'otsu' or a number")

    if is_int and nominal > 1 and 0 < observed <= 16 and observed < threshold:
        note += ("; " if note else "") + (
            f"no pixel reaches the threshold and the largest value is {_fmt(observed)}: "
            "if these are class ids, binarising erases them; read the mask as ids instead"
        )
    if is_int and threshold.is_integer() and nominal.is_integer():
        threshold, nominal = int(threshold), int(nominal)  # reports read 128, not 128.0
    out = (arr >= threshold).astype(np.uint8)
    grey = (values != 0) & (values != nominal)
    grey_values, grey_counts = values[grey], counts[grey]
    to_fg = int(grey_counts[grey_values >= threshold].sum())
    to_bg = int(grey_counts[grey_values < threshold].sum())
    report = BinariseReport(
        rule=str(rule),
        threshold=threshold,
        nominal_max=nominal,
        grey_levels=[v.item() for v in grey_values],
        grey_level_counts=[int(c) for c in grey_counts],
        n_pixels=int(arr.size),
        n_foreground=int(out.sum()),
        n_ambiguous=int(grey_counts.sum()),
        n_to_background=to_bg,
        n_to_foreground=to_fg,
        n_changed=to_bg + to_fg,
        n_differs_from_nonzero=to_bg,
        source=source,
        note=note,
    )
    return out, report
