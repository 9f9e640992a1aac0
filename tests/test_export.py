"""Export read back against the workspace: folders, nnU-Net, MONAI; manifest hashes; splits; statuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _export_data import make_frames, read_png

from medseg.errors import ExportError
from medseg.export import ExportResult, export_dataset, iter_export
from medseg.jobs import Progress, Result, Started, drive
from medseg.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    ds = make_frames(tmp_path / "ds")
    with Workspace.create(tmp_path / "ws", ds, author="importer") as w:
        yield w


def edit(ws) -> dict[str, np.ndarray]:
    """Corrected, auto-fixed, excluded and accepted samples; returns the masks as saved."""
    m = ws.current_mask("2")
    m[0:3, 0:4] = 1  # 12 new foreground pixels (the box starts at row 5)
    ws.save_revision("2", m, origin="manual", author="alice")
    f = ws.current_mask("11")
    f[5:7, :] = 0
    ws.save_revision("11", f, origin="auto-fix", author="qc")
    ws.set_status("11", "accepted")
    ws.set_status("1", "accepted")
    ws.set_status("3", "excluded", "blurred")
    ws.set_status("21", "excluded", "blurred")
    ws.set_status("30", "excluded", "duplicate")
    return {"2": m, "11": f}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_hashes(out: Path, manifest: dict) -> int:
    """Recompute every exported file's sha256 against the manifest; the number of files checked."""
    checked = 0
    for entry in manifest["samples"]:
        if entry["exported"] is None:
            continue
        for f in entry["exported"]["images"] + entry["exported"]["masks"]:
            assert sha(out / f["path"]) == f["sha256"], f["path"]
            checked += 1
        assert sha(Path(entry["source"]["image"]["path"])) == entry["source"]["image"]["sha256"]
    for f in manifest["files"]:
        assert sha(out / f["path"]) == f["sha256"]
        checked += 1
    return checked


def load_manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


EXCLUDED = {"3", "21", "30"}


def test_folders_export_reads_back_as_the_workspace(ws, tmp_path):
    saved = edit(ws)
    out = tmp_path / "clean"
    result = export_dataset(ws, out, "folders")
    kept = [s for s in ws.sample_ids() if s not in EXCLUDED]
    assert result.out == out.resolve() and result.n_samples == len(kept) == 8
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(kept)
    assert sorted(p.stem for p in (out / "masks").iterdir()) == sorted(kept)
    for sid in kept:
        mask = read_png(out / "masks" / f"{sid}.png")
        # the source masks are 0/255: so are the exported ones (issue 16; mask_values="ids" writes 0/1)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask, ws.current_mask(sid) * 255)
        assert (out / "images" / f"{sid}.png").read_bytes() == ws.sample(sid).image_path.read_bytes()
    np.testing.assert_array_equal(read_png(out / "masks" / "2.png"), saved["2"] * 255)
    m = load_manifest(out)
    assert verify_hashes(out, m) == 2 * len(kept) + 1  # images, masks, classmap.json
    assert json.loads((out / "classmap.json").read_text()) == ws.classmap.to_dict()


