"""Palette-mask layout: RGBA tissue images with mode 'P' masks whose indices are classes (seed 003)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets import detect_layout, open_dataset

H, W = 32, 40
PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0]  # black, red, green, blue, yellow


def tissue(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgba = np.empty((H, W, 4), np.uint8)
    rgba[..., :3] = rng.integers(120, 230, size=3) + rng.integers(0, 20, size=(H, W, 3))
    rgba[..., 3] = 255
    return rgba


def label(classes: tuple[int, ...]) -> np.ndarray:
    """Vertical bands of the given palette indices."""
    ids = np.zeros((H, W), np.uint8)
    for k, c in enumerate(classes):
        ids[:, k * (W // len(classes)) : (k + 1) * (W // len(classes))] = c
    return ids


def save_palette(path: Path, ids: np.ndarray) -> None:
    im = Image.fromarray(ids, mode="P")
    im.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    im.save(path)


def make_tissue_set(root: Path, stems=tuple(f"tissue_{i:03d}" for i in range(4))) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    bands = [(0, 1), (0, 1, 2), (3, 0), (2, 3, 1)]
    for i, (stem, classes) in enumerate(zip(stems, bands)):
        Image.fromarray(tissue(i), mode="RGBA").save(root / "images" / f"{stem}.png")
        save_palette(root / "masks" / f"{stem}.png", label(classes))
    return root


def test_palette_masks_are_detected_and_give_a_multiclass_map(tmp_path):
    root = make_tissue_set(tmp_path)
    assert detect_layout(root) == "palette"
    d = open_dataset(root)
    assert d.layout == "palette" and len(d) == 4 and d.problems == []
    cm = d.classmap
    assert cm.task == "multiclass" and cm.ids == [1, 2, 3]
    # colours come from the masks' own palette, not from a default table
    assert cm.colour_table() == {1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}
    assert cm.extra["source"] == "palette indices"


def test_palette_indices_survive_loading(tmp_path):
    d = open_dataset(make_tissue_set(tmp_path))
    s = d.by_id("tissue_003")
    ids = s.load_mask()
    assert ids.shape == (H, W)
    np.testing.assert_array_equal(ids, label((2, 3, 1)))  # indices, not RGB colours
    _, report = s.load_mask(return_report=True)
    assert report is None  # id maps are not binarised
    image = s.load_image()
    assert image.array.shape == (H, W, 4) and image.rgb


def test_non_integer_stems_group_by_stem_unless_a_pattern_is_given(tmp_path):
    root = make_tissue_set(tmp_path, stems=("pA_s1", "pA_s2", "pB_s1", "other"))
    assert [s.group for s in open_dataset(root)] == ["other", "pA_s1", "pA_s2", "pB_s1"]
    d = open_dataset(root, group_pattern=r"^(p[A-Z])_")  # a pattern implies group_by="pattern"
    assert [s.group for s in d] == ["other", "pA", "pA", "pB"]  # no match: the stem is its group
    assert [s.group for s in open_dataset(root, group_by="pattern", group_pattern=r"s\d")] == [
        "other",
        "s1",
        "s2",
        "s1",
    ]


def test_two_index_palette_masks_are_binary(tmp_path):
    root = make_tissue_set(tmp_path)
    for i, path in enumerate(sorted((root / "masks").glob("*.png"))):
        save_palette(path, label((0, 1)) if i % 2 else label((1, 0)))
    d = open_dataset(root)
    assert d.layout == "palette"
    assert d.classmap.task == "binary" and d.classmap.colour_table() == {1: (255, 0, 0)}
    np.testing.assert_array_equal(d.samples[1].load_mask(), label((0, 1)))
