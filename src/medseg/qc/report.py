"""A QC run's result: findings, counts per check, timings; JSON, CSV and a plain-text table."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medseg.folder_swap import write_text_atomic
from medseg.qc.findings import SEVERITIES, Finding, json_safe, severity_rank

CSV_COLUMNS = ("sample_id", "check", "severity", "value", "message", "path", "fix", "details")


@dataclass
class QCReport:
    """Findings worst first (severity, then check, then dataset order); ``by_check`` counts them.

    ``timings`` holds seconds per step: "decode" (reading files), each check,
    and each per-sample measure ("fingerprint", "sharpness", "foreground");
    per-sample steps are summed over the worker threads.
    """

    findings: list[Finding]
    by_check: dict[str, int]
    n_samples: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    source: str = ""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # {method: {sample: score}}

    def by_severity(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in reversed(SEVERITIES)}

    def counts(self) -> dict[str, dict[str, int]]:
        """{check: {"error": n, "warning": n, "info": n}} for every check that ran."""
        out = {name: dict.fromkeys(reversed(SEVERITIES), 0) for name in self.checks}
        for f in self.findings:
            out.setdefault(f.check, dict.fromkeys(reversed(SEVERITIES), 0))[f.severity] += 1
        return out

    def at_least(self, min_severity: str) -> QCReport:
        """The same report keeping only findings of ``min_severity`` or worse."""
        floor = severity_rank(min_severity)
        kept = [f for f in self.findings if severity_rank(f.severity) >= floor]
        return QCReport(
            kept,
            dict(Counter(f.check for f in kept)),
            self.n_samples,
            self.seconds,
            dict(self.timings),
            list(self.checks),
            dict(self.params),
            self.source,
        )

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "n_samples": self.n_samples,
            "seconds": round(self.seconds, 3),
            "checks": self.checks,
            "params": json_safe(self.params),
            "by_check": self.by_check,
            "by_severity": self.by_severity(),
            "counts": self.counts(),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "findings": [f.to_dict() for f in self.findings],
            "scores": json_safe(self.scores),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text_atomic(Path(path), text)
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for f in self.findings:
            d = f.to_dict()
            w.writerow(["" if d[k] is None else (json.dumps(d[k]) if k == "details" else d[k]) for k in CSV_COLUMNS])
        text = buf.getvalue()
        if path is not None:
            write_text_atomic(Path(path), text)
        return text

    def table(self, worst: int = 20) -> str:
        """Counts per check, then the ``worst`` most severe findings with their messages."""
        head = (
            f"QC of {self.source or 'dataset'}: {self.n_samples:,} samples in {self.seconds:.1f} s, "
            f"{len(self.findings):,} findings "
            f"({', '.join(f'{n} {s}' for s, n in self.by_severity().items())})"
        )
        lines = [head, ""]
        counts = self.counts()
        width = max([len(c) for c in counts] + [5])
        lines.append(f"{'check':<{width}}  {'error':>6} {'warning':>8} {'info':>6}")
        for name, c in counts.items():
            lines.append(f"{name:<{width}}  {c['error']:>6} {c['warning']:>8} {c['info']:>6}")
        shown = self.findings[:worst]
        if shown:
            lines += ["", f"worst {len(shown)} of {len(self.findings):,} findings:"]
            for f in shown:
                fix = f" [fix: {f.fix}]" if f.fix else ""
                lines.append(f"  {f.severity.upper():<7} {f.check:<{width}} {f.sample_id}: {f.message}{fix}")
        return "\n".join(lines)
