"""Training run folders: the per-epoch record a run writes (``metrics.csv``, ``curves.png``) and runs side
by side (``medseg runs``, the Fine-tune dock's list of past runs). No torch: reading runs stays light."""

from medseg.runs.files import CURVES_PNG, EVALUATION_DIR, METRICS_CSV, append_epoch, epoch_row, read_metrics
from medseg.runs.table import RunSummary, find_runs, format_table, read_run, read_runs, write_table_csv

__all__ = [
    "CURVES_PNG",
    "EVALUATION_DIR",
    "METRICS_CSV",
    "RunSummary",
    "append_epoch",
    "epoch_row",
    "find_runs",
    "format_table",
    "read_metrics",
    "read_run",
    "read_runs",
    "write_table_csv",
]
