"""A checkpoint trained on resized whole images is predicted at that scale, and the result at the image's own size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _inference_nets import ZeroPadConv, predictor
from _train_run import make_dataset, tiny_config

from medseg.errors import InferenceError
from medseg.inference import Predictor
from medseg.io.resize import resize_image
from medseg.jobs import Result
from medseg.models.checkpoint import load_checkpoint
from medseg.models.spec import Preprocessing
from medseg.training import Trainer


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
    img[h // 4 : h // 2, w // 3 : w // 2] = 220
    return img


def test_resized_model_sees_the_training_scale_and_returns_native_size():
    prep = Preprocessing(input_size=[32, 32], divisible_by=16, resize=True)
    p = predictor(ZeroPadConv(), prep=prep, pad_border=False)
    image = _image(48, 80)
    pred = p.predict(image)
    assert pred.labels.shape == (48, 80) and pred.probs.shape == (1, 48, 80)
    assert pred.meta["resized_to"] == [32, 32] and pred.meta["whole_image"]

    # by hand: resize as training did, run the net, resize the probabilities back bilinearly
    x = resize_image(image.astype(np.float32) / 255, (32, 32))
    with torch.no_grad():
        logits = ZeroPadConv()(torch.from_numpy(np.moveaxis(x, -1, 0))[None])
    expected = torch.nn.functional.interpolate(
        torch.sigmoid(logits), size=(48, 80), mode="bilinear", align_corners=False
    )[0].numpy()
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)


def test_native_scale_model_is_not_resized():
    p = predictor(ZeroPadConv(), prep=Preprocessing(input_size=[32, 32], divisible_by=16), pad_border=False)
    pred = p.predict(_image(48, 80))
    assert pred.meta["resized_to"] is None and not pred.meta["whole_image"]


def test_ensemble_of_different_training_scales_is_refused():
    from _inference_nets import task_classmap

    from medseg.models.spec import ModelSpec

    cm = task_classmap("binary")
    spec = ModelSpec(arch="test", encoder="none", in_channels=3, classes=1, task="binary")
    a = (ZeroPadConv(), spec, cm, Preprocessing(input_size=[32, 32], divisible_by=16, resize=True))
    b = (ZeroPadConv(), spec, cm, Preprocessing(input_size=[64, 64], divisible_by=16, resize=True))
    with pytest.raises(InferenceError, match="resized to different sizes"):
        Predictor([a, b], device="cpu")


def test_trainer_records_resize_and_predictor_follows_it(tmp_path):
    data = make_dataset(tmp_path / "data", n=6, size=48)
    events = list(Trainer(tiny_config(data, tmp_path / "run", epochs=1)).run())
    assert isinstance(events[-1], Result)
    ckpt = load_checkpoint(events[-1].value.last_checkpoint)
    assert ckpt.preprocessing.resize and ckpt.preprocessing.input_size == [32, 32]
    pred = Predictor(ckpt, device="cpu").predict(_image(48, 48))
    assert pred.labels.shape == (48, 48) and pred.meta["resized_to"] == [32, 32]
