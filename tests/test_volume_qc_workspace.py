"""QC and ranking on a volume workspace (nnU-Net 3-D cases): findings on the head revision naming slices, a
corrected slice clears its finding, the review queue names the slices to open, out-of-fold ranking split by case
points to the worst slices, and ``medseg qc`` / ``medseg rank`` on the workspace."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d
from _volume_train_data import volume_config

from medseg.cli import main
from medseg.io.volume_geometry import Geometry, label_image_like
from medseg.io.volume_labels import read_label_volume
from medseg.qc import review_queue
from medseg.qc.checks_registry import CHECKS
from medseg.qc.oof import iter_rank_oof
from medseg.qc.ranking import FoldStarted, RankResult
from medseg.qc.run import qc
from medseg.workspace import Workspace

VOLUME = ("slice_gap", "stray_island", "slice_jump", "mask_values", "grid_mismatch")
# the synthetic cases are one phantom with its own noise each: their images are near-duplicates, rightly
NOT_DUPLICATES = [c for c in CHECKS if "duplicate" not in c]
GAP, SHIFT, PAINT = 6, 5, 7  # the planted slices (display order, 12 slices per case)


def plant(root: Path, case: str, change) -> np.ndarray:
    """Rewrite a case's label with ``change(display labels)`` applied, on its own grid; the clean labels."""
    path = root / "labelsTr" / f"{case}.nii.gz"
    labels, grid = read_label_volume(path)
    clean = labels.copy()
    change(labels)
    nib.save(label_image_like(labels, root / "imagesTr" / f"{case}_0000.nii.gz", grid), str(path))
    return clean


