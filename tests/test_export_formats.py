"""Class ids, overlapping classes and image conversions in each export format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _export_data import UW_CLASSES, make_frames, make_palette, make_uw, read_png

from medseg.export import export_dataset
from medseg.export.mask_out import region_decode
from medseg.workspace import Workspace


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def palette_ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_palette(tmp_path / "ds")) as w:
        yield w


@pytest.fixture
def uw_ws(tmp_path):
    with Workspace.create(tmp_path / "ws", make_uw(tmp_path / "ds")) as w:
        yield w


def test_multiclass_ids_are_preserved_in_folders_and_monai(palette_ws, tmp_path):
    ws = palette_ws
    assert ws.classmap.ids == [1, 2, 4]
    for fmt, masks in (("folders", "masks"), ("monai", "labels")):
        out = tmp_path / fmt
        export_dataset(ws, out, fmt)
        for sid in ws.sample_ids():
            ids = read_png(out / masks / f"{sid}.png")
            assert ids.dtype == np.uint8
            np.testing.assert_array_equal(ids, ws.current_mask(sid))
            # RGBA images stay the source bytes in these formats
            assert (out / "images" / f"{sid}.png").read_bytes() == ws.sample(sid).image_path.read_bytes()
    assert set(np.unique(read_png(tmp_path / "folders" / "masks" / "tissue_0.png"))) == {0, 1, 2, 4}
    labels = json.loads((tmp_path / "monai" / "datalist.json").read_text())["labels"]
    assert labels == {"0": "background", "1": "class_1", "2": "class_2", "4": "class_4"}


def test_nnunet_renumbers_gapped_ids_and_converts_rgba(palette_ws, tmp_path):
    ws, out = palette_ws, tmp_path / "nn"
    export_dataset(ws, out, "nnunet")
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["labels"] == {"background": 0, "class_1": 1, "class_2": 2, "class_4": 3}  # consecutive, as nnU-Net needs
    assert dj["medseg_label_ids"] == {"1": 1, "2": 2, "3": 4}
    assert dj["channel_names"] == {"0": "R", "1": "G", "2": "B"} and dj["file_ending"] == ".png"
    for sid in ws.sample_ids():
        head = ws.current_mask(sid)
        labels = read_png(out / "labelsTr" / f"{sid}.png")
        np.testing.assert_array_equal(labels, np.where(head == 4, 3, head))
        rgb = read_png(out / "imagesTr" / f"{sid}_0000.png")
        np.testing.assert_array_equal(rgb, ws.image(sid).array[..., :3])  # alpha dropped, pixels kept
    entry = manifest(out)["samples"][0]
    assert entry["exported"]["images"][0]["how"] == "converted"
    assert manifest(out)["nnunet_label_ids"] == {"1": 1, "2": 2, "4": 3}


def test_multilabel_is_one_file_per_class_in_folders(uw_ws, tmp_path):
    ws, out = uw_ws, tmp_path / "folders"
    export_dataset(ws, out, "folders")
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(UW_CLASSES)
    for sid in ws.sample_ids():
        channels = ws.current_mask(sid)
        for k, name in enumerate(UW_CLASSES):
            np.testing.assert_array_equal(read_png(out / "masks" / name / f"{sid}.png"), channels[..., k])
        # 16-bit grey slices are copied as they are
        assert (out / "images" / f"{sid}.png").read_bytes() == ws.sample(sid).image_path.read_bytes()
    entry = next(s for s in manifest(out)["samples"] if s["id"] == "case3_day0_slice_0004")
    assert [m["class"] for m in entry["exported"]["masks"]] == list(UW_CLASSES)


def test_multilabel_nnunet_uses_regions_that_decode_to_the_channels(uw_ws, tmp_path):
    ws, out = uw_ws, tmp_path / "nn"
    export_dataset(ws, out, "nnunet")
    dj = json.loads((out / "dataset.json").read_text())
    assert list(dj["labels"]) == ["background", *UW_CLASSES]  # order kept: regions_class_order refers to it
    assert dj["labels"]["large_bowel"] == [1, 3, 5, 7] and dj["labels"]["stomach"] == [4, 5, 6, 7]
    assert dj["regions_class_order"] == [1, 2, 4] and dj["channel_names"] == {"0": "image"}
    overlap = 0
    for sid in ws.sample_ids():
        labels = read_png(out / "labelsTr" / f"{sid}.png")
        channels = ws.current_mask(sid)
        np.testing.assert_array_equal(region_decode(labels, 3), channels)
        for k, name in enumerate(UW_CLASSES):  # each class is exactly the union of its region's values
            np.testing.assert_array_equal(np.isin(labels, dj["labels"][name]), channels[..., k])
        overlap += int((channels.sum(-1) > 1).sum())
        assert read_png(out / "imagesTr" / f"{sid}_0000.png").dtype == np.uint16
    assert overlap > 0  # the set really has overlapping classes


def test_multilabel_monai_label_lists_stack_into_channels(uw_ws, tmp_path):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    ws, out = uw_ws, tmp_path / "mo"
    export_dataset(ws, out, "monai")
    items = load_decathlon_datalist(out / "datalist.json")
    assert len(items) == 4 and all(len(i["label"]) == 3 for i in items)
    load = LoadImaged(keys=["image", "label"], image_only=True, ensure_channel_first=True)
    for item in items:
        sid = Path(item["image"]).stem
        data = load(item)
        label = np.asarray(data["label"]).transpose(0, 2, 1)  # MONAI's PIL reader gives (C, W, H)
        np.testing.assert_array_equal(label, np.moveaxis(ws.current_mask(sid), -1, 0))


def test_jpeg_sources_are_copied_to_folders_and_converted_for_nnunet(tmp_path):
    with Workspace.create(tmp_path / "ws", make_frames(tmp_path / "ds", suffix=".jpg")) as ws:
        export_dataset(ws, tmp_path / "folders", "folders")
        export_dataset(ws, tmp_path / "nn", "nnunet")
        for sid in ws.sample_ids():
            src = ws.sample(sid).image_path
            assert (tmp_path / "folders" / "images" / f"{sid}.jpg").read_bytes() == src.read_bytes()
            png = tmp_path / "nn" / "imagesTr" / f"{sid}_0000.png"
            np.testing.assert_array_equal(read_png(png), ws.image(sid).array)  # lossless PNG of the decoded pixels
        assert json.loads((tmp_path / "nn" / "dataset.json").read_text())["file_ending"] == ".png"


def test_mask_scale_255_is_for_viewing_only(tmp_path):
    with Workspace.create(tmp_path / "ws", make_frames(tmp_path / "ds")) as ws:
        export_dataset(ws, tmp_path / "view", "folders", mask_scale=255)
        mask = read_png(tmp_path / "view" / "masks" / "1.png")
        np.testing.assert_array_equal(mask, ws.current_mask("1") * 255)
        assert manifest(tmp_path / "view")["options"]["mask_scale"] == 255
