"""RLE as in UW-Madison train.csv: row-major, 1-indexed starts, "" for empty."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import ellipse

from medseg.datasets.classmap import ClassMap
from medseg.io.rle import rle_decode, rle_decode_multilabel, rle_encode, rle_encode_multilabel


def reference_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """The decoder from the UW-Madison competition notebooks, for an independent check."""
    s = rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, starts + lengths):
        img[lo:hi] = 1
    return img.reshape(shape)


def mask_with(shape, flat_indices):
    m = np.zeros(shape, dtype=bool)
    m.flat[list(flat_indices)] = True
    return m


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    "flat, expected",
    [
        ([0, 1, 5], "1 2 6 1"),  # brief's example
        ([4], "5 1"),  # (row 1, col 0): row-major index 4 (column-major would say 2)
        (range(0, 5), "1 5"),  # a run crosses the end of row 0 into row 1
        (range(12), "1 12"),  # full mask
        ([0], "1 1"),  # first pixel
        ([11], "12 1"),  # last pixel
        ([3, 4, 7, 8, 11], "4 2 8 2 12 1"),  # runs touching row ends
        ([], ""),
    ],
)
def test_encode_known_answers(flat, expected):
    m = mask_with((3, 4), flat)
    assert rle_encode(m) == expected
    assert rle_encode(m.astype(np.uint8)) == expected
    assert np.array_equal(rle_decode(expected, (3, 4)), m.astype(np.uint8))


def test_decode_is_row_major_not_column_major():
    d = rle_decode("2 1", (3, 4))
    assert d[0, 1] == 1 and d.sum() == 1  # column-major would have put it at (1, 0)
    assert d.dtype == np.uint8 and d.shape == (3, 4)


@pytest.mark.parametrize("empty", [None, float("nan"), np.float64("nan"), "", "   "])
def test_empty_rle_decodes_to_zeros(empty):
    d = rle_decode(empty, (5, 7))
    assert d.shape == (5, 7) and d.dtype == np.uint8 and not d.any()


# ---------------------------------------------------------------- round trip
def test_round_trip_many_random_masks():
    rng = np.random.default_rng(1234)
    shapes = [(1, 1), (1, 9), (9, 1), (3, 4), (17, 23), (64, 48), (266, 266)]
    n = 0
    for shape in shapes:
        for density in (0.0, 0.02, 0.3, 0.5, 0.9, 1.0):
            for _ in range(6):
                m = rng.random(shape) < density
                if rng.random() < 0.5 and m.size > 1:  # long horizontal runs that wrap rows
                    m = np.repeat(m.ravel()[: max(1, m.size // 8)], 8)[: m.size]
                    m = np.pad(m, (0, shape[0] * shape[1] - m.size)).reshape(shape)
                rle = rle_encode(m)
                back = rle_decode(rle, shape)
                assert np.array_equal(back, m.astype(np.uint8)), (shape, density, rle)
                if rle:
                    assert np.array_equal(reference_decode(rle, shape), back)
                    runs = np.array(rle.split(), dtype=int)
                    # canonical: runs separated by at least one background pixel
                    assert (runs[2::2] > runs[0:-2:2] + runs[1:-1:2]).all()
                n += 1
    assert n == len(shapes) * 6 * 6


def test_round_trip_uw_madison_sized_slice():
    m = np.zeros((266, 266), dtype=bool)
    rr, cc = ellipse(130, 140, 40, 60, shape=m.shape)
    m[rr, cc] = True
    rle = rle_encode(m)
    assert len(rle.split()) == 2 * int(m.any(axis=1).sum())  # one run per row the ellipse covers
    assert np.array_equal(rle_decode(rle, m.shape), m)


# ---------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    "rle, message",
    [
        ("1 2 3", "even count"),
        ("1 two", "not non-negative integers"),
        ("1.5 2", "not non-negative integers"),
        ("-1 2", "not non-negative integers"),
        ("0 2", "1-indexed"),
        ("3 0", "length 0"),
        ("6 2 1 2", "not sorted"),
        ("1 3 2 1", "overlap"),
        ("11 3", "past the mask's 12 pixels"),
    ],
)
def test_malformed_rle_says_what_is_wrong(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (3, 4))


def test_touching_runs_are_accepted():
    # disjoint but adjacent runs are unambiguous, though an encoder would merge them
    assert np.array_equal(rle_decode("1 2 3 2", (1, 5)), rle_decode("1 4", (1, 5)))


@pytest.mark.parametrize("bad", [3, 1.0, ["1", "2"]])
def test_non_string_rle_rejected(bad):
    with pytest.raises(ValueError, match="string, None or NaN"):
        rle_decode(bad, (3, 4))


def test_encode_rejects_grey_masks():
    with pytest.raises(ValueError, match="binarise"):
        rle_encode(np.array([[0, 255], [255, 0]], dtype=np.uint8))


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        rle_decode("1 1", (0, 4))


# ---------------------------------------------------------------- multilabel
@pytest.fixture
def gi_classmap() -> ClassMap:
    return ClassMap.from_names(["large_bowel", "small_bowel", "stomach"], task="multilabel")


def test_multilabel_overlap_survives_round_trip(gi_classmap):
    shape = (266, 266)
    stomach = np.zeros(shape, bool)
    stomach[ellipse(90, 150, 45, 60, shape=shape)] = True
    small_bowel = np.zeros(shape, bool)
    small_bowel[ellipse(140, 130, 50, 40, shape=shape)] = True
    overlap = stomach & small_bowel
    assert overlap.sum() > 100
    rows = {
        "stomach": rle_encode(stomach),
        "small_bowel": rle_encode(small_bowel),
        "large_bowel": float("nan"),
    }  # pandas reads an empty train.csv cell as NaN
    ch = rle_decode_multilabel(rows, shape, gi_classmap)
    assert ch.shape == (266, 266, 3) and ch.dtype == bool
    assert np.array_equal(ch[..., gi_classmap.names.index("stomach")], stomach)
    assert np.array_equal(ch[..., gi_classmap.names.index("small_bowel")], small_bowel)
    assert not ch[..., gi_classmap.names.index("large_bowel")].any()
    both = ch[..., 1] & ch[..., 2]
    assert np.array_equal(both, overlap)
    again = rle_encode_multilabel(ch, gi_classmap)
    assert again == {"large_bowel": "", "small_bowel": rows["small_bowel"], "stomach": rows["stomach"]}


def test_multilabel_missing_class_row_is_empty_channel(gi_classmap):
    ch = rle_decode_multilabel({"stomach": "1 3"}, (2, 4), gi_classmap)
    assert ch[..., 2].sum() == 3 and ch[..., :2].sum() == 0


def test_multilabel_errors_name_the_class(gi_classmap):
    with pytest.raises(ValueError, match="liver"):
        rle_decode_multilabel({"liver": "1 1"}, (2, 2), gi_classmap)
    with pytest.raises(ValueError, match="'stomach'.*past the mask"):
        rle_decode_multilabel({"stomach": "4 2"}, (2, 2), gi_classmap)
    with pytest.raises(ValueError, match="channels"):
        rle_encode_multilabel(np.zeros((2, 2, 2), bool), gi_classmap)


def test_rle_csv_writer_round_trips_through_the_uw_madison_reader(tmp_path):
    """Overlapping multilabel masks written as id,class,segmentation read back the same from open_dataset."""
    from PIL import Image

    from medseg.datasets import open_dataset
    from medseg.inference.rle_csv import rle_rows, write_rle_csv

    rng = np.random.default_rng(3)
    classmap = ClassMap.from_names(["large_bowel", "small_bowel", "stomach"], task="multilabel")
    root, rows, truth = tmp_path / "uw", [], {}
    yy, xx = np.mgrid[:40, :48]
    for case, n in ((1, 1), (1, 2), (2, 1)):
        scans = root / "train" / f"case{case}" / f"case{case}_day0" / "scans"
        scans.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 4000, (40, 48)).astype(np.uint16)).save(
            scans / f"slice_{n:04d}_48_40_1.50_1.50.png"
        )
        cy, cx = rng.integers(10, 30, 2)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= 60
        channels = np.stack([blob, np.roll(blob, 3, axis=1), np.zeros_like(blob)], axis=-1)  # overlap, one empty
        sid = f"case{case}_day0_slice_{n:04d}"
        truth[sid] = channels
        rows += rle_rows(sid, channels, classmap)
    out = write_rle_csv(root / "train.csv", rows)
    text = out.read_text().splitlines()
    assert text[0] == "id,class,segmentation" and len(text) == 1 + 3 * 3
    assert text[3] == "case1_day0_slice_0001,stomach,"  # an empty mask is an empty cell
    ds = open_dataset(root)
    assert ds.layout == "uwmadison" and not ds.problems and ds.classmap.names == classmap.names
    for sample in ds.samples:
        got = np.asarray(sample.load_mask())
        assert got.shape == (40, 48, 3) and np.array_equal(got > 0, truth[sample.id])
    with pytest.raises(Exception, match="train.csv"):  # medseg's guard: not written over without --overwrite
        write_rle_csv(root / "train.csv", rows)


def test_rle_rows_of_a_label_map_and_bad_masks():
    from medseg.inference.rle_csv import rle_rows

    cm = ClassMap.from_names(["left_lung", "right_lung"], task="multiclass")
    labels = np.zeros((4, 5), np.uint8)
    labels[1, 1:3], labels[2, 4] = 1, 2
    assert rle_rows("a", labels, cm) == [("a", "left_lung", "7 2"), ("a", "right_lung", "15 1")]
    with pytest.raises(ValueError, match=r"a: mask values \[9\] are not class ids"):
        rle_rows("a", labels + 7 * (labels == 2), cm)
    with pytest.raises(ValueError, match="3 mask channels for 2 classes"):
        rle_rows("a", np.zeros((4, 5, 3)), cm)
