"""Mask reading (palette ids survive, colours map exactly), merging per-class files, channels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.draw import disk, ellipse, polygon

from medseg.datasets.classmap import ClassMap
from medseg.errors import MaskError, ReadError, UnsupportedFormatError
from medseg.io.masks import (
    channels_to_ids,
    check_ids,
    classmap_from_palette,
    colour_to_ids,
    ids_to_channels,
    merge_class_masks,
    palette_colours,
    palette_to_ids,
    read_mask,
    stack_class_masks,
)

TISSUE_PALETTE = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}


def tissue_ids(shape=(512, 512)) -> np.ndarray:
    """A 4-class tissue map (background, three tissue types) like the seed's 'P' masks."""
    ids = np.zeros(shape, np.uint8)
    ids[ellipse(200, 220, 150, 120, shape=shape)] = 1
    ids[disk((300, 330), 90, shape=shape)] = 2
    ids[polygon([40, 120, 200], [380, 500, 400], shape=shape)] = 3
    return ids


@pytest.fixture
def palette_png(tmp_path):
    ids = tissue_ids()
    img = Image.fromarray(ids, mode="P")
    pal = [v for i in range(4) for v in TISSUE_PALETTE[i]]
    img.putpalette(pal + [0] * (768 - len(pal)))
    path = tmp_path / "tissue_mask.png"
    img.save(path)
    return path, ids


# ---------------------------------------------------------------- palettes
def test_palette_png_keeps_class_ids(palette_png):
    path, ids = palette_png
    assert Image.open(path).mode == "P"
    got = read_mask(path)
    assert got.dtype == np.uint8 and got.shape == (512, 512)
    assert np.array_equal(got, ids)
    assert set(np.unique(got).tolist()) == {0, 1, 2, 3}
    assert np.array_equal(palette_to_ids(path), ids)
    with Image.open(path) as img:
        assert np.array_equal(palette_to_ids(img), ids)


def test_pitfall_skimage_reads_palette_as_rgb(palette_png):
    """The bug this module exists to avoid: imageio/skimage turn a 'P' mask into colours."""
    from skimage.io import imread

    path, ids = palette_png
    via_skimage = imread(path)
    assert via_skimage.ndim == 3 and via_skimage.shape[-1] in (3, 4)
    assert not np.isin(np.unique(via_skimage), [0, 1, 2, 3]).all()  # 255s: colours, not ids
    assert read_mask(path).ndim == 2 and np.array_equal(read_mask(path), ids)


def test_classmap_from_palette_and_colour_round_trip(palette_png, tmp_path):
    path, ids = palette_png
    assert palette_colours(path) == TISSUE_PALETTE
    cm = classmap_from_palette(path, names=["tumour", "stroma", "necrosis"])
    assert cm.task == "multiclass" and cm.ids == [1, 2, 3]
    assert cm.names == ["tumour", "stroma", "necrosis"] and cm.colour_table() == {
        i: c for i, c in TISSUE_PALETTE.items() if i
    }
    assert classmap_from_palette(path).names == ["class_1", "class_2", "class_3"]
    assert classmap_from_palette(path, names={1: "a", 2: "b", 3: "c"}).id_of("c") == 3
    with pytest.raises(ValueError, match="2 names for 3"):
        classmap_from_palette(path, names=["a", "b"])

    # the same mask saved as colours reads back to the same ids through the class map
    rgb_path = tmp_path / "tissue_rgb.png"
    Image.open(path).convert("RGB").save(rgb_path)
    assert np.array_equal(read_mask(rgb_path, classmap=cm), ids)
    with pytest.raises(MaskError, match=r"tissue_rgb\.png: colour-coded mask with 4 colours.*\(255, 0, 0\) in"):
        read_mask(rgb_path)


def test_palette_to_ids_rejects_non_palette(tmp_path):
    p = tmp_path / "grey.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(p)
    with pytest.raises(MaskError, match=r"grey\.png: mode 'L' is not a palette"):
        palette_to_ids(p)
    with pytest.raises(ValueError, match="not a palette"):
        palette_to_ids(Image.new("RGB", (2, 2)))


