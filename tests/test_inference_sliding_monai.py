"""The batched sliding window against MONAI's ``sliding_window_inference``: equal output at any tile batch,
balanced batches, and the same through the Predictor (BatchNorm folded, its backend) as MONAI over the eager model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _inference_nets import ZeroPadConv

from medseg.datasets.classmap import ClassMap
from medseg.inference import Predictor, plan_tiles, sliding_window_inference
from medseg.inference.preprocess import model_input
from medseg.inference.sliding import iter_sliding_window, tile_batches
from medseg.models import create_model, save_checkpoint
from medseg.models.spec import ModelSpec, Preprocessing

monai_inferers = pytest.importorskip("monai.inferers")


def _image(b, h, w, c=3, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((b, c, h, w), dtype=np.float32))


@pytest.mark.parametrize(
    "shape, tile, overlap, mode, batch",
    [
        ((1, 200, 170), (64, 64), 0.25, "gaussian", 4),
        ((1, 200, 170), (64, 64), 0.25, "constant", 1),
        ((2, 131, 250), (64, 32), 0.5, "gaussian", 3),  # two images, non-square tiles
        ((1, 96, 300), (64, 64), 0.0, "gaussian", 64),  # no overlap; every window in one batch
        ((1, 150, 150), (48, 48), 0.75, "constant", 5),
    ],
)
def test_equals_monai_at_any_tile_batch(shape, tile, overlap, mode, batch):
    # a zero-padded net sees each window's own border, so a window placed or weighted differently shows
    net = ZeroPadConv(classes=3).eval()
    x = _image(*shape)
    with torch.inference_mode():
        ours = sliding_window_inference(
            x, net, tile=tile, overlap=overlap, blend=mode, batch_size=batch, stride=16, pad_border=False
        )
        for theirs_batch in (1, batch):
            theirs = monai_inferers.sliding_window_inference(x, tile, theirs_batch, net, overlap=overlap, mode=mode)
            assert ours.shape == theirs.shape == (shape[0], 3, *shape[1:])
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("windows, cap", [(9, 4), (16, 4), (1, 8), (7, 1), (10, 3), (5, 64), (100, 7)])
def test_tile_batches_are_balanced(windows, cap):
    sizes = tile_batches(windows, cap)
    assert sum(sizes) == windows
    assert len(sizes) == -(-windows // cap)  # as many forwards as full batches would take
    assert max(sizes) <= cap and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


def test_the_window_function_sees_balanced_batches_of_every_image():
    seen = []

    def fn(t):
        seen.append(t.shape[0])
        return t[:, :1] * 2

    x = _image(2, 100, 100)  # 16 px stride, 48 px tiles, overlap 0.25: 3 x 3 windows after no border padding
    plan = plan_tiles(100, 100, 48, 0.25, 16, pad_border=False)
    assert len(plan.windows) == 9
    gen = iter_sliding_window(x, fn, 48, 0.25, "gaussian", 4, 16, False)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    assert seen == [3 * 2, 3 * 2, 3 * 2]  # 3, 3, 3 windows of both images; not 4, 4, 1
    assert events == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(out.numpy(), 2 * x[:, :1].numpy(), atol=1e-6)


def test_the_tile_batch_does_not_change_the_output():
    net = ZeroPadConv().eval()
    x = _image(1, 220, 190)
    with torch.inference_mode():
        outs = [
            sliding_window_inference(x, net, tile=64, overlap=0.5, batch_size=n, stride=16, pad_border=False)
            for n in (1, 2, 4, 7, 100)
        ]
    for out in outs[1:]:
        np.testing.assert_allclose(out.numpy(), outs[0].numpy(), atol=1e-6, rtol=0)


def test_predictor_sliding_window_equals_monai_over_the_eager_model(tmp_path):
    # the path the Predictor runs (BatchNorm folded, its backend for a checkpoint, batched balanced tiles)
    # against what a MONAI user writes: the eager network from the same checkpoint, one window at a time
    torch.manual_seed(3)
    spec = ModelSpec(arch="PlainUNet", in_channels=3, classes=1, kwargs={"depth": 2, "base_channels": 8})
    model = create_model(spec, load_weights=False)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(30)  # random init predicts about 0.45 everywhere; spread it so a misplaced window shows
    prep = Preprocessing(channels=3, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], input_size=[64, 64], divisible_by=4)
    ckpt = save_checkpoint(tmp_path / "net", model, spec, ClassMap.binary(), prep)
    yy, xx = np.mgrid[0:150, 0:190] / 40.0
    rgb = np.stack([np.sin(3 * yy + xx), np.cos(2 * xx - yy), np.sin(yy * xx)], -1)
    image = np.clip(127 + 100 * rgb + np.random.default_rng(1).normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    predictor = Predictor(ckpt, device="cpu", overlap=0.25, blend="gaussian", batch_size=4, pad_border=False)
    assert predictor.tile == (64, 64)
    pred = predictor.predict(image)
    assert pred.meta["tiles"] == 3 * 4 and pred.meta["batches"] == 3

    model.eval()
    x = torch.from_numpy(model_input(image, prep)[0])[None]
    with torch.inference_mode():
        theirs = monai_inferers.sliding_window_inference(
            x, (64, 64), 1, lambda t: torch.sigmoid(model(t)), 0.25, mode="gaussian"
        )
    assert float(theirs.std()) > 0.05  # a real map, not a constant both sides could agree on
    np.testing.assert_allclose(pred.probs, theirs[0].numpy(), atol=1e-4, rtol=0)
