"""End to end: a saved checkpoint, loaded and run by the Predictor on a real and a generated image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.datasets.classmap import ClassMap
from medseg.errors import MedsegError
from medseg.inference import Predictor
from medseg.io import load
from medseg.models.spec import ModelSpec, Preprocessing

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def tiny_spec(task: str = "binary", classes: int = 1) -> ModelSpec:
    return ModelSpec(
        arch="Unet",
        encoder="resnet18",
        classes=classes,
        task=task,
        kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
    )


def build(spec: ModelSpec) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.create_model(
        spec.arch,
        encoder_name=spec.encoder,
        encoder_weights=None,
        in_channels=spec.in_channels,
        classes=spec.classes,
        **spec.kwargs,
    ).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from medseg.models import save_checkpoint

    spec = tiny_spec()
    model = build(spec)
    prep = Preprocessing(channels=3, input_size=[128, 128], divisible_by=8, **IMAGENET)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, spec, ClassMap.binary("polyp"), prep)
    return path, model


def _check(pred, shape):
    assert pred.labels.shape == shape and pred.labels.dtype == np.uint8
    assert pred.probs.shape == (1, *shape) and pred.probs.dtype == np.float32
    assert np.all((pred.probs >= 0) & (pred.probs <= 1))
    assert pred.uncertainty.shape == shape and pred.uncertainty.dtype == np.float32


def test_checkpoint_on_a_real_cvc_frame(saved, cvc_dir):
    from medseg.models import load_checkpoint

    path, model = saved
    image = load(cvc_dir / "images" / "1.png")
    h, w = image.array.shape[:2]
    p = Predictor(load_checkpoint(path), device="cpu", batch_size=4)
    assert p.tile == (128, 128) and p.folded == [True]
    pred = p.predict(image)
    _check(pred, (h, w))
    assert pred.meta["tiles"] > 1 and not pred.meta["whole_image"]
    # whole-image inference of the in-memory model agrees away from the image border
    # (a network with zero padding sees different context at tile edges, so not exact)
    whole = Predictor.from_model(
        model,
        tiny_spec(),
        ClassMap.binary("polyp"),
        Preprocessing(channels=3, divisible_by=8, **IMAGENET),
        device="cpu",
        tile_size=(-(-h // 8) * 8, -(-w // 8) * 8),
    ).predict(image)
    assert whole.meta["whole_image"]
    # (measured: median 0.006 here, while a flipped or constant output is off by 0.03-0.06)
    assert np.median(np.abs(whole.probs - pred.probs)) < 0.015


def test_checkpoint_path_on_a_generated_300x250_image(saved):
    path, _ = saved
    rgb = np.random.default_rng(0).integers(0, 256, (250, 300, 3), dtype=np.uint8)
    pred = Predictor(str(path), device="cpu", tta=("hflip",)).predict(rgb)
    _check(pred, (250, 300))
    assert pred.variance is not None and pred.variance.shape == (250, 300)
    assert pred.meta["members"] == 2


def test_ensemble_of_the_same_checkpoint_twice_equals_once(saved):
    from medseg.models import load_checkpoint

    path, _ = saved
    rgb = np.random.default_rng(1).integers(0, 256, (60, 50, 3), dtype=np.uint8)
    ckpt = load_checkpoint(path)
    one = Predictor(ckpt, device="cpu").predict(rgb)
    two = Predictor([ckpt, ckpt], device="cpu").predict(rgb)
    np.testing.assert_allclose(two.probs, one.probs, atol=1e-6)
    assert float(two.variance.max()) < 1e-12


def test_missing_checkpoint_path_is_a_medseg_error(tmp_path):
    with pytest.raises(MedsegError, match="nothing.medseg"):
        Predictor(str(tmp_path / "nothing.medseg"), device="cpu")
