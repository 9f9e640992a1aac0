"""File-level findings: indexing problems and files that fail to decode."""

from __future__ import annotations

import numpy as np

from medseg.datasets import open_dataset
from medseg.qc import qc
from tests._qc_data import natural, rect_mask, write_dataset


def test_index_problems_and_decode_failures_become_findings(tmp_path):
    root = write_dataset(
        tmp_path / "ds",
        {
            "ok": (natural("astronaut"), rect_mask(64)),
            "lonely": (natural("coffee"), None),
            "wide": (natural("chelsea"), np.zeros((64, 80), np.uint8)),
            "broken": (natural("rocket"), rect_mask(64)),
        },
    )
    (root / "masks" / "orphan.png").write_bytes((root / "masks" / "ok.png").read_bytes())
    png = (root / "masks" / "broken.png").read_bytes()
    (root / "masks" / "broken.png").write_bytes(png[: len(png) // 2])  # header fine, pixel data cut
    (root / "images" / "empty.png").write_bytes(b"")
    (root / "masks" / "empty.png").write_bytes((root / "masks" / "ok.png").read_bytes())
    ds = open_dataset(root)
    report = qc(ds, "unreadable,missing_pair,size_mismatch,specks", workers=1)
    got = {(f.sample_id, f.check, f.severity) for f in report.findings}
    assert got == {
        ("lonely", "missing_pair", "warning"),
        ("orphan", "missing_pair", "warning"),
        ("wide", "size_mismatch", "error"),
        ("empty", "unreadable", "error"),
        ("broken", "unreadable", "error"),
    }
    broken = next(f for f in report.findings if f.sample_id == "broken")
    assert "cannot be decoded" in broken.message and broken.path.endswith("broken.png")
    assert next(f for f in report.findings if f.sample_id == "wide").details["kind"] == "size_mismatch"
