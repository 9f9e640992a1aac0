"""Dataset QC: rule-based checks with findings and safe auto-fixes, and model-based label-quality ranking.

``run_qc(dataset_or_workspace)`` is a job (:mod:`medseg.jobs`) ending with ``Result(QCReport)``;
``CHECKS`` names every check; ``apply_fix`` / ``offer_fixes`` are the only
ways a fix reaches a mask. ``review_queue(workspace)`` orders samples worst label first.
"""

from medseg.qc.checks_registry import CHECKS
from medseg.qc.findings import SEVERITIES, Finding
from medseg.qc.fixes import FIXES, apply_fix, offer_fixes
from medseg.qc.queue import QueueItem, review_queue
from medseg.qc.report import QCReport
from medseg.qc.run import qc, run_qc

__all__ = [
    "CHECKS",
    "FIXES",
    "SEVERITIES",
    "Finding",
    "QCReport",
    "QueueItem",
    "apply_fix",
    "offer_fixes",
    "qc",
    "review_queue",
    "run_qc",
]