# ---------------------------------------------------------------- colours
def test_colour_to_ids_exact_and_unknown_colours():
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[4:] = (0, 0, 255)
    table = {1: (255, 0, 0), 2: (0, 0, 255)}
    ids = colour_to_ids(rgb, table)
    assert ids.dtype == np.uint8 and ids[:2].tolist() == [[1] * 6] * 2 and ids[4:].min() == 2
    assert not ids[2:4].any()
    rgb[3, :5] = (250, 0, 0)  # an anti-aliased / re-saved colour
    rgb[3, 5] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"2 colour\(s\).*\(250, 0, 0\) in 5 px, \(1, 2, 3\) in 1 px") as e:
        colour_to_ids(rgb, table)
    assert not isinstance(e.value, MaskError)
    with pytest.raises(MaskError, match=r"lungs\.png: 2 colour"):
        colour_to_ids(rgb, table, path="lungs.png")


def test_colour_to_ids_alpha_and_table_errors():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    rgba[1, 1] = (9, 9, 9, 0)  # transparent: background whatever its colour
    assert colour_to_ids(rgba, {1: (255, 0, 0)}).tolist() == [[1, 0], [0, 0]]
    with pytest.raises(ValueError, match="share the colour"):
        colour_to_ids(rgba, {1: (255, 0, 0), 2: (255, 0, 0)})
    with pytest.raises(ValueError, match="shape"):
        colour_to_ids(np.zeros((2, 2), np.uint8), {1: (255, 0, 0)})
    cm = ClassMap.from_names(["a"], colours=[(255, 0, 0)])
    assert colour_to_ids(rgba, cm).tolist() == [[1, 0], [0, 0]]


def test_grey_mask_saved_in_colour_reads_as_grey(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    m[disk((32, 32), 20)] = 255
    png = tmp_path / "rgb_grey.png"
    Image.fromarray(np.stack([m] * 3, -1)).save(png)
    assert np.array_equal(read_mask(png), m)
    # JPEG chroma noise: channels differ a little, still a grey mask (read as luma)
    tinted = np.stack([m, (m * 0.96).astype(np.uint8), m], -1)
    jpg = tmp_path / "rgb_grey.jpg"
    Image.fromarray(tinted).save(jpg, quality=90)
    assert Image.open(jpg).mode == "RGB"
    got = read_mask(jpg)
    assert got.ndim == 2 and ((got > 127) == (m > 127)).mean() > 0.99


# ---------------------------------------------------------------- other formats and bad input
def test_tiff_16bit_palette_and_stack(tmp_path):
    ids16 = np.array([[0, 300], [70000 % 65536, 2]], np.uint16)
    tifffile.imwrite(tmp_path / "m16.tif", ids16)
    got = read_mask(tmp_path / "m16.tif")
    assert got.dtype == np.uint16 and np.array_equal(got, ids16)
    ids = tissue_ids((32, 32))
    cmap = np.zeros((3, 256), np.uint16)
    tifffile.imwrite(tmp_path / "pal.tif", ids, photometric="palette", colormap=cmap)
    assert np.array_equal(read_mask(tmp_path / "pal.tif"), ids)
    stack = np.stack([ids, ids[::-1]])
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    assert np.array_equal(read_mask(tmp_path / "stack.tif"), stack)
    tifffile.imwrite(tmp_path / "whole.tif", ids.astype(np.float32))
    got = read_mask(tmp_path / "whole.tif")
    assert got.dtype == np.uint8 and np.array_equal(got, ids)
    tifffile.imwrite(tmp_path / "soft.tif", np.array([[0.0, 0.25], [1.0, 0.0]], np.float32))
    with pytest.raises(MaskError, match=r"soft\.tif: holds 1 non-integer values \(e\.g\. 0\.25\).*binarise"):
        read_mask(tmp_path / "soft.tif")


def test_colour_tiffs_planar_and_contiguous(tmp_path):
    cm = ClassMap.from_colour_table(TISSUE_PALETTE)
    ids = tissue_ids((40, 48))
    rgb = np.array([TISSUE_PALETTE[i] for i in range(4)], np.uint8)[ids]
    tifffile.imwrite(tmp_path / "contig.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_mask(tmp_path / "contig.tif", cm), ids)
    assert np.array_equal(read_mask(tmp_path / "planar.tif", cm), ids)


def test_miniswhite_tiff_is_read_in_display_sense(tmp_path):
    stored = tissue_ids((16, 16)) > 0
    tifffile.imwrite(tmp_path / "white.tif", stored, photometric="miniswhite")
    assert np.array_equal(read_mask(tmp_path / "white.tif"), (~stored).astype(np.uint8))


def test_an_image_given_as_mask_is_refused(noisy_mask_dir, ct_small):
    # CVC-ClinicDB's frame TIFF is tagged MINISBLACK with 3 samples: read as colour, and refused
    with pytest.raises(MaskError, match=r"1\.tif: colour-coded mask with \d+ colours.*photo, not a mask"):
        read_mask(noisy_mask_dir / "1.tif")
    # CT_small's DICOM preamble starts like a TIFF header: it must still be named DICOM
    with pytest.raises(UnsupportedFormatError, match="is a DICOM file"):
        read_mask(ct_small)


def test_16bit_png(tmp_path):
    a = np.array([[0, 1000], [65535, 7]], np.uint16)
    Image.fromarray(a).save(tmp_path / "m.png")
    got = read_mask(tmp_path / "m.png")
    assert got.dtype == np.uint16 and np.array_equal(got, a)


def test_nifti_label_volume_matches_image_orientation(tmp_path):
    import nibabel as nib

    from medseg.io.nifti import read_nifti

    vol = np.zeros((12, 10, 6), np.uint8)  # (x, y, z) voxels
    vol[2:5, 3:8, 1:3] = 1
    vol[6:9, 1:4, 4] = 2
    affine = np.diag([-0.8, 0.8, 2.5, 1.0])  # LAS, as many label maps are stored
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), path)
    got = read_mask(path)
    assert np.array_equal(got, read_nifti(path).array) and got.shape == (6, 10, 12)
    assert np.bincount(got.ravel()).tolist() == np.bincount(vol.ravel()).tolist()


