"""Real CVC-ClinicDB: indexing, binary masks, and video frame blocks that keep near-identical frames together."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from medseg.datasets import detect_layout, open_dataset, split_by_group

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cvc(cvc_dir):
    return open_dataset(cvc_dir)


def test_cvc_clinicdb_opens_clean(cvc, cvc_dir):
    assert detect_layout(cvc_dir) == "images_masks"
    assert cvc.layout == "images_masks"
    assert len(cvc) == 612 and cvc.problems == []
    assert cvc.classmap.task == "binary" and cvc.classmap.ids == [1]
    assert [s.id for s in cvc.samples[:3]] == ["1", "2", "3"]
    for sid in ("1", "300", "612"):
        mask, report = cvc.by_id(sid).load_mask(return_report=True)
        assert mask.shape == (288, 384) and set(np.unique(mask)) == {0, 1}
        assert report.n_changed == 0  # these masks were already cleaned to 0/255


def test_cvc_frame_blocks_are_plausible_video_sequences(cvc):
    groups = {s.group for s in cvc}
    # 29 (some sources: 31) sequences; frame_blocks found 31 when this was written
    assert 20 <= len(groups) <= 60, len(groups)
    assert cvc.by_id("1").group == cvc.by_id("2").group
    for g in groups:  # every block is a contiguous run of frame numbers
        numbers = sorted(int(s.id) for s in cvc if s.group == g)
        assert numbers == list(range(numbers[0], numbers[-1] + 1)), g
        assert g == f"{numbers[0]}-{numbers[-1]}"


def _grey_thumb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((64, 48), Image.BILINEAR), dtype=np.float32)


def test_group_splits_never_separate_near_identical_neighbours(cvc):
    thumbs = [_grey_thumb(s.image_path) for s in cvc]
    # judged independently of frame_blocks' own measure: whole-frame mean absolute grey difference
    near = [
        (cvc.samples[k].id, cvc.samples[k + 1].id)
        for k in range(len(thumbs) - 1)
        if np.abs(thumbs[k] - thumbs[k + 1]).mean() < 10
    ]
    assert len(near) > 50  # the set really has many near-duplicate neighbours
    for seed in range(20):
        train, val = split_by_group(cvc.samples, (0.8, 0.2), seed=seed)
        side = {s.id: 0 for s in train} | {s.id: 1 for s in val}
        assert all(side[a] == side[b] for a, b in near), seed
        assert 0.1 < len(val) / len(cvc) < 0.3


def test_original_release_tiffs_with_a_noisy_mask(noisy_mask_dir, tmp_path):
    (tmp_path / "Original").mkdir()
    (tmp_path / "Ground Truth").mkdir()
    shutil.copy(noisy_mask_dir / "1.tif", tmp_path / "Original" / "1.tif")
    shutil.copy(noisy_mask_dir / "1_mask.tif", tmp_path / "Ground Truth" / "1.tif")
    d = open_dataset(tmp_path)
    assert d.layout == "cvc_original" and len(d) == 1 and d.problems == []
    assert d.classmap.task == "binary"  # grey noise up to 112 plus 255 is still one class
    mask, report = d.samples[0].load_mask(return_report=True)
    assert set(np.unique(mask)) == {0, 1}
    assert len(report.grey_levels) == 42 and report.n_changed > 0  # the noise is reported, not hidden
    clean = np.asarray(Image.open(noisy_mask_dir / "1_mask.png")) > 127
    assert (mask.astype(bool) != clean).mean() < 0.01
