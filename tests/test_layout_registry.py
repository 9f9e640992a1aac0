"""The dataset layout registry: one list, detection in its order, a layout added from outside the package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _export_data import make_palette, make_uw
from _layout_isic import INPUT, ISIC, TRUTH
from _review_data import copy_cvc
from _volume_data import make_dicom_series_dataset, make_nnunet3d, make_volume_folders
from _volume_layouts import make_msd
from PIL import Image

from medseg.datasets import (
    Layout,
    detect_layout,
    get_layout,
    is_dataset_folder,
    layout_names,
    layouts,
    open_dataset,
    register_layout,
    unregister_layout,
)
from medseg.datasets.registry import source_data
from medseg.destinations import check_destination
from medseg.errors import DatasetError, DestinationError, MedsegError, UnknownLayoutError

FRAMES = (1, 2, 3, 120)


def _cvc_pairs(cvc_dir: Path):
    for k in FRAMES:
        yield k, Image.open(cvc_dir / "images" / f"{k}.png"), Image.open(cvc_dir / "masks" / f"{k}.png")


def make_images_masks(root: Path, cvc_dir: Path) -> Path:
    return copy_cvc(cvc_dir, root, frames=FRAMES)


def make_cvc_original(root: Path, cvc_dir: Path) -> Path:
    """Real CVC-ClinicDB frames as the original release keeps them: Original/ + Ground Truth/ TIFFs."""
    (root / "Original").mkdir(parents=True)
    (root / "Ground Truth").mkdir()
    for k, image, mask in _cvc_pairs(cvc_dir):
        image.save(root / "Original" / f"{k}.tif")
        mask.save(root / "Ground Truth" / f"{k}.tif")
    return root


def make_nnunet(root: Path, cvc_dir: Path) -> Path:
    """Real frames as nnU-Net v2 raw: imagesTr/<case>_0000.png, labelsTr/<case>.png holding 0/1."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for k, image, mask in _cvc_pairs(cvc_dir):
        image.save(root / "imagesTr" / f"cvc_{k:03d}_0000.png")
        Image.fromarray((np.asarray(mask) > 127).astype(np.uint8)).save(root / "labelsTr" / f"cvc_{k:03d}.png")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "R", "1": "G", "2": "B"},
                "labels": {"background": 0, "polyp": 1},
                "numTraining": len(FRAMES),
                "file_ending": ".png",
            }
        )
    )
    return root


def make_montgomery(root: Path, cvc_dir: Path) -> Path:
    """CXR_png/ + ManualMask/leftMask|rightMask/, one lung per half of a grey image."""
    for d in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (root / d).mkdir(parents=True)
    y, x = np.mgrid[0:48, 0:40]
    for k, stem in enumerate(("MCUCXR_0001_0", "MCUCXR_0002_1")):
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (48, 40), dtype=np.uint8)).save(
            root / "CXR_png" / f"{stem}.png"
        )
        for side, cx in (("leftMask", 29), ("rightMask", 11)):
            lung = (((y - 24) / 16) ** 2 + ((x - cx) / 7) ** 2 <= 1).astype(np.uint8) * 255
            Image.fromarray(lung).save(root / "ManualMask" / side / f"{stem}.png")
    return root


def make_isic(root: Path, cvc_dir: Path) -> Path:
    """Real frames under the ISIC 2018 names: JPEG inputs, ``_segmentation.png`` ground truth."""
    (root / INPUT).mkdir(parents=True)
    (root / TRUTH).mkdir()
    for k, image, mask in _cvc_pairs(cvc_dir):
        image.convert("RGB").save(root / INPUT / f"ISIC_{k:07d}.jpg", quality=95)
        mask.save(root / TRUTH / f"ISIC_{k:07d}_segmentation.png")
    return root


BUILTIN_SAMPLES = {
    "images_masks": make_images_masks,
    "cvc_original": make_cvc_original,
    "palette": lambda root, cvc_dir: make_palette(root),
    "nnunet": make_nnunet,
    "montgomery": make_montgomery,
    "uwmadison": lambda root, cvc_dir: make_uw(root),
    "msd": lambda root, cvc_dir: make_msd(root),
    "nnunet3d": lambda root, cvc_dir: make_nnunet3d(root),
    "volume_folders": lambda root, cvc_dir: make_volume_folders(root),
    "dicom_series": lambda root, cvc_dir: make_dicom_series_dataset(root, n_cases=2),
}


@pytest.fixture
def isic():
    register_layout(ISIC)
    try:
        yield ISIC
    finally:
        unregister_layout(ISIC.name)