def make_planted(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Six cases (display 12 x 36 x 40): 0, 4, 5 clean; 1 a slice left unlabelled; 2 a slice shifted;
    3 a slice painted liver throughout; and case 6 whose label is 2 mm off its image's grid. Returns the
    clean labels of the planted cases too."""
    make_nnunet3d(root, 7, (40, 36, 12))

    def gap(a):
        a[GAP] = 0

    def shift(a):
        a[SHIFT] = np.roll(a[SHIFT], 8, axis=1)

    def paint(a):
        a[PAINT] = 1

    clean = {
        case: plant(root, case, change)
        for case, change in (("case_001", gap), ("case_002", shift), ("case_003", paint))
    }
    off = root / "labelsTr" / "case_006.nii.gz"
    img = nib.load(off)
    affine = img.affine.copy()
    affine[:3, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), str(off))
    return root, clean


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_planted(tmp_path_factory.mktemp("volqc") / "ds")


@pytest.fixture
def ws(data, tmp_path):
    w = Workspace.create(tmp_path / "ws", data[0])
    yield w
    w.close()


def findings_by(report, checks=VOLUME) -> dict:
    return {(f.sample_id, f.check): f for f in report.findings if f.check in checks}


def test_qc_of_a_volume_workspace_finds_each_planted_slice_and_stores_it(ws):
    assert ws.is_volume("case_000") and len(ws.sample_ids()) == 6  # case_006 is off its grid: left out
    report = qc(ws, workers=1)
    found = findings_by(report)
    assert set(found) == {
        ("case_001", "slice_gap"),
        ("case_002", "slice_jump"),
        ("case_003", "slice_jump"),
        ("case_006", "grid_mismatch"),
    }
    assert found["case_001", "slice_gap"].details["empty_slices"] == [GAP]
    assert found["case_002", "slice_jump"].details["slices"] == [SHIFT]
    assert found["case_003", "slice_jump"].details["slices"] == [PAINT]
    assert found["case_006", "grid_mismatch"].severity == "error"
    stored = {(f.sample_id, f.check): f for f in ws.findings(source="qc") if f.check in VOLUME}
    assert stored["case_001", "slice_gap"].details["slices"] == [GAP]
    # organs running through the scan's first and last slices are fine; a slice painted to its edges is not
    assert [f.sample_id for f in report.findings if f.check == "border_only"] == ["case_003"]


def test_a_corrected_slice_clears_its_finding_and_the_queue_names_slices(ws, data):
    qc(ws, NOT_DUPLICATES, workers=1)
    queue = review_queue(ws)
    order = [i.sample_id for i in queue]
    assert set(order[:3]) == {"case_001", "case_002", "case_003"} and set(order[3:]) == {
        "case_000",
        "case_004",
        "case_005",
    }
    item = {i.sample_id: i for i in queue}
    assert item["case_001"].slices[0] == GAP and f"look at slice {GAP}" in item["case_001"].reason
    assert "class missing on slice" in item["case_001"].reason
    assert item["case_002"].slices[0] == SHIFT and "unlike both neighbours" in item["case_002"].reason
    assert item["case_000"].slices == ()
    # the annotator draws slice GAP back and saves that slice alone
    rev = ws.save_slices("case_001", {GAP: data[1]["case_001"][GAP]}, origin="manual")
    assert rev.details["slices"] == [GAP]
    report = qc(ws, NOT_DUPLICATES, workers=1)
    assert ("case_001", "slice_gap") not in findings_by(report)
    after = {i.sample_id: i for i in review_queue(ws)}
    assert after["case_001"].slices == () and after["case_001"].findings == ()


def rank_config(epochs: int = 30) -> dict:
    """Tiny fold models on 32 x 32 slices: 30 epochs of 5 steps (3 cases x 12 slices, batches of 8)."""
    cfg = volume_config(Path("."), Path("."), epochs=epochs, max_steps_per_epoch=10, batch_size=8)
    del cfg["out_dir"], cfg["data"]["root"]
    return cfg


def test_out_of_fold_ranking_splits_cases_and_points_to_the_worst_slices(ws, tmp_path):
    events = list(iter_rank_oof(ws, rank_config(), folds=2, runs_dir=tmp_path / "runs"))
    folds = [e for e in events if isinstance(e, FoldStarted)]
    assert [(f.n_train, f.n_score) for f in folds] == [(3, 3), (3, 3)]  # cases, not slices
    result = events[-1].value
    assert isinstance(result, RankResult) and set(result.scores) == set(ws.sample_ids())
    details = ws.score_details("oof-k2")
    for d in details.values():
        assert d["out_of_fold"] and d["n_slices"] == 12 and d["worst_slices"] and d["revision"] is not None
        assert set(d["slice_scores"]) <= {str(z) for z in range(12)}
    # the slice painted liver throughout is its volume's worst, and that volume is the worst of all
    assert details["case_003"]["worst_slices"][0] == PAINT
    assert min(result.scores, key=result.scores.get) == "case_003"
    # each fold's model never saw the cases it scored
    by_checkpoint: dict[str, dict[str, set]] = {}
    for run in ws.model_runs():
        by_checkpoint.setdefault(str(run.checkpoint), {}).setdefault(run.kind, set()).update(run.revisions)
    assert len(by_checkpoint) == 2
    for kinds in by_checkpoint.values():
        assert len(kinds["rank"]) == 3 and len(kinds["train"]) == 3 and not kinds["rank"] & kinds["train"]
    queue = review_queue(ws, method="oof-k2")
    first = queue[0]
    assert first.sample_id == "case_003" and first.slices[0] == PAINT
    assert "worst slices of" in first.reason and f"look at slices {PAINT}, " in first.reason


def test_medseg_qc_and_rank_on_a_volume_workspace(ws, tmp_path, capsys):
    root = str(ws.root)
    ws.close()
    rc = main(["qc", root, "--quiet", "--json", str(tmp_path / "qc.json"), "--checks", ",".join(VOLUME)])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"case_001: slice {GAP} hold no label at all" in out
    report = json.loads((tmp_path / "qc.json").read_text())
    gap = next(f for f in report["findings"] if f["check"] == "slice_gap")
    assert gap["details"]["slices"] == [GAP]
    config = tmp_path / "rank.yaml"
    config.write_text(yaml.safe_dump(rank_config(epochs=2)))  # the plumbing, not the model
    rc = main(["rank", root, "--folds", "2", "--config", str(config), "--quiet", "--json", str(tmp_path / "q.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "look at slice" in out
    queue = json.loads((tmp_path / "q.json").read_text())
    by_id = {q["sample_id"]: q for q in queue}
    assert by_id["case_001"]["slices"][0] == GAP and by_id["case_003"]["slices"][0] == PAINT
    assert all(q["score"] is not None for q in queue)


def test_a_volume_workspace_grid_is_the_images(ws):
    g = ws.geometry("case_000")
    assert isinstance(g, Geometry) and g.shape == (12, 36, 40)
