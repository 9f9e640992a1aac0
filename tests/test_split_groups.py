"""Groups for splitting: duplicates QC found across groups join their groups (training, ranking, export)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from medseg.datasets.split import kfold_by_group
from medseg.export import export_dataset
from medseg.qc import Finding
from medseg.training.workspace_source import open_workspace_dataset
from medseg.workspace import Workspace
from medseg.workspace.split_groups import merged_groups, split_groups


def test_merged_groups_join_linked_groups_transitively_and_keep_the_rest():
    groups = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "d1": "D", "e1": "", "e2": ""}
    out = merged_groups(groups, [("a2", "b1"), ("b1", "c1"), ("a1", "nobody"), ("e1", "d1")])
    assert out == {"a1": "A+B+C", "a2": "A+B+C", "b1": "A+B+C", "c1": "A+B+C", "d1": "D", "e1": "", "e2": ""}
    assert merged_groups(groups, []) == groups


def _workspace(tmp_path) -> Workspace:
    """12 random frames, one group each (group_by="stem"), and QC duplicate findings across three groups."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "images" / f"f{k:02d}.png")
        m = np.zeros((16, 16), np.uint8)
        m[4:10, 4:10] = 255
        Image.fromarray(m).save(root / "masks" / f"f{k:02d}.png")
    ws = Workspace.create(tmp_path / "ws", root, group_by="stem")
    ws.add_findings(
        [
            Finding(
                "f01",
                "near_duplicate",
                "warning",
                "near copy of f07 in another group",
                details={"others": [{"id": "f07"}], "cross_group": ["f07"]},
            ),
            Finding(
                "f07",
                "exact_duplicate",
                "warning",
                "same pixels as f10",
                details={"others": ["f10"], "cross_group": ["f10"]},
            ),
            Finding("f02", "near_duplicate", "info", "near copy of f03, same group", details={"cross_group": []}),
        ],
        source="qc",
    )
    return ws


def test_training_ranking_and_export_splits_keep_linked_duplicates_together(tmp_path):
    with _workspace(tmp_path) as ws:
        groups = split_groups(ws)
        assert groups["f01"] == groups["f07"] == groups["f10"] == "f01+f07+f10"
        assert groups["f02"] == "f02" and groups["f03"] == "f03"
        samples = open_workspace_dataset(ws.root).samples  # what training and the ranking split
        assert {s.id: s.group for s in samples} == groups
        for seed in range(5):
            for _, held in kfold_by_group(samples, 4, seed):
                ids = {s.id for s in held}
                assert len(ids & {"f01", "f07", "f10"}) in (0, 3)
        result = export_dataset(ws, tmp_path / "out", "folders", statuses=("unreviewed",), split=3, seed=1)
        manifest = json.loads(result.manifest_path.read_text())
        part = {e["id"]: e["split"] for e in manifest["samples"]}
        assert part["f01"] == part["f07"] == part["f10"]