def test_manifest_records_statuses_revisions_and_changes(ws, tmp_path):
    edit(ws)
    out = tmp_path / "clean"
    result = export_dataset(ws, out, "folders")
    m = load_manifest(out)
    assert m["kind"] == "medseg-export" and m["format"] == "folders"
    assert m["workspace"] == str(ws.root) and m["dataset_root"] == str(ws.dataset_root)
    assert m["classmap"] == ws.classmap.to_dict()
    assert m["counts"]["by_status"] == {"unreviewed": 5, "accepted": 2, "corrected": 1, "excluded": 3}
    assert m["counts"]["exported"] == 8 and m["counts"]["left_out"] == 3
    assert m["counts"]["excluded_reasons"] == {"blurred": 2, "duplicate": 1}
    # 12 pixels joined the class in sample 2; 2 rows of the box (15 or 16 px each) left it in sample 11
    lost = int((ws.mask_at(ws.revisions("11")[0].id)[5:7] == 1).sum())
    assert m["pixels_changed"] == {"foreground": 12 + lost}
    by_id = {s["id"]: s for s in m["samples"]}
    assert set(by_id) == set(ws.sample_ids())  # excluded samples are listed, with their reason
    two = by_id["2"]
    assert two["status"] == "corrected" and two["exported"] is not None
    r = two["revisions"]
    assert r["count"] == 2 and r["origins"] == {"imported": 1, "manual": 1}
    assert r["authors"] == ["alice", "importer"] and r["changed_vs_imported"] == {"foreground": 12}
    assert r["head_mask_sha256"] == ws.revisions("2")[-1].mask_sha256
    assert [c["status"] for c in two["status_log"]][-1] == "corrected"
    src = ws.sample("2")
    assert two["source"]["image"] == {
        "path": str(src.image_path),
        "sha256": src.image_sha256,
        "sha256_at_import": src.image_sha256,
    }
    assert two["source"]["masks"][0]["sha256"] == sha(src.mask_paths[1])
    three = by_id["3"]
    assert three["exported"] is None and three["reason"] == "blurred" and "excluded" in three["left_out"]
    assert by_id["11"]["revisions"]["origins"] == {"imported": 1, "auto-fix": 1}
    changes = (out / "CHANGES.md").read_text()
    assert "11 samples: 1 corrected (" in changes and f"{12 + lost:,} foreground pixels changed" in changes
    assert "3 excluded (2 blurred, 1 duplicate)" in changes and "8 exported" in changes
    assert "| 2 | corrected |" in changes and "- 30: status excluded: duplicate" in changes
    assert result.summary_text.startswith("11 samples: 1 corrected")


def test_findings_are_in_the_manifest(ws, tmp_path):
    from medseg.qc.findings import Finding

    ws.add_findings([Finding("10", "specks", "warning", "2 specks below 20 px", value=2.0)], source="qc")
    export_dataset(ws, tmp_path / "clean", "folders")
    by_id = {s["id"]: s for s in load_manifest(tmp_path / "clean")["samples"]}
    assert by_id["10"]["findings"] == [
        {"check": "specks", "severity": "warning", "message": "2 specks below 20 px", "value": 2.0}
    ]
    assert by_id["11"]["findings"] == []


def test_nnunet_export_follows_the_raw_dataset_format(ws, tmp_path):
    edit(ws)
    out = tmp_path / "Dataset501_Polyps"
    export_dataset(ws, out, "nnunet", include_excluded=True)
    ids = ws.sample_ids()  # excluded ones asked for too
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert dj["labels"] == {"background": 0, "foreground": 1}
    assert dj["numTraining"] == len(ids) and dj["file_ending"] == ".png" and dj["name"] == out.name
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == sorted(f"{i}_0000.png" for i in ids)
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == sorted(f"{i}.png" for i in ids)
    for sid in ids:
        np.testing.assert_array_equal(read_png(out / "labelsTr" / f"{sid}.png"), ws.current_mask(sid))
        assert sha(out / "imagesTr" / f"{sid}_0000.png") == ws.sample(sid).image_sha256  # byte copy
    m = load_manifest(out)
    verify_hashes(out, m)
    assert {s["status"] for s in m["samples"] if s["exported"]} >= {"excluded", "corrected"}


def test_monai_datalist_loads_with_monai(ws, tmp_path):
    from monai.data import load_decathlon_datalist

    edit(ws)
    out = tmp_path / "monai"
    export_dataset(ws, out, "monai", split=(0.75, 0.25), seed=3)
    train = load_decathlon_datalist(out / "datalist.json", data_list_key="training")
    val = load_decathlon_datalist(out / "datalist.json", data_list_key="validation")
    assert len(train) + len(val) == 8 and train and val
    group = {s: ws.sample(s).group for s in ws.sample_ids()}
    for items in (train, val):
        for item in items:
            sid = Path(item["image"]).stem
            assert Path(item["image"]).read_bytes() == ws.sample(sid).image_path.read_bytes()
            np.testing.assert_array_equal(read_png(Path(item["label"])), ws.current_mask(sid))
    train_groups = {group[Path(i["image"]).stem] for i in train}
    val_groups = {group[Path(i["image"]).stem] for i in val}
    assert not train_groups & val_groups
    verify_hashes(out, load_manifest(out))


