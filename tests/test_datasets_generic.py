"""images/ + masks/ layouts (Kvasir-SEG, CVC-ClinicDB PNG and TIFF): detection, pairing, problems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.datasets import (
    PROBLEM_KINDS,
    ClassMap,
    detect_layout,
    is_dataset_folder,
    open_dataset,
)
from medseg.datasets import dataset as ds
from medseg.errors import ReadError

H, W = 32, 40


def frame(seed: int) -> np.ndarray:
    """A smooth colourful RGB frame, different for each seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = rng.uniform(40, 200, size=3)
    ripple = 30 * np.sin(x / rng.uniform(3, 8) + rng.uniform(0, 6))[..., None]
    return np.clip(base + ripple + (y[..., None] * rng.uniform(-2, 2, 3)), 0, 255).astype(np.uint8)


def disc(value: int = 255, shape=(H, W), centre=(16, 20), radius=8) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (((y - centre[0]) ** 2 + (x - centre[1]) ** 2) <= radius**2).astype(np.uint8) * value


def save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def make_cvc(root: Path, n: int = 6, image_dir="images", mask_dir="masks", suffix=".png", mask_name="{}") -> Path:
    for i in range(1, n + 1):
        save(root / image_dir / f"{i}{suffix}", frame(i))
        save(root / mask_dir / (mask_name.format(i) + suffix), disc(centre=(10 + i, 20)))
    return root


# ------------------------------------------------------------------ detection
def test_cvc_style_png_folder_is_indexed(tmp_path):
    root = make_cvc(tmp_path / "cvc")
    assert detect_layout(root) == "images_masks"
    assert is_dataset_folder(root)
    d = open_dataset(root)
    assert d.layout == "images_masks" and d.root == root
    assert [s.id for s in d] == ["1", "2", "3", "4", "5", "6"]  # numeric order
    assert d.problems == []
    assert d.classmap.task == "binary" and d.classmap.names == ["foreground"]
    s = d.by_id("3")
    assert s.image_path == root / "images" / "3.png"
    assert s.mask_paths == {1: root / "masks" / "3.png"}
    mask = s.load_mask()
    assert mask.shape == (H, W) and set(np.unique(mask)) == {0, 1}
    assert mask.sum() == (disc(centre=(13, 20)) > 0).sum()
    image = s.load_image()
    assert image.array.shape == (H, W, 3) and image.rgb
    np.testing.assert_array_equal(image.array, frame(3))


def test_kvasir_style_jpeg_masks_are_binary_and_their_noise_is_reported(tmp_path):
    stems = ["cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4", "cju0roawvklrq0799vmjorwfv"]
    for k, stem in enumerate(stems):
        save(tmp_path / "images" / f"{stem}.jpg", frame(k), quality=90)
        # Kvasir stores its masks as RGB JPEGs: edges pick up grey levels
        save(tmp_path / "masks" / f"{stem}.jpg", np.repeat(disc()[..., None], 3, axis=2), quality=75)
    d = open_dataset(tmp_path)
    assert d.layout == "images_masks" and len(d) == 3 and d.problems == []
    assert d.classmap.task == "binary"
    assert sorted(s.group for s in d) == sorted(stems)  # no integer stems: one group per stem
    mask, report = d.by_id(stems[0]).load_mask(return_report=True)
    assert set(np.unique(mask)) == {0, 1}
    assert report.n_ambiguous > 0 and report.grey_levels  # JPEG noise is not hidden
    assert abs(int(mask.sum()) - int((disc() > 0).sum())) < 20


@pytest.mark.parametrize(
    "image_dir, mask_dir, mask_name",
    [
        ("Image", "Labels", "{}_seg"),
        ("IMGS", "GroundTruth", "{}_mask"),
        ("images", "mask", "{}-label"),
    ],
)
def test_folder_name_and_mask_suffix_variants(tmp_path, image_dir, mask_dir, mask_name):
    root = make_cvc(tmp_path, n=3, image_dir=image_dir, mask_dir=mask_dir, mask_name=mask_name)
    assert detect_layout(root) == "images_masks"
    d = open_dataset(root)
    assert len(d) == 3 and d.problems == []
    assert d.by_id("2").mask_paths[1].name == mask_name.format(2) + ".png"


