"""Opening volume files and volume datasets straight from napari (File > Open, drag and drop)."""

from __future__ import annotations

import shutil

import numpy as np
from _volume_data import make_nnunet3d, real_nnunet3d

from medseg.classmap import ClassMap
from medseg.io.volume_labels import read_label_volume
from napari_medseg._reader import napari_get_reader


def _read(path):
    reader = napari_get_reader(str(path))
    assert reader is not None
    return reader(str(path))


def _classmap(kwargs) -> ClassMap:
    return ClassMap.from_dict(kwargs["metadata"]["medseg"]["classmap"])


def test_a_multi_organ_label_volume_keeps_its_41_sparse_ids_and_names(ct_mr_dir, tmp_path):
    data = real_nnunet3d(ct_mr_dir, tmp_path / "ct", "ct")
    label = tmp_path / "ct_abdomen_labels.nii.gz"
    shutil.copy(ct_mr_dir / "ct_abdomen_labels.nii.gz", label)
    shutil.copy(ct_mr_dir / "ct_abdomen_labels.json", tmp_path / "ct_abdomen_labels.json")
    shutil.copy(ct_mr_dir / "mr_abdomen_labels.json", tmp_path / "mr_abdomen_labels.json")  # not its names
    ((ids, kwargs, kind),) = _read(label)
    expected, grid = read_label_volume(data / "labelsTr" / "ct_000.nii.gz")
    assert kind == "labels" and np.array_equal(ids, expected) and ids.max() == 117  # never binarised
    assert tuple(kwargs["scale"]) == grid.spacing
    cm = _classmap(kwargs)
    assert len(cm.ids) == 41 and cm.name_of(5) == "liver" and cm.name_of(117) == "costal_cartilages"


def test_a_label_volume_without_names_keeps_its_ids_and_a_broken_names_file_is_said(tmp_path):
    data = make_nnunet3d(tmp_path / "ds", n_cases=1)
    label = data / "labelsTr" / "case_000.nii.gz"
    ((ids, kwargs, _),) = _read(label)  # names from the dataset.json above the labels
    assert set(np.unique(ids)) == {0, 1, 2, 3} and _classmap(kwargs).name_of(1) == "liver"
    (data / "dataset.json").unlink()
    (data / "labelsTr" / "labels.json").write_text("{not json")
    ((ids2, kwargs2, _),) = _read(label)
    assert np.array_equal(ids, ids2) and _classmap(kwargs2).name_of(3) == "class_3"
    assert "labels.json" in kwargs2["metadata"]["medseg"]["label_names_problem"]


def test_a_volume_dataset_folder_opens_its_first_case_with_the_dataset_class_names(tmp_path):
    data = make_nnunet3d(tmp_path / "Dataset001_Synth", n_cases=2)
    image, labels = _read(data)
    assert image[2] == "image" and labels[2] == "labels"
    assert image[1]["name"] == "case_000 image" and image[0].shape == labels[0].shape
    assert tuple(image[1]["scale"]) == tuple(labels[1]["scale"])
    assert _classmap(labels[1]).name_of(2) == "spleen"
    assert labels[1]["metadata"]["medseg"]["sample_ids"] == ["case_000", "case_001"]
    assert "Dataset dock" in labels[1]["metadata"]["medseg"]["note"]