@pytest.mark.parametrize(
    "content, suffix, error, message",
    [
        (None, ".png", ReadError, "no such file"),
        (b"", ".png", ReadError, r"empty \(0 bytes\)"),
        (b"not an image at all, just text", ".png", ReadError, "named .png but its content is not PNG"),
        (b"not an image at all, just text", ".txt", UnsupportedFormatError, "not a mask format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ".png", ReadError, "cannot be decoded as PNG"),
        (b"II*\x00" + b"\x00" * 40, ".tif", ReadError, "cannot be decoded as TIFF"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, suffix, error, message):
    path = tmp_path / f"bad{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message) as e:
        read_mask(path)
    assert str(path) in str(e.value)


def test_folder_is_not_a_mask(tmp_path):
    with pytest.raises(ReadError, match="is a folder"):
        read_mask(tmp_path)


# ---------------------------------------------------------------- merging per-class files
@pytest.fixture
def montgomery(tmp_path):
    """ManualMask/leftMask + rightMask, 0/255 PNGs the size of the X-ray (scaled down)."""
    shape = (490, 402)
    left = np.zeros(shape, np.uint8)  # patient's left lung: on the image's right
    left[ellipse(230, 290, 170, 70, shape=shape)] = 255
    right = np.zeros(shape, np.uint8)
    right[ellipse(230, 110, 180, 75, shape=shape)] = 255
    paths = {}
    for name, arr in (("leftMask", left), ("rightMask", right)):
        (tmp_path / "ManualMask" / name).mkdir(parents=True)
        paths[name] = tmp_path / "ManualMask" / name / "MCUCXR_0001_0.png"
        Image.fromarray(arr).save(paths[name])
    return paths, left > 0, right > 0


def test_merge_montgomery_left_right(montgomery):
    paths, left, right = montgomery
    ids = merge_class_masks({1: paths["leftMask"], 2: paths["rightMask"]})
    assert ids.dtype == np.uint8 and ids.shape == left.shape
    assert np.array_equal(ids == 1, left) and np.array_equal(ids == 2, right)
    assert set(np.unique(ids).tolist()) == {0, 1, 2}


def test_merge_overlap_policies(montgomery, tmp_path):
    paths, left, right = montgomery
    grown = np.zeros_like(left)
    grown[ellipse(230, 200, 180, 140, shape=left.shape)] = True  # a sloppy mask across both lungs
    Image.fromarray(grown.astype(np.uint8) * 255).save(tmp_path / "heart.png")
    n = int((grown & left).sum())
    assert n > 0
    masks = {1: paths["leftMask"], 3: tmp_path / "heart.png"}
    with pytest.raises(MaskError, match=rf"leftMask.*class 1\) and .*heart\.png \(class 3\) overlap in {n:,} pixels"):
        merge_class_masks(masks)
    last = merge_class_masks(masks, overlap="last")
    first = merge_class_masks(masks, overlap="first")
    assert np.array_equal(last == 3, grown) and np.array_equal(first == 1, left)
    assert int(((first == 3) & left).sum()) == 0
    with pytest.raises(ValueError, match="overlap must be one of"):
        merge_class_masks(masks, overlap="max")


def test_merge_size_mismatch_and_grey_masks(montgomery, tmp_path):
    paths, left, _ = montgomery
    Image.fromarray(np.zeros((100, 80), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(
        MaskError,
        match=r"leftMask.*shape \(490, 402\) but .*small\.png \(class 2\) "
        r"has shape \(100, 80\)",
    ):
        merge_class_masks({1: paths["leftMask"], 2: tmp_path / "small.png"})
    noisy = left.astype(np.uint8) * 255
    noisy[0, :3] = (8, 9, 10)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    with pytest.raises(MaskError, match=r"noisy\.png: mask of class 1 is not binary: .* 4 values .*binarise"):
        merge_class_masks({1: tmp_path / "noisy.png"})
    with pytest.raises(ValueError, match="class ids must be integers >= 1"):
        merge_class_masks({0: paths["leftMask"]})
    assert np.array_equal(merge_class_masks({1: left, 2: ~left}), np.where(left, 1, 2))  # arrays too
    with pytest.raises(ValueError, match=r"array for class 1 has shape \(490, 402\) but array for class 2"):
        merge_class_masks({1: left, 2: np.zeros((3, 3), bool)})


# ---------------------------------------------------------------- ids <-> channels
def test_ids_channels_round_trip_and_errors():
    cm = ClassMap.from_colour_table(TISSUE_PALETTE)
    ids = tissue_ids((64, 64))
    ch = ids_to_channels(ids, cm)
    assert ch.shape == (64, 64, 3) and ch.dtype == bool
    assert np.array_equal(ch[..., 1], ids == 2)
    assert np.array_equal(channels_to_ids(ch, cm), ids)
    vol = np.stack([ids, ids.T])  # N-D works the same
    assert np.array_equal(channels_to_ids(ids_to_channels(vol, cm), cm), vol)
    bad = ids.copy()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match=r"ids not in the class map.*7 \(1 px\)"):
        ids_to_channels(bad, cm)
    ch[:5, :5, 0] = ch[:5, :5, 1] = True
    with pytest.raises(ValueError, match=r"overlap in 25 pixels \(class_1 & class_2: 25 px\)"):
        channels_to_ids(ch, cm)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3\) channels"):
        channels_to_ids(ch[..., :2], cm)


def test_stack_class_masks_keeps_overlap(montgomery):
    paths, left, right = montgomery
    cm = ClassMap.from_names(["left lung", "right lung", "both"], task="multilabel")
    ch = stack_class_masks({"left lung": paths["leftMask"], 2: paths["rightMask"], "both": left | right}, cm)
    assert ch.shape == left.shape + (3,)
    assert np.array_equal(ch[..., 0], left) and np.array_equal(ch[..., 2], left | right)
    assert int((ch.sum(-1) > 1).sum()) == int((left | right).sum())
    with pytest.raises(ValueError, match="heart"):
        stack_class_masks({"heart": left}, cm)


def test_check_ids_lists_unknown_ids(palette_png):
    path, ids = palette_png
    check_ids(ids, ClassMap.from_colour_table(TISSUE_PALETTE))
    with pytest.raises(MaskError, match=r"tissue_mask\.png: ids not in the class map.*3 \("):
        check_ids(ids, ClassMap.from_names(["a", "b"]), path)


def test_tiff_mask_with_an_unknown_photometric_code_names_it(tmp_path):
    # a flipped bit gave PhotometricInterpretation 1025; naming it raised "1025 is not a valid PHOTOMETRIC"
    import struct

    import tifffile

    from medseg.errors import MaskError
    from medseg.io.masks import read_mask

    p = tmp_path / "odd.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8), photometric="minisblack")
    data = bytearray(p.read_bytes())
    with tifffile.TiffFile(p) as tif:
        tag = tif.pages.first.tags["PhotometricInterpretation"]
        struct.pack_into("<H", data, tag.valueoffset, 1025)
    p.write_bytes(bytes(data))
    with pytest.raises(MaskError, match=r"odd\.tif: TIFF photometric 1025 is not a mask encoding"):
        read_mask(p)
