"""The npe2 reader: files, masks and dataset folders opened through napari."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ReadError
from napari_medseg._reader import napari_get_reader

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"


def _rgb(rng, shape=(24, 32)) -> np.ndarray:
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def _disc(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8) * 255


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """images/ + masks/ with 6 small RGB PNG pairs and 0/255 masks, like Kvasir-SEG or CVC-ClinicDB."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tiny-polyps"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, 7):
        Image.fromarray(_rgb(rng)).save(root / "images" / f"{i}.png")
        Image.fromarray(_disc((24, 32), 12, 4 + 4 * i, 3 + i % 3)).save(root / "masks" / f"{i}.png")
    return root


def test_dicom_file_layer(make_napari_viewer, ct_small):
    import pydicom

    viewer = make_napari_viewer()
    layers = viewer.open(ct_small, plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    ds = pydicom.dcmread(ct_small)
    assert layer._type_string == "image"
    assert layer.name == "CT_small"
    np.testing.assert_allclose(layer.scale, [float(v) for v in ds.PixelSpacing])
    meta = layer.metadata
    assert meta["source"] == str(ct_small)
    assert meta["modality"] == "CT"
    assert meta["study_uid"] == ds.StudyInstanceUID and meta["series_uid"] == ds.SeriesInstanceUID
    assert meta["sop_uids"] == [ds.SOPInstanceUID]
    assert meta["medseg"]["reader"] == PLUGIN
    # HU, not stored values: air in the corners is about -1000 after RescaleIntercept
    assert layer.data.min() < -500
    center, width = meta["window_presets"][next(iter(meta["window_presets"]))]
    assert tuple(layer.contrast_limits) == pytest.approx((center - width / 2, center + width / 2))


def test_nifti_volume_layer(make_napari_viewer, anatomical_nii):
    import nibabel

    viewer = make_napari_viewer()
    (layer,) = viewer.open(anatomical_nii, plugin=PLUGIN)
    assert layer.data.ndim == 3
    assert sorted(layer.data.shape) == sorted(nibabel.load(anatomical_nii).shape)
    zooms = nibabel.load(anatomical_nii).header.get_zooms()[:3]
    assert sorted(layer.scale) == pytest.approx(sorted(zooms))
    assert layer.name == "anatomical"
    assert layer.metadata["format"] == "nifti"


def test_rgb_png_layer(make_napari_viewer, tmp_path):
    path = tmp_path / "frame.png"
    frame = _rgb(np.random.default_rng(1))
    Image.fromarray(frame).save(path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert layer.rgb is True
    np.testing.assert_array_equal(layer.data, frame)
    assert layer.metadata["medseg"]["spacing_known"] is False


def test_mask_file_becomes_binary_labels(make_napari_viewer, tmp_path):
    """A 0/255 mask with grey noise, recognised by its _mask suffix, is binarised by the engine's rule."""
    mask = _disc((20, 20), 10, 10, 5)
    mask[0, :3] = (8, 40, 200)  # noise: two levels go to background, one to foreground
    path = tmp_path / "case1_mask.png"
    Image.fromarray(mask).save(path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert layer._type_string == "labels"
    assert set(np.unique(layer.data)) == {0, 1}
    assert layer.data[0, 0] == 0 and layer.data[0, 2] == 1
    meta = layer.metadata["medseg"]
    assert meta["binarise"]["n_changed"] == 3
    assert meta["classmap"]["task"] == "binary"


def test_palette_mask_keeps_ids_and_colours(tmp_path):
    ids = np.zeros((8, 8), np.uint8)
    ids[:4, :4], ids[4:, 4:] = 1, 3
    img = Image.fromarray(ids, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    (tmp_path / "labels").mkdir()
    path = tmp_path / "labels" / "slice.png"
    img.save(path)
    ((data, kwargs, kind),) = napari_get_reader(str(path))(str(path))
    assert kind == "labels"
    np.testing.assert_array_equal(data, ids)
    assert kwargs["colormap"][3] == pytest.approx((0, 0, 1, 1))
    assert kwargs["metadata"]["medseg"]["mask_encoding"] == "palette indices"


def test_dataset_folder_layers(make_napari_viewer, dataset_dir):
    viewer = make_napari_viewer()
    layers = viewer.open(dataset_dir, plugin=PLUGIN)
    images, masks = layers
    assert images.name == "tiny-polyps images" and masks.name == "tiny-polyps masks"
    assert images.rgb and images.data.shape == (6, 24, 32, 3)
    assert masks._type_string == "labels" and masks.data.shape == (6, 24, 32)
    assert set(np.unique(np.asarray(masks.data))) == {0, 1}
    expected = np.asarray(Image.open(dataset_dir / "images" / "4.png"))
    np.testing.assert_array_equal(np.asarray(images.data[3]), expected)
    meta = images.metadata["medseg"]
    assert meta["sample_ids"] == [str(i) for i in range(1, 7)]
    assert meta["problems"] == [] and meta["padded"] is False
    assert masks.metadata["medseg"]["classmap"]["task"] == "binary"


def test_dataset_mixed_sizes_are_padded_and_problems_listed(dataset_dir):
    rng = np.random.default_rng(2)
    Image.fromarray(_rgb(rng, (30, 20))).save(dataset_dir / "images" / "7.png")
    Image.fromarray(_disc((30, 20), 15, 10, 4)).save(dataset_dir / "masks" / "7.png")
    Image.fromarray(_rgb(rng)).save(dataset_dir / "images" / "8.png")  # no mask: a problem
    (images, ikw, _), (masks, _mkw, _) = napari_get_reader(str(dataset_dir))(str(dataset_dir))
    assert images.shape == (7, 30, 32, 3) and masks.shape == (7, 30, 32)
    meta = ikw["metadata"]["medseg"]
    assert meta["padded"] is True and meta["sample_shapes"][6] == [30, 20]
    assert [p["kind"] for p in meta["problems"]] == ["image_without_mask"]
    frame = np.asarray(masks[6])
    assert frame[:, 20:].max() == 0 and frame[15, 10] == 1


def test_cvc_clinicdb_is_a_lazy_stack(monkeypatch, cvc_dir):
    from medseg.datasets import Sample

    calls = []
    original = Sample.load_image
    monkeypatch.setattr(Sample, "load_image", lambda self: calls.append(self.id) or original(self))
    reader = napari_get_reader(str(cvc_dir))
    (images, ikw, _), (masks, _mkw, kind) = reader(str(cvc_dir))
    assert images.shape == (612, 288, 384, 3) and masks.shape == (612, 288, 384)
    assert kind == "labels" and len(ikw["metadata"]["medseg"]["sample_ids"]) == 612
    assert len(calls) <= 1, "opening must not decode the frames"
    assert np.asarray(masks[100]).max() == 1 and len(calls) <= 1
    assert np.asarray(images[100]).shape == (288, 384, 3) and calls[-1] == "101"


def test_get_reader_declines_without_raising(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    for p in (tmp_path / "notes.txt", tmp_path / "empty", tmp_path / "missing.png", tmp_path):
        assert napari_get_reader(str(p)) is None
    assert napari_get_reader([str(tmp_path / "notes.txt")]) is None


def test_corrupt_png_raises_read_error_naming_file(tmp_path):
    path = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.fromarray(_rgb(np.random.default_rng(3))).save(good)
    path.write_bytes(good.read_bytes()[:60])  # truncated: a PNG header, then nothing
    reader = napari_get_reader(str(path))  # taken by suffix and magic; must not raise here
    assert reader is not None
    with pytest.raises(ReadError, match="broken.png"):
        reader(str(path))


def test_list_of_paths(tmp_path):
    rng = np.random.default_rng(4)
    paths = [str(tmp_path / f"{i}.png") for i in range(2)]
    for p in paths:
        Image.fromarray(_rgb(rng)).save(p)
    layers = napari_get_reader(paths)(paths)
    assert [kw["name"] for _, kw, _ in layers] == ["0", "1"]
    assert napari_get_reader([*paths, str(tmp_path / "missing.txt")]) is None


def test_dicom_series_folder_is_one_volume(make_napari_viewer, ct_small, tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "ct-series"
    folder.mkdir()
    series = generate_uid()
    for k, z in enumerate([0.0, 2.5, 5.0]):
        ds = pydicom.dcmread(ct_small)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z]
        ds.save_as(folder / f"slice{k}")  # extension-less, as scanners write them
    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin=PLUGIN)
    assert layer.name == "ct-series" and layer.data.shape == (3, 128, 128)
    assert list(layer.scale) == pytest.approx([2.5, 0.661468, 0.661468])
    assert layer.metadata["series_uid"] == series and len(layer.metadata["sop_uids"]) == 3


def test_multilabel_dataset_gives_one_labels_layer_per_class(tmp_path):
    """UW-Madison layout: RLE masks of overlapping organs become one binary Labels layer per class."""
    import csv

    from medseg.io.rle import rle_encode

    scans = tmp_path / "train" / "case1" / "case1_day0" / "scans"
    scans.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for n in (1, 2):
        Image.fromarray(rng.integers(0, 4000, (32, 40)).astype(np.uint16)).save(
            scans / f"slice_{n:04d}_40_32_1.50_1.50.png"
        )
    stomach, bowel = np.zeros((32, 40), np.uint8), np.zeros((32, 40), np.uint8)
    stomach[2:12, 3:20], bowel[8:20, 10:30] = 1, 1  # they overlap
    with open(tmp_path / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "class", "segmentation"])
        for n in (1, 2):
            w.writerow([f"case1_day0_slice_{n:04d}", "stomach", rle_encode(stomach) if n == 1 else ""])
            w.writerow([f"case1_day0_slice_{n:04d}", "small_bowel", rle_encode(bowel) if n == 1 else ""])
    layers = napari_get_reader(str(tmp_path))(str(tmp_path))
    (images, ikw, _), *labels = layers
    assert images.shape == (2, 32, 40) and images.dtype == np.uint16 and ikw["rgb"] is False
    assert ikw["scale"] == pytest.approx((1.0, 1.5, 1.5))
    lo, hi = ikw["contrast_limits"]
    assert 0 <= lo < hi <= 4000  # a percentile window, not the uint16 range
    by_name = {kw["name"].rsplit(" ", 1)[-1]: np.asarray(data) for data, kw, kind in labels}
    assert set(by_name) == {"stomach", "small_bowel"}
    np.testing.assert_array_equal(by_name["stomach"][0], stomach)
    np.testing.assert_array_equal(by_name["small_bowel"][0], bowel)
    assert by_name["stomach"][1].max() == 0


def test_nifti_and_ground_truth_masks(tmp_path):
    """Organ ids in a NIfTI _seg file stay class ids with the volume's spacing; a file in
    'Ground Truth/' (CVC-ClinicDB's original folder name) is recognised as a mask by its folder."""
    import nibabel

    ids = np.zeros((6, 8, 4), np.uint8)
    ids[1:3, 2:5, 1], ids[3:5, 4:7, 2] = 1, 2
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nibabel.save(nibabel.Nifti1Image(ids, affine), tmp_path / "case1_seg.nii.gz")
    nibabel.save(nibabel.Nifti1Image(ids.astype(np.int16) * 100, affine), tmp_path / "case1.nii.gz")
    ((image, ikw, ikind),) = napari_get_reader(str(tmp_path / "case1.nii.gz"))(str(tmp_path / "case1.nii.gz"))
    ((labels, lkw, lkind),) = napari_get_reader(str(tmp_path / "case1_seg.nii.gz"))(str(tmp_path / "case1_seg.nii.gz"))
    assert (ikind, lkind) == ("image", "labels")
    assert lkw["name"] == "case1_seg" and lkw["scale"] == pytest.approx(ikw["scale"])
    np.testing.assert_array_equal(labels, image // 100)
    assert lkw["metadata"]["medseg"]["mask_encoding"] == "integer ids"

    gt = tmp_path / "Ground Truth"
    gt.mkdir()
    Image.fromarray(_disc((16, 16), 8, 8, 4)).save(gt / "1.tif")
    ((data, _kw, kind),) = napari_get_reader(str(gt / "1.tif"))(str(gt / "1.tif"))
    assert kind == "labels" and set(np.unique(data)) == {0, 1}
