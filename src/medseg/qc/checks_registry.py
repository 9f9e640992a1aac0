"""Every QC check by name, the per-sample measures dataset checks need, and parameter validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from medseg.errors import QCParamError, UnknownNameError
from medseg.qc import (
    checks_files,
    checks_images,
    checks_masks,
    checks_objects,
    checks_outline,
    checks_signals,
    checks_volume,
    duplicates,
    signal_neighbours,
    signal_region,
    signal_shape,
)
from medseg.qc.checks_base import Check

_MODULES = (
    checks_files,
    checks_masks,
    checks_volume,
    checks_objects,
    checks_images,
    duplicates,
    checks_outline,
    checks_signals,
)
CHECKS: dict[str, Check] = {c.name: c for mod in _MODULES for c in mod.CHECKS}

# Measures taken from each decoded sample for dataset-stage checks (kept small: no images, no masks).
FEATURES: dict[str, Callable] = {
    "fingerprint": duplicates.fingerprint,
    "sharpness": checks_images.sharpness,
    "foreground": checks_masks.foreground_pixels,
    "objects": checks_objects.object_counts,
    "outline": checks_outline.outline_measure,
    "thumbs": signal_neighbours.thumbnails,
    "contrast": signal_region.region_measure,
    "shape": signal_shape.shape_measure,
    "revision": lambda v: v.revision,
}


def resolve_checks(checks: str | Iterable[str] | None) -> list[Check]:
    """The named checks in registry order (all of them for None); "a,b" strings are split."""
    if checks is None:
        return list(CHECKS.values())
    names = [n.strip() for n in checks.split(",")] if isinstance(checks, str) else [str(n).strip() for n in checks]
    names = [n for n in names if n]
    for n in names:
        if n not in CHECKS:
            raise UnknownNameError("QC check", n, list(CHECKS))
    if not names:
        raise QCParamError(f"no QC check named; valid: {', '.join(CHECKS)}")
    return [c for c in CHECKS.values() if c.name in names]


def resolve_params(selected: list[Check], params: dict | None) -> dict[str, dict]:
    """Defaults overridden by ``params`` ({check: {name: value}}); unknown checks or names raise."""
    params = dict(params or {})
    for name in params:
        if name not in CHECKS:
            raise UnknownNameError("QC check", name, list(CHECKS), hint="(in params)")
    out = {}
    for c in selected:
        given = dict(params.get(c.name) or {})
        for key, value in given.items():
            if key not in c.defaults:
                raise UnknownNameError(f"parameter of QC check {c.name!r}", key, list(c.defaults) or ["(none)"])
            default = c.defaults[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise QCParamError(
                    f"QC check {c.name!r}: parameter {key!r} must be a number (default {default!r}), got {value!r}"
                )
            if value < 0:
                raise QCParamError(f"QC check {c.name!r}: parameter {key!r} must be >= 0, got {value!r}")
            given[key] = int(value) if isinstance(default, int) and float(value).is_integer() else value
        out[c.name] = {**c.defaults, **given}
    return out
