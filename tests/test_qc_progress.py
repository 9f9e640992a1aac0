"""Finding 11 of issue 16: QC's progress counts the samples (24 for the 24 demo frames), then one named
stage for the checks that compare samples, each stage's total what its count reaches."""

from __future__ import annotations

from medseg.datasets import open_dataset
from medseg.datasets.demo import make_demo_dataset
from medseg.jobs import Progress, Result, Started
from medseg.qc import run_qc
from medseg.qc.checks_registry import CHECKS


def test_qc_progress_on_the_demo_dataset_counts_its_24_samples(tmp_path):
    make_demo_dataset(tmp_path / "demo")
    events = list(run_qc(open_dataset(tmp_path / "demo"), workers=1))
    started, progress, end = events[0], [e for e in events if isinstance(e, Progress)], events[-1]
    assert isinstance(started, Started) and isinstance(end, Result)
    wide = [c.name for c in CHECKS.values() if c.stage == "dataset"]
    assert started.total == 24 and started.detail["stages"] == {"samples": 24, "dataset-wide checks": len(wide)}
    assert [e.stage for e in progress] == ["samples"] * 25 + ["dataset-wide checks"] * (len(wide) + 1)
    samples, checks = progress[:25], progress[25:]
    assert [(e.done, e.total) for e in samples] == [(k, 24) for k in range(25)]
    assert [(e.done, e.total) for e in checks] == [(k, len(wide)) for k in range(len(wide) + 1)]
    assert [e.item for e in checks[1:]] == wide
    for stage, total in started.detail["stages"].items():  # every stage ends at its total
        assert max(e.done for e in progress if e.stage == stage) == total
