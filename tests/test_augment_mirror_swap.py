"""A horizontal mirror exchanges side-specific classes (seed 001's left and right lung) with the pixels."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from medseg.datasets.classmap import ClassMap
from medseg.training.augment import augment, compose, swap_permutation
from medseg.training.data import mirror_permutation


def _lungs() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((16, 20), np.uint8)
    mask = np.zeros((16, 20), np.int64)
    mask[4:12, 2:8] = 1  # left lung on the image's left (as stored)
    mask[4:12, 12:18] = 2  # right lung
    image[mask > 0] = 200
    return image, mask


def test_flip_swaps_the_side_classes():
    image, mask = _lungs()
    flip = compose([A.HorizontalFlip(p=1.0)])
    out = augment(flip, image, mask, mirror_swap=swap_permutation({1: 2}, 3))
    # pixels move to the other side and keep their anatomical class: what was "1" on the left
    # is now on the right, and is called 2 there
    np.testing.assert_array_equal(out["mask"], np.where(mask[:, ::-1] == 1, 2, np.where(mask[:, ::-1] == 2, 1, 0)))
    assert (out["mask"][:, :10] == 1).any() and (out["mask"][:, 10:] == 2).any()
    without = augment(flip, image, mask)
    np.testing.assert_array_equal(without["mask"], mask[:, ::-1])  # the old behaviour: sides wrong


def test_two_flips_or_none_change_nothing():
    image, mask = _lungs()
    swap = swap_permutation({1: 2}, 3)
    twice = compose([A.HorizontalFlip(p=1.0), A.HorizontalFlip(p=1.0)])
    np.testing.assert_array_equal(augment(twice, image, mask, mirror_swap=swap)["mask"], mask)
    never = compose([A.HorizontalFlip(p=0.0)])
    np.testing.assert_array_equal(augment(never, image, mask, mirror_swap=swap)["mask"], mask)
    vflip = compose([A.VerticalFlip(p=1.0)])  # up/down does not change the patient's sides
    np.testing.assert_array_equal(augment(vflip, image, mask, mirror_swap=swap)["mask"], mask[::-1])


def test_multilabel_channels_swap():
    image, mask = _lungs()
    channels = np.stack([mask == 1, mask == 2], -1)
    out = augment(
        compose([A.HorizontalFlip(p=1.0)]), image, multilabel=channels, mirror_swap=swap_permutation({0: 1}, 2)
    )
    np.testing.assert_array_equal(out["multilabel"][..., 1], (mask == 1)[:, ::-1])


def test_permutation_from_class_names():
    cm = ClassMap.from_names(["left lung", "right lung", "heart"], task="multiclass")
    np.testing.assert_array_equal(mirror_permutation(cm, {"left lung": "right lung"}), [0, 2, 1, 3])
    ml = ClassMap.from_names(["left lung", "right lung", "heart"], task="multilabel")
    np.testing.assert_array_equal(mirror_permutation(ml, {"right lung": "left lung"}), [1, 0, 2])
    with pytest.raises(ValueError, match="data.mirror_swap.*left kidney"):
        mirror_permutation(cm, {"left kidney": "right lung"})


def test_trainer_names_an_unknown_class_in_the_config(tmp_path):
    from _train_run import make_dataset, tiny_config

    from medseg.training import Trainer
    from medseg.training.config import ConfigError

    cfg = tiny_config(make_dataset(tmp_path / "data", n=4), tmp_path / "run")
    cfg["data"]["mirror_swap"] = {"left lung": "right lung"}
    with pytest.raises(ConfigError, match="left lung"):
        Trainer(cfg)