@pytest.mark.parametrize("fmt, split_file", [("folders", "splits.json"), ("nnunet", "splits_final.json")])
def test_group_aware_split_keeps_every_group_on_one_side(ws, tmp_path, fmt, split_file):
    out = tmp_path / fmt
    export_dataset(ws, out, fmt, split=(0.5, 0.5), seed=1)
    data = json.loads((out / split_file).read_text())
    if fmt == "nnunet":  # nnU-Net's own format: a list of {"train": [...], "val": [...]}
        assert isinstance(data, list) and len(data) == 1 and set(data[0]) == {"train", "val"}
        train, val = data[0]["train"], data[0]["val"]
    else:
        assert data["method"] == "split_by_group" and data["seed"] == 1
        train, val = data["train"], data["val"]
    assert sorted(train + val) == sorted(ws.sample_ids()) and train and val
    groups_of = lambda ids: {ws.sample(s).group for s in ids}
    assert not groups_of(train) & groups_of(val)
    parts = {s["id"]: s["split"] for s in load_manifest(out)["samples"]}
    assert {parts[s] for s in train} == {"train"} and {parts[s] for s in val} == {"val"}


def test_kfold_split_in_nnunet_and_monai(ws, tmp_path):
    export_dataset(ws, tmp_path / "nn", "nnunet", split=4)
    folds = json.loads((tmp_path / "nn" / "splits_final.json").read_text())
    assert len(folds) == 4
    assert sorted(s for f in folds for s in f["val"]) == sorted(ws.sample_ids())
    for f in folds:
        assert not {ws.sample(s).group for s in f["train"]} & {ws.sample(s).group for s in f["val"]}
    export_dataset(ws, tmp_path / "mo", "monai", split=4)
    training = json.loads((tmp_path / "mo" / "datalist.json").read_text())["training"]
    fold_of = {Path(i["image"]).stem: i["fold"] for i in training}
    assert fold_of == {s: k for k, f in enumerate(folds) for s in f["val"]}


def test_statuses_choose_what_is_exported(ws, tmp_path):
    edit(ws)
    export_dataset(ws, tmp_path / "reviewed", "folders", statuses=("accepted", "corrected"))
    assert sorted(p.stem for p in (tmp_path / "reviewed" / "masks").iterdir()) == ["1", "11", "2"]
    left = {s["id"]: s["left_out"] for s in load_manifest(tmp_path / "reviewed")["samples"] if not s["exported"]}
    assert "status unreviewed" in left["10"] and "status excluded: blurred" in left["3"]
    with pytest.raises(ExportError, match="unknown status"):
        export_dataset(ws, tmp_path / "x", "folders", statuses=("done",))
    for s in ws.sample_ids():
        ws.set_status(s, "excluded", "unusable")
    with pytest.raises(ExportError, match="nothing to export"):
        export_dataset(ws, tmp_path / "y", "folders")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_iter_export_yields_progress_then_the_result(ws, tmp_path):
    events = list(drive(iter_export(ws, tmp_path / "out", "monai")))
    progress = [e for e in events if isinstance(e, Progress)]
    n = len(ws.sample_ids())
    assert isinstance(events[0], Started) and events[0].total == n
    assert [e.done for e in progress if e.stage == "sample"] == list(range(1, n + 1))
    assert progress[-1].stage == "finishing" and all(e.total == n for e in progress)
    assert isinstance(events[-1], Result) and isinstance(events[-1].value, ExportResult)
    assert events[-1].value.n_samples == n
    assert events[-1].value.manifest_path == (tmp_path / "out" / "manifest.json").resolve()