@pytest.fixture(scope="module")
def samples(cvc_dir, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    built = {name: make(base / name, cvc_dir) for name, make in BUILTIN_SAMPLES.items()}
    built["isic"] = make_isic(base / "isic", cvc_dir)
    return built


def test_every_registered_layout_has_a_sample_here():
    # a new layout joins the matrix below: add its sample to BUILTIN_SAMPLES
    assert set(layout_names()) == set(BUILTIN_SAMPLES)
    assert [lay.name for lay in layouts()] == list(layout_names())
    for lay in layouts():
        assert lay.description.strip() and "\n" not in lay.description


def test_each_layout_detects_its_own_sample_and_no_other(samples, isic, tmp_path):
    assert layout_names()[-1] == "isic"
    for lay in layouts():
        taken = {name for name, root in samples.items() if lay.detect(root)}
        assert taken == {lay.name}, (lay.name, taken)
    for name, root in samples.items():
        assert detect_layout(root) == name
        archive = tmp_path / f"{name}-unzipped"  # an archive's single top folder is looked into
        archive.mkdir()
        (archive / name).symlink_to(root, target_is_directory=True)
        assert detect_layout(archive) == name and not get_layout(name).detect(archive)


def test_each_sample_opens_with_samples_and_no_problem(samples, isic):
    for name, root in samples.items():
        ds = open_dataset(root)
        assert ds.layout == name and len(ds) >= 2 and not ds.problems, (name, ds.problems)
        mask = ds.samples[0].load_mask()
        assert mask.any(), name


def test_a_registered_layout_is_detected_indexed_and_guarded(samples, cvc_dir, tmp_path):
    root = shutil.copytree(samples["isic"], tmp_path / "ISIC2018")
    assert detect_layout(root) is None and "isic" not in layout_names()
    register_layout(ISIC)
    try:
        assert detect_layout(root) == "isic" and is_dataset_folder(root)
        ds = open_dataset(root)
        assert [s.id for s in ds] == [f"ISIC_{k:07d}" for k in FRAMES]
        first = ds.by_id("ISIC_0000001")
        truth = np.asarray(Image.open(cvc_dir / "masks" / "1.png")) > 127
        assert np.array_equal(first.load_mask().astype(bool), truth)
        assert first.load_image().array.shape == (*truth.shape, 3)
        # forced by name too, from above the archive's top folder
        zipped = tmp_path / "unzipped"
        shutil.copytree(root, zipped / "ISIC2018")
        assert open_dataset(zipped, layout="isic").root == zipped / "ISIC2018"
        # the write guard asks the registry: its ground truth folder is source data
        with pytest.raises(DestinationError, match="ISIC 2018 layout"):
            check_destination(root / TRUTH / "fixed")
        assert check_destination(tmp_path / "ISIC2018-export") == (tmp_path / "ISIC2018-export").resolve()
    finally:
        unregister_layout("isic")
    assert detect_layout(root) is None and "isic" not in layout_names()
    check_destination(root / TRUTH / "fixed")  # no layout claims it any more


def test_every_layout_protects_its_source_folders(samples, isic):
    for name, root in samples.items():
        what, paths = source_data(root)
        assert "layout" in what and paths, name
        for p in paths:
            inside = p / "out" if p.is_dir() else p
            with pytest.raises(DestinationError):
                check_destination(inside, file=not p.is_dir())
        assert check_destination(root.parent / f"{name}-export")


def test_an_unknown_layout_name_is_a_dataset_error_listing_the_names(samples, isic):
    with pytest.raises(UnknownLayoutError) as e:
        open_dataset(samples["nnunet"], layout="nnuent")
    err = e.value
    assert isinstance(err, DatasetError) and isinstance(err, MedsegError) and err.exit_code == 2
    message = str(err)
    assert "unknown layout 'nnuent'" in message and "did you mean 'nnunet'" in message
    assert all(name in message for name in layout_names())  # isic included: the list is the registry's
    assert "Other valid names: " in message  # not "Valid:", which would read as if 'nnunet' were not
    with pytest.raises(UnknownLayoutError):
        get_layout("coco")
    with pytest.raises(DatasetError, match="group_by"):
        open_dataset(samples["nnunet"], group_by="patient")


def test_registering_is_checked(isic):
    with pytest.raises(ValueError, match="already registered"):
        register_layout(ISIC)
    with pytest.raises(TypeError):
        register_layout("isic2")
    with pytest.raises(ValueError, match="identifier"):
        Layout("two words", "x", detect=bool, index=bool, source_data=bool)
    with pytest.raises(ValueError, match="callable"):
        Layout("nothing", "x", detect=None, index=bool, source_data=bool)
    early = Layout(
        "early",
        "a layout detected before nnU-Net",
        detect=lambda root: False,
        index=ISIC.index,
        source_data=lambda root: None,
    )
    register_layout(early, before="nnunet")
    try:
        names = layout_names()
        assert names.index("early") == names.index("nnunet") - 1
    finally:
        unregister_layout("early")
    with pytest.raises(UnknownLayoutError):
        unregister_layout("early")
