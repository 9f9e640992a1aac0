"""nnU-Net v2 raw (2-D) as a dataset layout: what `medseg export --format nnunet` writes opens again."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from _review_data import copy_cvc
from PIL import Image

from medseg.datasets import open_dataset
from medseg.datasets.layouts import detect_layout
from medseg.errors import ReadError
from medseg.export import export_dataset
from medseg.workspace import Workspace


def test_an_nnunet_export_of_real_frames_opens_again_with_its_corrections(cvc_dir, tmp_path):
    data = copy_cvc(cvc_dir, tmp_path / "cvc", frames=(1, 2, 3, 120, 121))
    with Workspace.create(tmp_path / "ws", data) as ws:
        fixed = ws.current_mask("2").copy()
        fixed[:20, :20] = 1  # a correction the export must carry
        ws.save_revision("2", fixed, origin="manual")
        export_dataset(ws, tmp_path / "nn", "nnunet", statuses=("unreviewed", "corrected"))
        ds = open_dataset(tmp_path / "nn")
        assert detect_layout(tmp_path / "nn") == ds.layout == "nnunet"
        assert [s.id for s in ds.samples] == ["1", "2", "3", "120", "121"]
        assert ds.classmap.names == ws.classmap.names and ds.classmap.task == "binary"
        assert not ds.problems
        for s in ds.samples:
            assert np.array_equal(s.load_mask(), ws.current_mask(s.id).astype(bool)), s.id
            assert np.array_equal(s.load_image().array, np.asarray(Image.open(data / "images" / f"{s.id}.png")))
        # and it can be a workspace again, to go on cleaning
        with Workspace.create(tmp_path / "ws2", tmp_path / "nn") as again:
            assert np.array_equal(again.current_mask("2"), fixed)


def _nn(root, labels=None, cases=("a", "b")):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for k, case in enumerate(cases):
        Image.fromarray(np.full((8, 10, 3), 40 * k, np.uint8)).save(root / "imagesTr" / f"{case}_0000.png")
        m = np.zeros((8, 10), np.uint8)
        m[2:5, 2:6] = 1 + k % 2
        Image.fromarray(m).save(root / "labelsTr" / f"{case}.png")
    if labels is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".png"}))
    return root


def test_class_names_come_from_dataset_json_and_problems_are_listed(tmp_path):
    root = _nn(tmp_path / "d", {"bg": 0, "adenoma": 1, "hyperplastic": 2}, cases=("a", "b", "c"))
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(root / "imagesTr" / "a_0001.png")  # a second modality
    nib.save(nib.Nifti1Image(np.zeros((10, 8, 4), np.int16), np.eye(4)), root / "imagesTr" / "vol_0000.nii.gz")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(root / "labelsTr" / "orphan.png")
    (root / "labelsTr" / "c.png").unlink()
    ds = open_dataset(root)
    assert ds.classmap.names == ["adenoma", "hyperplastic"] and ds.classmap.background == "bg"
    assert ds.classmap.task == "multiclass"
    assert [s.id for s in ds.samples] == ["a", "b"]
    assert ds.samples[1].load_mask().max() == 2
    said = {p.path.name: p.message for p in ds.problems}
    assert said["a_0001.png"] == "channel 1 of case a: only a case's first file (_0000) is indexed"
    assert said["vol_0000.nii.gz"].startswith("a volume in imagesTr/: vol_0000.nii.gz is a volume of 4 slices")
    assert said["orphan.png"] == "no image orphan_0000.* in imagesTr/"
    assert said["c_0000.png"] == "no label c.* in labelsTr/"


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"background": 0, "liver": [1, 2]}, "region-based labels"),
        ({"background": 0, "a": 1, "b": 3}, "background 0 and classes 1..N"),
        ({"a": 1}, "background 0 and classes 1..N"),
        ({"background": 0, "a": "one"}, "must be integers"),
    ],
)
def test_a_dataset_json_it_cannot_use_is_an_error_naming_it(tmp_path, labels, words):
    root = _nn(tmp_path / "d", labels)
    with pytest.raises(ReadError, match=words) as e:
        open_dataset(root)
    assert "dataset.json" in str(e.value)


def test_without_dataset_json_the_class_map_is_inferred(tmp_path):
    ds = open_dataset(_nn(tmp_path / "d", None))
    assert ds.layout == "nnunet" and ds.classmap.task == "multiclass" and len(ds.classmap.ids) == 2
