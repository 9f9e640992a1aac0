"""Pipelines from config lists: name and argument validation, nearest masks, to_dict / from_dict round trip."""

from __future__ import annotations

import json

import albumentations as A
import cv2
import numpy as np
import pytest
from _augment_data import misaligned_fraction, multilabel_of, rgb_sample

from medseg.errors import AugmentationError, UnknownNameError
from medseg.training.augment import (
    PRESETS,
    assert_mask_integrity,
    augment,
    get_preset,
    leaves,
)
from medseg.training.augment_config import (
    available_transforms,
    build_augmentation,
    pipeline_from_dict,
    pipeline_to_dict,
)

EXAMPLE = [
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "Affine", "rotate": [-10, 10], "scale": [0.9, 1.1], "border_mode": "reflect_101", "p": 0.8},
    {
        "name": "OneOf",
        "p": 0.3,
        "transforms": [
            {"name": "GridDistortion", "num_steps": 5, "distort_limit": 0.05},
            {"name": "ElasticTransform", "alpha": 1, "sigma": 50},
        ],
    },
    {
        "name": "CoarseDropout",
        "num_holes_range": [2, 4],
        "hole_height_range": [0.05, 0.1],
        "hole_width_range": [0.05, 0.1],
        "fill": 0,
        "fill_mask": 0,
        "p": 0.5,
    },
    {"name": "RandomBrightnessContrast", "p": 0.3},
]


def test_config_list_builds_a_working_pipeline():
    pipe = build_augmentation(EXAMPLE, size=(48, 56))
    assert isinstance(pipe, A.Compose) and pipe.mask_interpolation == cv2.INTER_NEAREST
    names = [type(t).__name__ for t in leaves(pipe)]
    assert names == [
        "Resize",
        "HorizontalFlip",
        "Affine",
        "GridDistortion",
        "ElasticTransform",
        "CoarseDropout",
        "RandomBrightnessContrast",
    ]
    affine = pipe.transforms[2]
    assert affine.border_mode == cv2.BORDER_REFLECT_101 and affine.mask_interpolation == cv2.INTER_NEAREST
    assert tuple(affine.rotate) == (-10, 10) and affine.p == 0.8
    image, mask = rgb_sample()
    for s in range(10):
        out = augment(pipe, image, mask, multilabel_of(mask), seed=s)
        assert out["mask"].shape == (48, 56)
        assert_mask_integrity(mask, out["mask"])
        np.testing.assert_array_equal(out["multilabel"], multilabel_of(out["mask"]))


def test_geometric_config_keeps_alignment():
    pipe = build_augmentation([c for c in EXAMPLE if c["name"] != "RandomBrightnessContrast"])
    image, mask = rgb_sample()
    for s in range(10):
        out = augment(pipe, image, mask, seed=s)
        assert misaligned_fraction(out["image"], out["mask"]) < 0.01


def test_unknown_transform_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"'HorizontalFLip'.*did you mean 'HorizontalFlip'") as e:
        build_augmentation([{"name": "HorizontalFLip"}])
    assert "augmentation step [0]" in str(e.value) and "VerticalFlip" in str(e.value)


@pytest.mark.parametrize("name", ["Normalize", "Mosaic", "Lambda", "ToTensorV2", "CoarseDropout3D"])
def test_transforms_that_do_not_fit_are_not_offered(name):
    assert name not in available_transforms()
    with pytest.raises(UnknownNameError):
        build_augmentation([{"name": name}])


def test_offered_transforms_all_move_masks():
    offered = set(available_transforms())
    assert {
        "HorizontalFlip",
        "Affine",
        "ElasticTransform",
        "GridDistortion",
        "CoarseDropout",
        "CLAHE",
        "Equalize",
        "OneOf",
        "SomeOf",
        "Resize",
        "RandomResizedCrop",
    } <= offered


def test_unknown_argument_names_transform_argument_and_new_name():
    with pytest.raises(
        AugmentationError,
        match=r"step \[1\] CoarseDropout: unknown argument 'max_holes' "
        r"\(use num_holes_range\); valid: num_holes_range",
    ):
        build_augmentation([{"name": "HorizontalFlip"}, {"name": "CoarseDropout", "max_holes": 8}])
    with pytest.raises(AugmentationError, match=r"ElasticTransform: unknown argument 'alpha_affine'.*Affine step"):
        build_augmentation([{"name": "ElasticTransform", "alpha": 1, "sigma": 50, "alpha_affine": 50}])