def test_cvc_original_tiff_folders(tmp_path):
    root = make_cvc(tmp_path, n=4, image_dir="Original", mask_dir="Ground Truth", suffix=".tif")
    assert detect_layout(root) == "cvc_original"
    d = open_dataset(root)
    assert d.layout == "cvc_original" and len(d) == 4 and d.problems == []
    s = d.by_id("4")
    assert s.image_path.suffix == ".tif"
    np.testing.assert_array_equal(s.load_image().array, frame(4))
    assert s.load_mask().sum() == (disc(centre=(14, 20)) > 0).sum()


def test_single_subfolder_is_looked_into(tmp_path):
    make_cvc(tmp_path / "Kvasir-SEG", n=2)
    assert detect_layout(tmp_path) == "images_masks"
    d = open_dataset(tmp_path)
    assert d.root == tmp_path / "Kvasir-SEG" and len(d) == 2


def test_small_integer_masks_give_a_multiclass_map(tmp_path):
    for i in range(1, 4):
        save(tmp_path / "images" / f"{i}.png", frame(i))
        ids = disc(1) + disc(1, centre=(16, 20), radius=4)  # 0 background, 1 ring, 2 core
        save(tmp_path / "masks" / f"{i}.png", ids.astype(np.uint8))
    d = open_dataset(tmp_path)
    assert d.classmap.task == "multiclass" and d.classmap.ids == [1, 2]
    assert set(np.unique(d.samples[0].load_mask())) == {0, 1, 2}


def test_user_classmap_replaces_the_inferred_one(tmp_path):
    make_cvc(tmp_path, n=2)
    d = open_dataset(tmp_path, classmap=ClassMap.binary("polyp"))
    assert d.classmap.names == ["polyp"]
    assert set(np.unique(d.samples[0].load_mask())) == {0, 1}


