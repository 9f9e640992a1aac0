"""QC's findings are :mod:`medseg.findings` (the workspace stores them too, and sits below QC); re-exported here."""

from medseg.findings import ERROR, INFO, SEVERITIES, WARNING, Finding, json_safe, severity_rank

__all__ = ["ERROR", "INFO", "SEVERITIES", "WARNING", "Finding", "json_safe", "severity_rank"]