def test_bad_value_names_the_argument():
    with pytest.raises(AugmentationError, match=r"step \[0\] Affine: bad argument 'rotate'='abc'"):
        build_augmentation([{"name": "Affine", "rotate": "abc"}])
    with pytest.raises(AugmentationError, match=r"CoarseDropout: bad argument 'num_holes_range'=\[8, 5\]"):
        build_augmentation([{"name": "CoarseDropout", "num_holes_range": [8, 5]}])
    with pytest.raises(AugmentationError, match=r"HorizontalFlip: bad argument 'p'=2"):
        build_augmentation([{"name": "HorizontalFlip", "p": 2}])
    with pytest.raises(AugmentationError, match=r"border_mode='mirror' is not one of constant"):
        build_augmentation([{"name": "Affine", "border_mode": "mirror"}])


def test_nested_errors_say_where():
    with pytest.raises(
        AugmentationError,
        match=r"step \[0\] OneOf\.transforms\[1\] Affine: mask_interpolation "
        r"must be nearest",
    ):
        build_augmentation(
            [
                {
                    "name": "OneOf",
                    "transforms": [{"name": "HorizontalFlip"}, {"name": "Affine", "mask_interpolation": "linear"}],
                }
            ]
        )
    with pytest.raises(AugmentationError, match=r"OneOf: needs 'transforms'"):
        build_augmentation([{"name": "OneOf", "p": 0.5}])
    with pytest.raises(AugmentationError, match="a dict with a 'name'"):
        build_augmentation([{"transform": "HorizontalFlip"}])
    with pytest.raises(AugmentationError, match="preset"):
        build_augmentation({"steps": []})


def test_presets_by_name_and_options():
    assert [type(t).__name__ for t in build_augmentation("seed004", 64).transforms] == [
        type(t).__name__ for t in get_preset("seed004", 64).transforms
    ]
    clahe = build_augmentation({"preset": "seed001_clahe", "p": 1.0})
    assert clahe.transforms[0].p == 1.0
    assert [type(t).__name__ for t in build_augmentation(None, 32).transforms] == ["Resize"]
    with pytest.raises(AugmentationError, match="seed001_mirror"):
        build_augmentation({"preset": "seed001_mirror", "p": 1.0})
    with pytest.raises(UnknownNameError):
        build_augmentation("seed005")


@pytest.mark.parametrize("spec", [EXAMPLE, *PRESETS])
def test_to_dict_from_dict_round_trip_through_json(spec):
    pipe = build_augmentation(spec, size=(48, 56))
    saved = json.loads(json.dumps(pipeline_to_dict(pipe)))
    again = pipeline_from_dict(saved)
    assert pipeline_to_dict(again) == saved
    assert again.mask_interpolation == cv2.INTER_NEAREST
    image, mask = rgb_sample()
    for s in range(5):
        a, b = augment(pipe, image, mask, seed=s), augment(again, image, mask, seed=s)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
    assert build_augmentation(saved).transforms[0].height == 48


def test_from_dict_refuses_tampered_pipelines():
    saved = pipeline_to_dict(build_augmentation(EXAMPLE))
    bad_mask = json.loads(json.dumps(saved))
    bad_mask["transform"]["transforms"][1]["mask_interpolation"] = cv2.INTER_LINEAR
    with pytest.raises(AugmentationError, match="Affine has a mask_interpolation other than nearest"):
        pipeline_from_dict(bad_mask)
    unknown = json.loads(json.dumps(saved))
    unknown["transform"]["transforms"][0]["__class_fullname__"] = "NoSuchFlip"
    with pytest.raises(AugmentationError, match="cannot be rebuilt.*NoSuchFlip"):
        pipeline_from_dict(unknown)
    not_offered = pipeline_to_dict(A.Compose([A.Normalize()]))
    with pytest.raises(AugmentationError, match="Normalize, which is not offered"):
        pipeline_from_dict(not_offered)