# ------------------------------------------------------------------ problems
def test_every_problem_is_reported_and_the_rest_indexed(tmp_path):
    root = make_cvc(tmp_path, n=6)
    (root / "images" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # corrupt header
    save(root / "masks" / "7.png", disc())
    save(root / "images" / "8.png", frame(8))  # no mask
    save(root / "masks" / "9.png", disc())  # no image
    save(root / "images" / "10.png", frame(10))
    save(root / "masks" / "10.png", disc(shape=(H - 2, W)))  # size mismatch
    save(root / "images" / "11.png", frame(11))
    save(root / "images" / "11.jpg", frame(11))  # duplicate stem
    save(root / "masks" / "11.png", disc())
    (root / "images" / "notes.txt").write_text("not an image")  # unsupported
    (root / "masks" / ".DS_Store").write_bytes(b"\0")  # ignored junk

    d = open_dataset(root)
    assert [s.id for s in d] == ["1", "2", "3", "4", "5", "6"]
    got = {(p.path.name, p.kind) for p in d.problems}
    assert got == {
        ("7.png", ds.UNREADABLE),
        ("8.png", ds.IMAGE_WITHOUT_MASK),
        ("9.png", ds.MASK_WITHOUT_IMAGE),
        ("10.png", ds.SIZE_MISMATCH),
        ("11.png", ds.DUPLICATE_STEM),
        ("11.jpg", ds.DUPLICATE_STEM),
        ("notes.txt", ds.UNSUPPORTED_FILE),
    }
    by_name = {p.path.name: p for p in d.problems}
    assert by_name["7.png"].path.parent.name == "images"
    assert "30x40" in by_name["10.png"].message and "32x40" in by_name["10.png"].message
    assert "11.jpg" in by_name["11.png"].message
    summary = d.to_dict()
    json.dumps(summary)
    assert summary["n_samples"] == 6
    assert summary["problems_by_kind"][ds.DUPLICATE_STEM] == 2
    assert all(p.kind in PROBLEM_KINDS for p in d.problems)


@pytest.mark.parametrize("case", ["NaN", "inf", "-inf", "all NaN"])
def test_float_tiff_mask_with_nan_or_inf_is_named_by_index_qc_and_workspace(tmp_path, case):
    # int(v) of every mask value while inferring the class map crashed index, qc and workspace create
    import tifffile

    from medseg.qc import qc
    from medseg.workspace import Workspace

    root = make_cvc(tmp_path / "data", n=3)
    (root / "masks" / "3.png").unlink()
    fg = disc(1).astype(np.float32)
    bad = {
        "NaN": np.where(fg > 0, np.nan, 0),
        "inf": np.where(fg > 0, np.inf, 0),
        "-inf": np.where(fg > 0, -np.inf, 0),
        "all NaN": np.full(fg.shape, np.nan),
    }[case]
    tifffile.imwrite(root / "masks" / "3.tif", bad.astype(np.float32))
    d = open_dataset(root)
    assert [s.id for s in d] == ["1", "2", "3"] and d.classmap.task == "binary"
    with pytest.raises(ReadError, match=r"3\.tif: mask holds NaN or infinite values"):
        d.by_id("3").load_mask()
    report = qc(d, workers=1)
    assert any(f.check == "unreadable" and f.path.endswith("3.tif") for f in report.findings)
    with Workspace.create(tmp_path / "ws", root) as ws:
        assert ws.sample_ids() == ["1", "2"]
        (finding,) = ws.findings(source="index")
        assert finding.path.endswith("3.tif") and "NaN or infinite" in finding.message


def test_fractional_float_masks_are_not_class_ids(tmp_path):
    import tifffile

    root = make_cvc(tmp_path, n=2)
    for i, value in ((1, 0.5), (2, 2.5)):
        (root / "masks" / f"{i}.png").unlink()
        tifffile.imwrite(root / "masks" / f"{i}.tif", disc(1).astype(np.float32) * value)
    assert open_dataset(root).classmap.task == "binary"


def test_header_claiming_a_huge_image_is_a_problem_naming_size_and_limit(tmp_path):
    # Pillow's DecompressionBombError escaped from indexing; the size is checked from the header instead
    from _fuzz_bytes import png_bytes, tiff_claiming

    from medseg.io.limits import MAX_PIXELS

    root = make_cvc(tmp_path, n=3)
    (root / "images" / "2.png").write_bytes(png_bytes(None, size=(20000, 20000)))
    (root / "masks" / "3.png").write_bytes(png_bytes(None, size=(12000, 12000)))  # under Pillow's own limit
    (root / "masks" / "1.png").unlink()
    (root / "masks" / "1.tif").write_bytes(tiff_claiming(60000, 60000))
    d = open_dataset(root)
    assert len(d) == 0
    by_name = {p.path.name: p for p in d.problems}
    assert set(by_name) == {"2.png", "3.png", "1.tif"}
    assert all(p.kind == ds.UNREADABLE for p in d.problems)
    assert f"{MAX_PIXELS:,}" in by_name["3.png"].message and "12000 x 12000" in by_name["3.png"].message
    assert "60000 x 60000" in by_name["1.tif"].message
    assert "20000 x 20000" in by_name["2.png"].message and "decompression bomb" in by_name["2.png"].message


def test_any_tifffile_failure_on_a_damaged_header_is_a_problem(tmp_path, monkeypatch):
    # 16 flipped bits gave an ImageLength tifffile compares as a tuple: its TypeError escaped indexing
    import tifffile

    def damaged(*args, **kwargs):
        raise TypeError("'<' not supported between instances of 'tuple' and 'int'")

    root = make_cvc(tmp_path, n=2)
    (root / "images" / "2.png").unlink()
    (root / "images" / "2.tif").write_bytes(b"II*\x00" + bytes(range(60)))  # Pillow cannot open it either
    monkeypatch.setattr(tifffile, "TiffFile", damaged)
    d = open_dataset(root)
    (problem,) = d.problems
    assert problem.path.name == "2.tif" and problem.kind == ds.UNREADABLE
    assert "not a readable TIFF header (TypeError" in problem.message


def test_problem_kinds_are_checked():
    with pytest.raises(ValueError, match="unknown problem kind"):
        ds.Problem("x.png", "weird", "?")


def test_folder_of_only_corrupt_pairs_opens_with_problems(tmp_path):
    (tmp_path / "masks").mkdir()
    for i in (1, 2):
        save(tmp_path / "images" / f"{i}.png", frame(i))
        (tmp_path / "masks" / f"{i}.png").write_bytes(b"")
    d = open_dataset(tmp_path)
    assert len(d) == 0
    assert [p.kind for p in d.problems] == [ds.UNREADABLE, ds.UNREADABLE]
    assert "empty" in d.problems[0].message


# ------------------------------------------------------------------ not a dataset
def test_empty_folder_raises_read_error_naming_it(tmp_path):
    with pytest.raises(ReadError) as e:
        open_dataset(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert "empty" in str(e.value) and "images/ + masks/" in str(e.value)
    assert detect_layout(tmp_path) is None and not is_dataset_folder(tmp_path)


def test_folder_of_junk_raises_read_error_listing_what_is_there(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    save(tmp_path / "picture.png", frame(0))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "list.csv").write_text("a,b")
    (tmp_path / "masks").mkdir()
    with pytest.raises(ReadError, match="readme.txt") as e:
        open_dataset(tmp_path)
    assert "CXR_png" in str(e.value) and "train.csv" in str(e.value)
    assert not is_dataset_folder(tmp_path)


def test_missing_folder_and_file_paths(tmp_path):
    with pytest.raises(ReadError, match="no such folder"):
        open_dataset(tmp_path / "absent")
    f = save(tmp_path / "a.png", frame(0))
    with pytest.raises(ReadError, match="is a file"):
        open_dataset(f)


@pytest.mark.parametrize("path", ["", "\0bad", "/proc/definitely/not/here", 12, None])
def test_is_dataset_folder_never_raises(path, tmp_path):
    assert is_dataset_folder(path) is False
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert is_dataset_folder(link) is False


def test_bad_arguments(tmp_path):
    make_cvc(tmp_path, n=2)
    with pytest.raises(ValueError, match="unknown layout"):
        open_dataset(tmp_path, layout="coco")
    with pytest.raises(ValueError, match="group_by"):
        open_dataset(tmp_path, group_by="patient")
    with pytest.raises(ValueError, match="group_pattern"):
        open_dataset(tmp_path, group_by="pattern")


def test_group_by_choices(tmp_path):
    root = make_cvc(tmp_path / "a", n=4)
    for i in (1, 2):  # frames 1, 2 and 3, 4: two pans over two scenes
        save(root / "images" / f"{i}.png", np.roll(frame(1), i, axis=1))
        save(root / "images" / f"{i + 2}.png", np.roll(frame(2), i, axis=1))
    assert [s.group for s in open_dataset(root)] == ["1-2", "1-2", "3-4", "3-4"]  # auto: frames
    assert [s.group for s in open_dataset(root, group_by="stem")] == ["1", "2", "3", "4"]
    save(tmp_path / "b" / "images" / "x1.png", frame(1))
    save(tmp_path / "b" / "masks" / "x1.png", disc())
    with pytest.raises(ValueError, match="integer file stems"):
        open_dataset(tmp_path / "b", group_by="frames")


def test_forcing_a_layout_the_folder_does_not_hold(tmp_path):
    make_cvc(tmp_path, n=2)
    assert len(open_dataset(tmp_path, layout="images_masks")) == 2
    with pytest.raises(ReadError, match="ManualMask"):
        open_dataset(tmp_path, layout="montgomery")
    with pytest.raises(ReadError, match="train.csv"):
        open_dataset(tmp_path, layout="uwmadison")


def test_by_id_names_the_missing_sample(tmp_path):
    d = open_dataset(make_cvc(tmp_path, n=2))
    with pytest.raises(KeyError, match="'9'"):
        d.by_id("9")
