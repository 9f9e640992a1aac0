"""A finding: one problem found in one sample (or a pair of samples), and its severities.

The workspace stores findings (indexing problems at creation, QC's checks
later) and QC makes and reports them, so the record and its vocabulary live
below both (the workspace layer sits below QC). Findings are written to JSON/CSV
reports, so ``to_dict`` returns only JSON-safe values (numpy scalars and
arrays, tuples and paths are converted) and ``from_dict`` accepts what
``to_dict`` wrote. ``medseg.qc.findings`` re-exports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("info", "warning", "error")  # lowest first
INFO, WARNING, ERROR = SEVERITIES
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for error; a clear error for anything else."""
    try:
        return _RANK[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r}; valid: {', '.join(SEVERITIES)}") from None


def json_safe(value: Any) -> Any:
    """``value`` with numpy types, tuples, sets and paths turned into plain JSON types."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # NaN/inf are not JSON; a finding's value is only ever informative, so None is honest.
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v) for v in items]
    # numpy without importing it at module level: scalars have .item(), arrays .tolist().
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if hasattr(value, "item"):
        return json_safe(value.item())
    raise TypeError(f"cannot store {type(value).__name__} value {value!r} in a finding")


@dataclass
class Finding:
    """One check's result for one sample.

    ``value`` is the measured quantity (e.g. number of grey levels, IoU, speck
    count), ``path`` the file the finding is about, ``fix`` the name of a safe
    auto-fix in ``medseg.qc.fixes.FIXES`` when one exists, ``details`` any
    extra JSON-safe facts (e.g. the other sample of a duplicate pair).
    """

    sample_id: str
    check: str
    severity: str
    message: str
    value: float | None = None
    path: str | None = None
    fix: str | None = None
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        self.sample_id = str(self.sample_id)
        if self.path is not None:
            self.path = str(self.path)
        if self.value is not None:
            self.value = json_safe(float(self.value))
        self.details = json_safe(dict(self.details or {}))

    def to_dict(self) -> dict:
        return {
            "sample_id": self.sample_id,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "value": self.value,
            "path": self.path,
            "fix": self.fix,
            "details": json_safe(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        missing = [k for k in ("sample_id", "check", "severity", "message") if k not in d]
        if missing:
            raise ValueError(f"finding dict lacks {', '.join(missing)}: {d!r}")
        return cls(
            sample_id=d["sample_id"],
            check=d["check"],
            severity=d["severity"],
            message=d["message"],
            value=d.get("value"),
            path=d.get("path"),
            fix=d.get("fix"),
            details=d.get("details") or {},
        )
