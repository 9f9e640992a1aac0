"""The npe2 writers: Labels -> PNG/TIFF/NIfTI keeping ids and spacing; image + Labels -> a dataset folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _review_data import copy_cvc, make_review_set

from medseg.errors import ExportError
from medseg.io import load
from napari_medseg._writers import write_dataset, write_labels

PLUGIN = "napari-medseg"


def _ids(shape=(24, 30), top=3) -> np.ndarray:
    ids = np.zeros(shape, np.int32)  # napari's default labels dtype when painting from scratch
    ids[2:10, 3:12] = 1
    ids[12:20, 15:28] = top
    ids[..., 0, 0] = 2
    return ids


@pytest.mark.gui
@pytest.mark.parametrize("name", ["mask.png", "mask.tif", "mask.tiff", "mask.nii", "mask.nii.gz"])
def test_labels_layer_saved_through_napari_keeps_ids_and_spacing(make_napari_viewer, tmp_path, name):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(_ids(top=300), scale=(0.5, 0.25), name="mask")
    written = layer.save(str(tmp_path / name), plugin=PLUGIN)
    assert written == [str(tmp_path / name)]
    back = load(tmp_path / name)
    array = back.array[0] if name.startswith("mask.nii") else back.array  # NIfTI holds a one-slice volume
    np.testing.assert_array_equal(array, _ids(top=300))
    assert array.dtype == np.uint16  # id 300 needs 16 bits; no colour mapping, no rescaling
    if not name.endswith(".png"):  # PNG carries no spacing the engine reads
        assert back.spacing[-2:] == pytest.approx((0.5, 0.25), rel=1e-6) and back.metadata["spacing_known"]


def test_stack_to_tiff_and_nifti_keeps_slice_spacing(tmp_path):
    ids = np.stack([_ids(top=2), np.zeros((24, 30), np.int32), _ids(top=3)]).astype(np.uint8)
    for name in ("stack.tif", "stack.nii.gz"):
        write_labels(str(tmp_path / name), ids, {"scale": (2.5, 0.7, 0.8), "metadata": {}})
        back = load(tmp_path / name)
        np.testing.assert_array_equal(back.array, ids)
        assert back.array.dtype == np.uint8 and back.spacing == pytest.approx((2.5, 0.7, 0.8), rel=1e-6)


def test_ids_a_format_cannot_hold_are_refused_naming_the_file(tmp_path):
    big = _ids(top=70_000)
    with pytest.raises(ExportError, match=r"big\.png: class id 70000 does not fit"):
        write_labels(str(tmp_path / "big.png"), big, {"scale": (1, 1)})
    assert not (tmp_path / "big.png").exists()
    write_labels(str(tmp_path / "big.tif"), big, {"scale": (1, 1)})  # 32-bit TIFF holds it
    assert load(tmp_path / "big.tif").array.max() == 70_000
    with pytest.raises(ExportError, match="negative ids"):
        write_labels(str(tmp_path / "neg.nii.gz"), -_ids(), {"scale": (1, 1)})
    with pytest.raises(ExportError, match="PNG holds one 2-D plane"):
        write_labels(str(tmp_path / "vol.png"), np.zeros((2, 4, 4), np.uint8), {"scale": (1, 1, 1)})


def _read_dataset(out):
    from medseg.datasets import open_dataset

    ds = open_dataset(out)
    return ds, {s.id: (s.load_image().array, s.load_mask()) for s in ds.samples}


@pytest.mark.gui
def test_image_and_labels_layers_saved_as_dataset_folder(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    image = viewer.add_image(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8), name="frame 7", rgb=True)
    labels = viewer.add_labels(_ids(top=2), name="frame 7 labels")
    out = tmp_path / "cleaned"
    viewer.layers.selection = {image, labels}
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert written == [str(out)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "medseg-export" and manifest["counts"]["exported"] == 1
    assert manifest["samples"][0]["source"] == {"image_layer": "frame 7", "labels_layer": "frame 7 labels"}
    ds, samples = _read_dataset(out)
    ((img, mask),) = samples.values()
    np.testing.assert_array_equal(img, image.data)
    np.testing.assert_array_equal(mask, _ids(top=2))
    assert ds.classmap.task == "multiclass" and json.loads((out / "classmap.json").read_text())["task"] == "multiclass"


def test_dataset_stack_layers_are_split_back_into_samples(tmp_path):
    from napari_medseg._reader import napari_get_reader

    data = make_review_set(tmp_path / "set", n=3)
    layers = napari_get_reader(str(data))(str(data))
    # the user corrected frame 2's mask in the stack
    images, masks = layers[0], layers[1]
    edited = np.asarray(masks[0]).copy()
    edited[1, 0:5, 0:5] = 1
    paths = write_dataset(str(tmp_path / "out"), [images, (edited, masks[1], "labels")])
    ds, samples = _read_dataset(paths[0])
    assert sorted(samples) == ["1", "2", "3"] and ds.classmap.task == "binary"
    for k, sid in enumerate(["1", "2", "3"]):
        np.testing.assert_array_equal(samples[sid][1], edited[k])
        np.testing.assert_array_equal(samples[sid][0], np.asarray(images[0][k]))


def test_real_cvc_stack_round_trip(tmp_path, cvc_dir):
    from napari_medseg._reader import napari_get_reader

    data = copy_cvc(cvc_dir, tmp_path / "cvc", frames=(1, 2, 3))
    images, masks = napari_get_reader(str(data))(str(data))
    write_dataset(str(tmp_path / "out"), [images, masks])
    _, samples = _read_dataset(tmp_path / "out")
    for k, sid in enumerate(["1", "2", "3"]):
        np.testing.assert_array_equal(samples[sid][0], np.asarray(images[0][k]))
        np.testing.assert_array_equal(samples[sid][1], np.asarray(masks[0][k]))
    assert samples["1"][0].shape == (288, 384, 3)


def test_dataset_writer_refuses_unpaired_layers_and_non_empty_folders(tmp_path):
    img = (np.zeros((8, 8), np.uint8), {"name": "a", "scale": (1, 1)}, "image")
    lab = (np.ones((8, 8), np.uint8), {"name": "b", "scale": (1, 1)}, "labels")
    with pytest.raises(ExportError, match="1 image and 0 labels layer"):
        write_dataset(str(tmp_path / "x"), [img])
    small = (np.ones((4, 8), np.uint8), {"name": "c", "scale": (1, 1)}, "labels")
    with pytest.raises(ExportError, match=r"sample a: labels of shape \(4, 8\) do not match the image's \(8, 8\)"):
        write_dataset(str(tmp_path / "x"), [img, small])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        write_dataset(str(tmp_path / "full"), [img, lab])
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine" and not (tmp_path / "x").exists()
