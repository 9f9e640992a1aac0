"""Format writers on cases no dataset layout yields yet: CT volumes and signed 2-D slices become NIfTI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from medseg.datasets.classmap import ClassMap
from medseg.errors import ExportError
from medseg.export.item import ExportItem
from medseg.export.writers_folders import FoldersWriter
from medseg.export.writers_monai import MonaiWriter
from medseg.export.writers_nnunet import NnUNetWriter
from medseg.io.types import ImageData

CM = ClassMap.from_names(["liver", "tumour"])
AFFINE = np.array([[0, 0, -0.8, 100.0], [0, -0.8, 0, 80.0], [2.5, 0, 0, -40.0], [0, 0, 0, 1.0]])


def ct_item(tmp_path, shape=(6, 12, 10), volume=True) -> ExportItem:
    rng = np.random.default_rng(0)
    pixels = rng.integers(-1000, 1500, size=shape).astype(np.int16)
    mask = np.zeros(shape, np.uint8)
    mask[..., 2:6, 3:7] = 1
    mask[..., 8:10, 1:3] = 2
    spacing = (2.5, 0.8, 0.8) if volume else (0.8, 0.8)
    meta = {"source": str(tmp_path / "ct.nii.gz"), "modality": "CT", **({"affine": AFFINE.tolist()} if volume else {})}
    image = ImageData(pixels, spacing, meta)
    record = SimpleNamespace(image_path=tmp_path / "ct.nii.gz")
    return ExportItem("ct 1", "ct_1", record, mask, lambda: image, volume=volume)


def test_nnunet_writes_volumes_as_nifti_with_one_geometry(tmp_path):
    item = ct_item(tmp_path)
    w = NnUNetWriter(tmp_path / "nn", CM)
    written = w.write(item)
    img = nib.load(written.images[0].path)
    seg = nib.load(written.masks[0].path)
    assert written.images[0].path.name == "ct_1_0000.nii.gz" and written.masks[0].path.name == "ct_1.nii.gz"
    assert img.shape == seg.shape == item.mask.shape
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)  # NIfTI stores the matrix as float32
    np.testing.assert_array_equal(seg.affine, img.affine)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), item.image().array)
    np.testing.assert_array_equal(np.asanyarray(seg.dataobj), item.mask)
    assert np.asanyarray(img.dataobj).dtype == np.int16
    dj = w.dataset_json(1)
    assert dj["file_ending"] == ".nii.gz" and dj["channel_names"] == {"0": "CT"}
    assert dj["labels"] == {"background": 0, "liver": 1, "tumour": 2}


def test_nnunet_writes_signed_2d_slices_as_one_slice_volumes(tmp_path):
    item = ct_item(tmp_path, shape=(12, 10), volume=False)
    written = NnUNetWriter(tmp_path / "nn", CM).write(item)
    img, seg = (nib.load(f.path) for f in (written.images[0], *written.masks))
    assert img.shape == seg.shape == (1, 12, 10)
    np.testing.assert_array_equal(img.affine, seg.affine)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj)[0], item.image().array)
    np.testing.assert_array_equal(np.asanyarray(seg.dataobj)[0], item.mask)


@pytest.mark.parametrize("writer, masks", [(FoldersWriter, "masks"), (MonaiWriter, "labels")])
def test_folders_and_monai_write_volume_image_and_mask_on_one_affine(tmp_path, writer, masks):
    item = ct_item(tmp_path)
    w = writer(tmp_path / "out", CM)
    written = w.write(item)
    assert written.images[0].path == tmp_path / "out" / "images" / "ct_1.nii.gz"
    assert written.masks[0].path == tmp_path / "out" / masks / "ct_1.nii.gz"
    img, seg = nib.load(written.images[0].path), nib.load(written.masks[0].path)
    np.testing.assert_array_equal(img.affine, seg.affine)
    np.testing.assert_array_equal(np.asanyarray(seg.dataobj), item.mask)
    assert written.images[0].how == "converted"
    files = w.finish({"ct_1": written}, None, {})
    assert json.loads(files[-1].path.read_text()) == CM.to_dict()  # classmap.json travels with the data


def test_nnunet_refuses_more_overlapping_classes_than_uint8_labels_hold(tmp_path):
    many = ClassMap.from_names([f"c{i}" for i in range(9)], task="multilabel")
    with pytest.raises(ExportError, match="9 overlapping classes"):
        NnUNetWriter(tmp_path / "nn", many)
