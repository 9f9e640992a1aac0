"""Predictor on hand-made networks: outputs, TTA, ensembles, uncertainty, input types, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _inference_nets import Pointwise, SymmetricBlur, predictor, task_classmap

from medseg.errors import Cancelled, InferenceError
from medseg.inference import Predictor
from medseg.io.types import ImageData
from medseg.jobs import CancelToken, Progress, Result, Started, drive
from medseg.models.spec import ModelSpec, Preprocessing


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _expected_pointwise(net: Pointwise, x01: np.ndarray) -> np.ndarray:
    """Logits of the 1x1 conv on a (C, H, W) input, computed with numpy."""
    w = net.conv.weight.detach().numpy()[:, :, 0, 0]
    b = net.conv.bias.detach().numpy()
    return np.einsum("kc,chw->khw", w, x01) + b[:, None, None]


def test_binary_outputs_have_the_image_size_and_types():
    net = Pointwise()
    pred = predictor(net, tile_size=32).predict(_rgb(97, 131))
    assert pred.labels.shape == (97, 131) and pred.labels.dtype == np.uint8
    assert set(np.unique(pred.labels)) <= {0, 1}
    assert pred.probs.shape == (1, 97, 131) and pred.probs.dtype == np.float32
    assert pred.uncertainty.shape == (97, 131) and pred.uncertainty.dtype == np.float32
    assert pred.variance is None
    expected = 1 / (1 + np.exp(-_expected_pointwise(net, np.moveaxis(_rgb(97, 131), -1, 0) / 255.0)))
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, (expected[0] >= 0.5).astype(np.uint8))
    assert pred.meta["tiles"] > 1 and pred.meta["device"] == "cpu" and pred.meta["precision"] == "fp32"


@pytest.mark.parametrize("shape", [(1, 300), (300, 1), (1, 1), (2, 700)])
def test_one_pixel_wide_images_are_predicted_at_their_size(shape):
    net = Pointwise()
    pred = predictor(net, tile_size=32).predict(_rgb(*shape))
    assert pred.labels.shape == shape and pred.probs.shape == (1, *shape)
    expected = 1 / (1 + np.exp(-_expected_pointwise(net, np.moveaxis(_rgb(*shape), -1, 0) / 255.0)))
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)


def test_multiclass_argmax_maps_channels_to_class_ids():
    net = Pointwise(classes=3, seed=1)
    p = predictor(net, task="multiclass", n=2)
    img = _rgb(40, 50)
    pred = p.predict(img)
    logits = _expected_pointwise(net, np.moveaxis(img, -1, 0) / 255.0)
    probs = np.exp(logits) / np.exp(logits).sum(0)
    np.testing.assert_allclose(pred.probs, probs, atol=1e-5)
    np.testing.assert_allclose(pred.probs.sum(0), 1, atol=1e-5)
    assert pred.labels.dtype == np.uint8
    np.testing.assert_array_equal(pred.labels, probs.argmax(0))


def test_multiclass_with_sparse_ids_returns_the_ids():
    from medseg.datasets.classmap import ClassMap, LabelClass

    cm = ClassMap([LabelClass(3, "a", (1, 2, 3)), LabelClass(300, "b", (4, 5, 6))], task="multiclass")
    net = Pointwise(classes=3, seed=2)
    p = Predictor.from_model(
        net, ModelSpec(arch="t", classes=3, task="multiclass"), cm, Preprocessing(divisible_by=16), device="cpu"
    )
    pred = p.predict(_rgb(20, 30))
    assert pred.labels.dtype == np.uint16
    np.testing.assert_array_equal(pred.labels, np.array([0, 3, 300])[pred.probs.argmax(0)])


def test_multilabel_is_per_channel_threshold():
    net = Pointwise(classes=2, seed=3)
    pred = predictor(net, task="multilabel", n=2, threshold=0.3).predict(_rgb(30, 20))
    assert pred.labels.shape == (30, 20, 2) and pred.labels.dtype == bool
    np.testing.assert_array_equal(pred.labels, np.moveaxis(pred.probs >= 0.3, 0, -1))


@pytest.mark.parametrize("tta", [("hflip",), ("hflip", "vflip"), ("vflip", "rot90", "hvflip", "rot270")])
def test_tta_with_an_equivariant_model_equals_plain_inference(tta):
    img = _rgb(64, 64, seed=4)  # a multiple of the stride: one window, symmetric padding
    plain = predictor(SymmetricBlur()).predict(img)
    aug = predictor(SymmetricBlur(), tta=tta).predict(img)
    np.testing.assert_allclose(aug.probs, plain.probs, atol=1e-5)
    assert aug.meta["members"] == 1 + len(tta) and aug.meta["tta"] == list(tta)
    assert aug.variance is not None and float(aug.variance.max()) < 1e-10


def test_tta_undoes_each_transform_when_tiling():
    # a pointwise model is equivariant to anything: any transform left undone shows up
    img = _rgb(70, 90, seed=5)
    plain = predictor(Pointwise(), tile_size=32).predict(img)
    aug = predictor(Pointwise(), tile_size=32, tta="hflip,vflip,rot90").predict(img)
    np.testing.assert_allclose(aug.probs, plain.probs, atol=1e-5)


def test_tta_changes_a_model_that_is_not_equivariant():
    net = torch.nn.Conv2d(3, 1, 3, padding=1)
    torch.nn.init.normal_(net.weight, std=2.0)
    img = _rgb(32, 32, seed=6)
    plain = predictor(net).predict(img)
    aug = predictor(net, tta=("hflip",)).predict(img)
    assert np.abs(aug.probs - plain.probs).max() > 1e-3
    assert float(aug.variance.max()) > 1e-6


def test_unknown_tta_name_lists_the_valid_ones():
    with pytest.raises(InferenceError, match="valid: hflip, vflip"):
        predictor(Pointwise(), tta=("mirror",))


def test_ensemble_of_identical_models_equals_one_and_has_zero_variance():
    img = _rgb(50, 70, seed=7)
    a, b = Pointwise(seed=8), Pointwise(seed=8)
    single = predictor(a, tile_size=32).predict(img)
    cm = task_classmap("binary")
    spec = ModelSpec(arch="t", classes=1)
    prep = Preprocessing(divisible_by=16)
    both = Predictor([(a, spec, cm, prep), (b, spec, cm, prep)], device="cpu", tile_size=32).predict(img)
    np.testing.assert_allclose(both.probs, single.probs, atol=1e-6)
    np.testing.assert_array_equal(both.labels, single.labels)
    assert both.meta["models"] == 2 and both.variance.shape == (50, 70) and float(both.variance.max()) < 1e-12


def test_ensemble_averages_probabilities_and_variance_is_their_spread():
    img = _rgb(24, 24, seed=9)
    a, b = Pointwise(seed=10), Pointwise(seed=11)
    pa, pb = predictor(a).predict(img).probs, predictor(b).predict(img).probs
    cm, spec, prep = task_classmap("binary"), ModelSpec(arch="t", classes=1), Preprocessing(divisible_by=16)
    both = Predictor([(a, spec, cm, prep), (b, spec, cm, prep)], device="cpu").predict(img)
    np.testing.assert_allclose(both.probs, (pa + pb) / 2, atol=1e-6)
    np.testing.assert_allclose(both.variance, ((pa - pb) ** 2 / 4)[0], atol=1e-6)


def test_ensemble_members_with_other_classes_are_refused():
    spec1, spec3 = ModelSpec(arch="t", classes=1), ModelSpec(arch="t", classes=3, task="multiclass")
    with pytest.raises(InferenceError, match="must share task and classes"):
        Predictor(
            [
                (Pointwise(), spec1, task_classmap("binary"), Preprocessing()),
                (Pointwise(classes=3), spec3, task_classmap("multiclass", 2), Preprocessing()),
            ],
            device="cpu",
        )


def test_members_with_different_preprocessing_each_get_their_own_input():
    img = _rgb(32, 32, seed=12)
    grey = Pointwise(in_channels=1, seed=13)
    cm = task_classmap("binary")
    p1 = Preprocessing(channels=1, divisible_by=16)
    p3 = Preprocessing(channels=3, mean=[0.5] * 3, std=[0.25] * 3, divisible_by=32)
    colour = Pointwise(seed=14)
    both = Predictor(
        [(grey, ModelSpec(arch="t", in_channels=1), cm, p1), (colour, ModelSpec(arch="t"), cm, p3)], device="cpu"
    ).predict(img)
    alone = [
        Predictor.from_model(m, ModelSpec(arch="t", in_channels=c), cm, p, device="cpu").predict(img).probs
        for m, c, p in ((grey, 1, p1), (colour, 3, p3))
    ]
    np.testing.assert_allclose(both.probs, (alone[0] + alone[1]) / 2, atol=1e-6)


def test_uncertainty_is_high_where_p_is_half():
    net = Pointwise(in_channels=1)
    with torch.no_grad():
        net.conv.weight.fill_(40.0)
        net.conv.bias.fill_(-20.0)  # logit 0 at intensity 0.5
    img = np.zeros((16, 48), np.float32)
    img[:, 16:32] = 0.5
    img[:, 32:] = 1.0
    pred = predictor(net, prep=Preprocessing(channels=1, window=[0.5, 1.0], divisible_by=16)).predict(img)
    assert pred.uncertainty[:, 16:32].min() > 0.999
    assert pred.uncertainty[:, :16].max() < 1e-6 and pred.uncertainty[:, 32:].max() < 1e-6


def test_16bit_grey_is_scaled_by_its_range():
    net = Pointwise(in_channels=1, seed=15)
    img = np.random.default_rng(16).integers(1000, 60000, (45, 37)).astype(np.uint16)
    pred = predictor(net, prep=Preprocessing(channels=1, divisible_by=16)).predict(img)
    x01 = (img.astype(np.float64) - img.min()) / (img.max() - img.min())
    expected = 1 / (1 + np.exp(-_expected_pointwise(net, x01[None])))
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)
    assert pred.labels.shape == (45, 37)


def test_rgba_drops_alpha_and_grey_is_repeated_for_an_rgb_model():
    rgb = _rgb(33, 41, seed=17)
    rgba = np.concatenate([rgb, np.full((33, 41, 1), 7, np.uint8)], axis=-1)
    p = predictor(Pointwise(seed=18))
    np.testing.assert_array_equal(p.predict(rgba).probs, p.predict(rgb).probs)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(p.predict(grey).probs, p.predict(np.repeat(grey[..., None], 3, -1)).probs)


def test_dicom_window_uses_the_files_first_preset(ct_small):
    from medseg.io import load
    from medseg.io.normalise import apply_window

    image = load(ct_small)
    net = Pointwise(in_channels=1, seed=19)
    pred = predictor(net, prep=Preprocessing(channels=1, window="dicom", divisible_by=16)).predict(image)
    name, (c, w) = next(iter(image.metadata["window_presets"].items()))
    expected = 1 / (1 + np.exp(-_expected_pointwise(net, apply_window(image.array, c, w)[None])))
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)
    assert pred.meta["window"].startswith(f"dicom {name}")
    plain = ImageData(image.array, image.spacing, {"source": "x"})
    assert (
        "percentile"
        in predictor(net, prep=Preprocessing(channels=1, window="dicom", divisible_by=16)).predict(plain).meta["window"]
    )


def test_a_volume_is_refused_with_its_shape():
    vol = ImageData(np.zeros((3, 16, 16), np.int16), (1.0, 1.0, 1.0), {"source": "vol.nii"})
    with pytest.raises(InferenceError, match=r"vol.nii.*3 spatial axes.*pass one slice"):
        predictor(Pointwise(in_channels=1)).predict(vol)


def test_bf16_on_cpu_only_when_asked_and_close_to_fp32():
    img = _rgb(32, 32, seed=20)
    fp32 = predictor(SymmetricBlur()).predict(img)
    bf16 = predictor(SymmetricBlur(), precision="bf16").predict(img)
    assert fp32.meta["precision"] == "fp32" and bf16.meta["precision"] == "bf16"
    assert np.abs(bf16.probs - fp32.probs).max() < 2e-2


def test_iter_predict_is_a_job_started_progress_then_the_result():
    events = list(drive(predictor(Pointwise(), tile_size=32, batch_size=2).iter_predict(_rgb(90, 90))))
    assert isinstance(events[0], Started) and events[0].job == "predict"
    assert isinstance(events[-1], Result) and events[-1].value.probs.shape == (1, 90, 90)
    progress = events[1:-1]
    assert all(isinstance(e, Progress) and e.stage == "tiles" for e in progress) and len(progress) > 2
    assert [e.done for e in progress] == list(range(1, len(progress) + 1))
    assert {e.total for e in progress} == {len(progress)} == {events[0].total}


def test_cancel_stops_within_one_batch():
    token = CancelToken()

    class CancelsOnSecondCall(Pointwise):
        def forward(self, x):
            out = super().forward(x)
            if self.calls == 2:
                token.set()
            return out

    net = CancelsOnSecondCall()
    p = predictor(net, tile_size=32, batch_size=2)
    events = list(p.iter_predict(_rgb(120, 120), cancel=token))  # a cancel is yielded, never raised
    assert isinstance(events[-1], Cancelled) and events[-1].done == 2 and events[-1].total > 4
    assert net.calls == 2 and not any(isinstance(e, Result) for e in events)
    net.calls = 0
    with pytest.raises(Cancelled, match="after 0 of"):
        p.predict(_rgb(120, 120), cancel=token)  # already set: nothing runs
    assert net.calls == 0


def test_bad_options_are_clear_errors():
    with pytest.raises(InferenceError, match="valid: auto, fp32, bf16, fp16"):
        predictor(Pointwise(), precision="fp8")
    with pytest.raises(InferenceError, match="multiple of the model's stride 16"):
        predictor(Pointwise(), tile_size=40)
    with pytest.raises(InferenceError, match="cannot predict with float: give a Checkpoint"):
        Predictor(3.0, device="cpu")
    with pytest.raises(InferenceError, match=r"threshold must be in \(0, 1\)"):
        predictor(Pointwise(), threshold=1.5)
