"""QC on a workspace: findings stored in one go, nothing changed by QC, fixes only when offered."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.qc import offer_fixes, qc, run_qc
from medseg.qc.checks_registry import CHECKS
from medseg.qc.report import QCReport
from medseg.workspace import Workspace
from tests._qc_data import file_bytes, natural, rect_mask, write_dataset


@pytest.fixture
def dataset_root(tmp_path):
    speckled = rect_mask(64, (10, 40, 10, 40))
    speckled[50, 50:55] = 255  # 5 px speck
    speckled[20:23, 20:23] = 0  # 9 px hole
    grey = rect_mask(64)
    grey[55:60, :10] = 40  # 50 px of faint grey noise
    return write_dataset(
        tmp_path / "ds",
        {
            "a": (natural("astronaut"), speckled),
            "b": (natural("coffee"), grey),
            "c": (natural("chelsea"), rect_mask(64)),
            "d": (natural("rocket"), None),
        },
    )


@pytest.fixture
def ws(tmp_path, dataset_root):
    with Workspace.create(tmp_path / "ws", dataset_root, author="tester") as w:
        yield w


def _keys(findings):
    return sorted((f.sample_id, f.check, f.message) for f in findings)


def test_qc_on_a_bare_dataset_matches_the_workspace_and_writes_nothing(dataset_root, ws):
    before = file_bytes(dataset_root)
    report = qc(open_dataset(dataset_root), workers=2)
    assert file_bytes(dataset_root) == before
    got = {(f.sample_id, f.check): f for f in report.findings if f.check != "outline_fit"}
    assert set(got) == {("a", "specks"), ("a", "holes"), ("b", "mask_values"), ("d", "missing_pair")}
    assert got[("b", "mask_values")].fix == "binarise"  # the source still holds the grey values
    in_ws = {(f.sample_id, f.check): f for f in qc(ws, workers=2).findings if f.check != "outline_fit"}
    assert set(in_ws) == set(got)
    assert in_ws[("b", "mask_values")].fix is None  # the imported revision is already binarised
    assert "workspace" in in_ws[("b", "mask_values")].message


def test_run_qc_stores_findings_and_changes_no_mask(dataset_root, ws):
    before = file_bytes(dataset_root)
    heads = {sid: ws.sample(sid).head_revision for sid in ws.sample_ids()}
    report = qc(ws, workers=1)
    assert file_bytes(dataset_root) == before
    assert {sid: ws.sample(sid).head_revision for sid in ws.sample_ids()} == heads
    assert all(len(ws.revisions(sid)) == 1 for sid in ws.sample_ids())
    stored = ws.findings(source="qc")
    # the index problem is reported but stays stored once, under "index"
    assert _keys(stored) == _keys(f for f in report.findings if f.check != "missing_pair")
    assert [f.check for f in ws.findings(source="index")] == ["image_without_mask"]


def test_offer_fixes_saves_auto_fix_revisions_only_when_called(ws):
    report = qc(ws, workers=1)
    speckled = ws.current_mask("a")
    revisions = offer_fixes(ws, report.findings, author="qc-bot")
    assert [(r.sample_id, r.origin, r.changed, r.author) for r in revisions] == [
        ("a", "auto-fix", {1: 5}, "qc-bot"),
        ("a", "auto-fix", {1: 9}, "qc-bot"),
    ]
    fixed = ws.current_mask("a")
    assert fixed[50, 50:55].sum() == 0 and fixed[20:23, 20:23].all()
    assert int(np.sum(fixed != speckled)) == 14
    assert offer_fixes(ws, report.findings) == []  # already fixed: nothing new
    ws.revert("a", revisions[0].parent_id)
    only_holes = offer_fixes(ws, report.findings, names=["fill_holes"])
    assert [r.note.split(":")[0] for r in only_holes] == ["auto-fix fill_holes"]


def test_interrupted_run_leaves_stored_findings_as_they_were(ws):
    qc(ws, "specks,holes", workers=1)
    before = _keys(ws.findings(source="qc"))
    events = run_qc(ws, workers=2)
    for _ in range(2):
        next(events)
    events.close()  # a GUI cancelling
    assert _keys(ws.findings(source="qc")) == before
    with pytest.raises(KeyboardInterrupt):
        for event in run_qc(ws, workers=2):
            if getattr(event, "done", None) == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle
    assert _keys(ws.findings(source="qc")) == before


def test_a_subset_run_replaces_only_its_checks(ws):
    qc(ws, [c for c in CHECKS if c != "outline_fit"], workers=1)
    assert {f.check for f in ws.findings(source="qc")} == {"specks", "holes", "mask_values"}
    report = qc(ws, "specks", {"specks": {"min_pixels": 3}}, workers=1)
    assert isinstance(report, QCReport) and report.findings == []  # 5 px is no speck at min_pixels 3
    assert {f.check for f in ws.findings(source="qc")} == {"holes", "mask_values"}


def test_qc_stores_the_review_queue_order_the_app_opens_with(ws, monkeypatch):
    """The first open after QC reads the order QC stored (computing it, which reads every score and finding,
    fails here) and it is the order computed from what QC stored."""
    from medseg.qc.queue import review_queue

    qc(ws, workers=1)

    def computed():
        raise AssertionError("the queue was computed, not read from the order QC stored")

    with monkeypatch.context() as m:
        m.setattr(ws, "queue_columns", computed)
        stored = review_queue(ws)
    ws.queue_cache_clear()
    fresh = review_queue(ws)
    assert stored.sample_ids == fresh.sample_ids and stored.priorities.tolist() == fresh.priorities.tolist()
    assert [i.reason for i in stored] == [i.reason for i in fresh] and len(stored) == len(ws.sample_ids())
