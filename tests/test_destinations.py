"""The one write guard: no writer touches a dataset's source files or a workspace's internals, and
overwriting replaces only files medseg wrote and nobody changed since (real CVC-ClinicDB frames)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _guard_data import stem_mask_dataset, tiny_checkpoint, tree_hashes
from PIL import Image

from medseg.cli import main
from medseg.destinations import (
    EXPORT_KIND,
    EXPORT_MANIFEST,
    WORKSPACE_DB,
    check_destination,
)
from medseg.errors import DestinationError
from medseg.ownership import OWNERSHIP_NAME, OutputFolder, guarded_file


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture
def ds(cvc_dir, tmp_path):
    return stem_mask_dataset(cvc_dir, tmp_path / "cvc")


@pytest.fixture
def ws(ds, tmp_path):
    from medseg.workspace import Workspace

    with Workspace.create(tmp_path / "ws", ds) as w:
        yield w


def _refused(dest, protected, **kw) -> DestinationError:
    with pytest.raises(DestinationError) as e:
        check_destination(dest, **kw)
    message = str(e.value)
    assert str(Path(dest).resolve()) in message and str(Path(protected).resolve()) in message, message
    assert "Choose a folder outside it" in message
    return e.value


# ------------------------------------------------------------------ the data loss
def test_predict_into_the_datasets_own_masks_folder_is_refused_and_the_masks_stay_byte_identical(ds, ckpt):
    """The reproduction: masks named <stem>_mask.png, `medseg predict CKPT DATASET --out DATASET/masks`."""
    before = tree_hashes(ds)
    exe = Path(sys.executable).with_name("medseg")
    for extra in ([], ["--overwrite"]):
        run = subprocess.run(
            [str(exe), "predict", str(ckpt), str(ds), "--out", str(ds / "masks"), "--device", "cpu", *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 2, run.stderr
        assert str(ds / "masks") in run.stderr and "Traceback" not in run.stderr
        assert run.stderr.count("\n") == 1  # one line
    assert tree_hashes(ds) == before


def test_a_dataset_found_from_the_destination_is_refused_even_when_not_among_the_inputs(ds, ckpt, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(ds / "images" / "1.png", other / "frame.png")
    before = tree_hashes(ds)
    for out in (ds / "masks", ds / "images" / "preds", ds):
        assert main(["predict", str(ckpt), str(other / "frame.png"), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"refusing to write predictions to {out}" in err and str(ds) in err
    assert tree_hashes(ds) == before
    # beside the dataset's folders (not in them) is fine, and so is a sub-folder of an input file's folder
    assert main(["predict", str(ckpt), str(other / "frame.png"), "--out", str(ds / "predictions"), "--quiet"]) == 0
    assert main(["predict", str(ckpt), str(other / "frame.png"), "--out", str(other / "preds"), "--quiet"]) == 0
    assert (other / "preds" / "frame_mask.png").is_file()


def test_the_inputs_are_protected_as_explicit_roots(ds, ckpt, tmp_path, capsys):
    assert main(["predict", str(ckpt), str(ds), "--out", str(ds / "predictions"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is inside the source folder " + str(ds) in err
    assert main(["predict", str(ckpt), str(ds / "images" / "1.png"), "--out", str(ds / "images"), "--quiet"]) == 2
    assert "the folder holding the input 1.png" in capsys.readouterr().err
    assert main(["predict", str(ckpt), str(ds), "--out", str(tmp_path), "--quiet"]) == 2  # holds the dataset
    assert "contains the source folder" in capsys.readouterr().err


# ------------------------------------------------------------------ what counts as a source tree
def test_every_layout_protects_its_data_folders_and_not_the_folder_around_it(tmp_path):
    home = tmp_path / "home"
    stem_mask = home / "images", home / "masks"
    for d in stem_mask:
        d.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(home / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(home / "masks" / "a.png")
    # ~ holding images/ + masks/ must not refuse ~/out or ~/report.json ...
    assert check_destination(home / "out") == (home / "out").resolve()
    assert check_destination(home / "report.json", file=True) == (home / "report.json").resolve()
    # ... but their inside, and the dataset folder itself as an output folder, are refused
    _refused(home / "masks", home / "masks")
    _refused(home / "images" / "x" / "y.png", home / "images", file=True)
    _refused(home, home)

    nn = tmp_path / "Dataset001"
    for d in ("imagesTr", "labelsTr"):
        (nn / d).mkdir(parents=True)
    (nn / "dataset.json").write_text("{}")
    _refused(nn / "labelsTr" / "case_0.png", nn / "labelsTr", file=True)
    _refused(nn / "dataset.json", nn / "dataset.json", file=True)
    _refused(nn / "imagesTs", nn / "imagesTs")  # nnU-Net's test images, even before they exist

    mont = tmp_path / "MontgomerySet"
    for d in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (mont / d).mkdir(parents=True)
    _refused(mont / "ManualMask" / "leftMask", mont / "ManualMask")

    uw = tmp_path / "uw"
    (uw / "train").mkdir(parents=True)
    (uw / "train.csv").write_text("id,class,segmentation\n")
    _refused(uw / "train" / "case1", uw / "train")
    _refused(uw / "train.csv", uw / "train.csv", file=True)
    assert check_destination(uw / "predictions")


def test_flat_pairs_and_dicom_series_protect_the_folder_written_into(tmp_path, ct_small, mr_small):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("7.png", "7_mask.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / name)
    err = _refused(flat, flat)
    assert "images and their masks" in str(err)
    _refused(flat / "7_mask.png", flat, file=True)
    assert check_destination(flat / "preds")  # a sub-folder touches no file of the folder

    series = tmp_path / "series"
    series.mkdir()
    shutil.copy(ct_small, series / "IM0001")  # DICOM files without a suffix: found by their DICM magic
    shutil.copy(mr_small, series / "IM0002")
    assert "DICOM series" in str(_refused(series, series))
    stray = tmp_path / "home2"
    stray.mkdir()
    shutil.copy(ct_small, stray / "one.dcm")  # one stray DICOM file is not a series
    assert check_destination(stray)


def test_a_workspace_is_refused_except_its_job_areas_for_medsegs_own_jobs(ws):
    root = ws.root
    for dest in (root, root / "masks", root / "masks" / "ab" / "x.npz", root / "export"):
        err = _refused(dest, root)
        assert "a workspace holds only" in str(err)
    err = _refused(root / "runs" / "mine", root)  # a user-chosen folder there: refused
    assert "written only by medseg's own jobs" in str(err)
    assert check_destination(root / "runs" / "oof-k5" / "fold1", internal=True)
    assert check_destination(root / "predictions" / "m" / "1.npz", internal=True, file=True)
    _refused(root / "masks" / "x", root, internal=True)
    # a workspace among the sources protects its dataset too
    e = _refused(ws.dataset_root / "new", ws.dataset_root, sources=[root])
    assert "the workspace's dataset folder" in str(e)
    assert e.destination == (ws.dataset_root / "new").resolve() and e.protected == ws.dataset_root.resolve()


def test_the_guard_constants_match_their_owners():
    from medseg.export import target
    from medseg.workspace.store import DB_NAME

    assert WORKSPACE_DB == DB_NAME and EXPORT_MANIFEST == target.MANIFEST_NAME and EXPORT_KIND == target.MANIFEST_KIND


def test_a_link_into_a_dataset_is_followed(ds, tmp_path):
    (tmp_path / "shortcut").symlink_to(ds / "masks")
    _refused(tmp_path / "shortcut" / "x.png", ds / "masks", file=True)


# ------------------------------------------------------------------ overwriting
def test_overwrite_replaces_own_unchanged_predictions_only(ds, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(ckpt), str(ds), "--out", str(out), "--quiet"]
    assert main(args) == 0
    record = [json.loads(line) for line in (out / OWNERSHIP_NAME).read_text().splitlines()]
    assert {r["path"] for r in record} == {"1_mask.png", "2_mask.png", "3_mask.png", "4_mask.png"}
    assert main(args) == 2  # without --overwrite nothing is replaced
    assert f"{out / '1_mask.png'}: the file exists" in capsys.readouterr().err.replace(
        "refusing to write predictions to ", ""
    )
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()

    edited = 1 - np.asarray(Image.open(out / "2_mask.png"))
    Image.fromarray(edited).save(out / "2_mask.png")  # the user corrected one by hand
    kept = (out / "2_mask.png").read_bytes()
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(out / "2_mask.png") in err and "changed since medseg wrote it" in err
    assert (out / "2_mask.png").read_bytes() == kept

    (out / "2_mask.png").unlink()
    shutil.copy(ds / "masks" / "3_mask.png", tmp_path / "theirs.png")
    (out / "3_mask.png").unlink()
    shutil.copy(tmp_path / "theirs.png", out / "3_mask.png")  # a file from elsewhere under an own name
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(out / "3_mask.png") in err and "changed since" in err


def test_a_foreign_file_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_mask.png").write_bytes(b"years of work")
    folder = OutputFolder(out, purpose="predictions", overwrite=True)
    with pytest.raises(DestinationError, match="medseg did not write it") as e:
        folder.check("x_mask.png")
    assert e.value.protected == (out / "x_mask.png").resolve()
    with pytest.raises(DestinationError, match="outside the output folder"):
        folder.check("../escape.png")
    own, path = guarded_file(out / "new.json", purpose="a report")
    path.write_text("{}")
    own.record(path)
    assert guarded_file(out / "new.json", purpose="a report", overwrite=True)[1] == path


def test_write_prediction_refuses_before_writing_any_file(ds, ckpt, tmp_path):
    from medseg.inference import Predictor
    from medseg.inference.batch import predict_image, write_prediction
    from medseg.io import load

    pred = predict_image(Predictor(str(ckpt), device="cpu"), load(ds / "images" / "1.png"))
    before = tree_hashes(ds)
    with pytest.raises(DestinationError, match="masks/ folder"):
        write_prediction(pred, ds / "masks", "1")
    with pytest.raises(DestinationError, match="holding the input"):
        write_prediction(pred, ds / "images", "1", sources=[ds / "images" / "1.png"])
    assert tree_hashes(ds) == before
    out = tmp_path / "p"
    out.mkdir()
    (out / "1_probs.tif").write_bytes(b"not ours")
    with pytest.raises(DestinationError, match="1_probs.tif"):
        write_prediction(pred, out, "1", probs=True, overwrite=True)
    assert not (out / "1_mask.png").exists()  # checked all, wrote none


# ------------------------------------------------------------------ other writers
def test_save_checkpoint_is_guarded_and_replaces_only_an_unchanged_checkpoint(ds, ws, tmp_path):
    import torch

    from medseg.datasets.classmap import ClassMap
    from medseg.models import save_checkpoint
    from medseg.models.registry import create_model
    from medseg.models.spec import ModelSpec, Preprocessing

    spec = ModelSpec(arch="PlainUNet", classes=1, task="binary", kwargs={"depth": 2, "base_channels": 4})
    model = create_model(spec)

    def save(path, **kw):
        return save_checkpoint(path, model, spec, ClassMap.binary("polyp"), Preprocessing(channels=3), **kw)

    for dest, protected in (
        (ds / "masks" / "m", ds / "masks"),
        (ws.root / "m", ws.root),
        (ws.root / "masks" / "m", ws.root),
    ):
        with pytest.raises(DestinationError) as e:
            save(dest)
        assert f"{dest}.medseg" in str(e.value) and str(protected) in str(e.value)
    assert save(ws.root / "runs" / "oof" / "fold1" / "best").is_dir()  # the ranking's folds: medseg's own
    first = save(tmp_path / "ck")
    assert save(tmp_path / "ck") == first  # its own, unchanged: replaced
    weights = first / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + torch.zeros(2, dtype=torch.float32).numpy().tobytes())
    with pytest.raises(DestinationError, match="changed since medseg saved it"):
        save(tmp_path / "ck")
    (tmp_path / "data").mkdir()
    with pytest.raises(DestinationError, match="inside the source folder"):
        save(tmp_path / "data" / "m", sources=[tmp_path / "data"])


def test_exports_and_label_files_are_guarded(ds, ws, tmp_path):
    from medseg.export import export_dataset
    from medseg.export.arrays import write_label_file

    before = tree_hashes(ds)
    for out, protected in ((ds / "masks" / "clean", ds), (ws.root / "export", ws.root), (ds, ds)):
        with pytest.raises(DestinationError) as e:
            export_dataset(ws, out, "folders", overwrite=True)
        assert str(out) in str(e.value) and str(protected) in str(e.value)
    ids = np.zeros((48, 64), np.uint8)
    for out in (ds / "masks" / "1_mask.png", ws.root / "masks" / "x.png"):
        with pytest.raises(DestinationError):
            write_label_file(out, ids, overwrite=True)
    assert tree_hashes(ds) == before

    out = tmp_path / "clean"
    export_dataset(ws, out, "folders")
    export_dataset(ws, out, "folders", overwrite=True)  # its own previous export, unchanged
    (out / "masks" / "1.png").write_bytes((out / "masks" / "2.png").read_bytes())  # hand-edited since
    with pytest.raises(DestinationError, match=r"masks/1\.png changed since the export wrote it"):
        export_dataset(ws, out, "folders", overwrite=True)
    export_dataset(ws, tmp_path / "clean2", "folders")
    (tmp_path / "clean2" / "notes.txt").write_text("mine")
    with pytest.raises(DestinationError, match="notes.txt is not part of the export"):
        export_dataset(ws, tmp_path / "clean2", "folders", overwrite=True)
    assert (tmp_path / "clean2" / "notes.txt").read_text() == "mine"

    label = tmp_path / "labels" / "a.tif"
    write_label_file(label, ids)
    write_label_file(label, ids, overwrite=True)
    with pytest.raises(DestinationError, match="the file exists"):
        write_label_file(label, ids)


def test_workspace_create_is_guarded(ds, ws, tmp_path):
    from medseg.workspace import Workspace

    for target, protected in ((ds / "masks" / "ws", ds), (ws.root / "inner", ws.root), (ds / "ws", ds)):
        with pytest.raises(DestinationError) as e:
            Workspace.create(target, ds)
        assert str(target) in str(e.value) and str(protected) in str(e.value)
    assert not (ds / "masks" / "ws").exists() and not (ws.root / "inner").exists()


def test_onnx_export_is_guarded(ds, ckpt, tmp_path):
    pytest.importorskip("onnx")
    from medseg.models.onnx_export import export_onnx

    with pytest.raises(DestinationError, match="masks/ folder"):
        export_onnx(ckpt, ds / "masks" / "model.onnx")
    out = export_onnx(ckpt, tmp_path / "m" / "model.onnx")
    with pytest.raises(DestinationError, match="the file exists"):
        export_onnx(ckpt, out)
    assert export_onnx(ckpt, out, overwrite=True) == out
