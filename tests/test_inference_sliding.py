"""Sliding-window inference: window placement, mirror padding, blending, equality with whole-image inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _inference_nets import Pointwise, SymmetricBlur, ZeroPadConv

from medseg.errors import InferenceError
from medseg.inference import blend_weights, plan_tiles, sliding_window_inference
from medseg.inference.sliding import iter_sliding_window, mirror_pad, window_starts


def _image(h, w, c=3, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((1, c, h, w), dtype=np.float32))


@pytest.mark.parametrize("blend", ["gaussian", "linear", "constant"])
def test_tiles_equal_whole_image_for_a_pointwise_model(blend):
    net = Pointwise().eval()
    x = _image(97, 131)
    with torch.inference_mode():
        whole = net(x)
        tiled = sliding_window_inference(x, net, tile=32, overlap=0.5, blend=blend, batch_size=3, stride=16)
    assert tiled.shape == (1, 1, 97, 131)
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-5, rtol=0)


def test_image_that_fits_is_one_forward_padded_to_the_stride():
    calls = []

    def fn(t):
        calls.append(tuple(t.shape))
        return t[:, :1] * 2

    x = _image(50, 61)
    out = sliding_window_inference(x, fn, tile=64, stride=32)
    assert calls == [(1, 3, 64, 64)]
    torch.testing.assert_close(out, x[:, :1] * 2)  # cropped back exactly onto the image


def test_constant_image_has_no_seams_with_a_conv_net():
    net = SymmetricBlur().eval()
    x = torch.full((1, 3, 150, 170), 0.3)
    with torch.inference_mode():
        whole = net(x)[0, 0, 0, 0].item()
        for blend in ("gaussian", "linear", "constant"):
            out = sliding_window_inference(x, net, tile=48, overlap=0.25, blend=blend, stride=16)
            assert out.shape == (1, 1, 150, 170)
            assert float(out.max() - out.min()) < 1e-5
            assert abs(out[0, 0, 0, 0].item() - whole) < 1e-5


def test_gaussian_blending_hides_tile_borders_better_than_constant():
    # a zero-padded net sees a different border in every tile; the smooth blend should stay
    # closer to the whole-image output than plain averaging does
    net = ZeroPadConv().eval()
    yy, xx = np.mgrid[0:160, 0:160] / 160.0
    x = torch.from_numpy(np.stack([np.sin(6 * yy) * np.cos(5 * xx)] * 3)[None].astype(np.float32))
    with torch.inference_mode():
        whole = net(x)
        err = {
            b: float(
                (sliding_window_inference(x, net, tile=48, overlap=0.5, blend=b, stride=16, pad_border=False) - whole)
                .abs()
                .mean()
            )
            for b in ("gaussian", "constant")
        }
    assert 0 < err["gaussian"] < err["constant"]


@pytest.mark.parametrize(
    "shape", [(1, 1), (5, 7), (33, 200), (97, 131), (64, 64), (1, 50), (50, 1), (1, 700), (700, 1)]
)
def test_any_size_comes_back_with_its_size(shape):
    net = Pointwise().eval()
    x = _image(*shape)
    with torch.inference_mode():
        out = sliding_window_inference(x, net, tile=32, overlap=0.25, stride=16)
        whole = net(x)
    assert out.shape == (1, 1, *shape)
    np.testing.assert_allclose(out.numpy(), whole.numpy(), atol=1e-5)


def test_overlap_tile_border_padding_centres_a_window_on_the_border():
    plan = plan_tiles(100, 300, tile=64, overlap=0.25, stride=32)
    assert plan.cols.before == plan.cols.after == 32
    assert plan.cols.starts[0] == 0  # window centre (32) is original column 0
    assert plan.cols.starts[-1] + 64 == 300 + 64  # the last window reaches the far padded edge
    # rows: 100 -> 128 exceeds the tile too
    assert plan.rows.before == 32 and not plan.whole
    flat = plan_tiles(40, 300, tile=64, overlap=0.25, stride=32)
    assert flat.rows.starts == (0,) and flat.rows.tile == 64 and flat.rows.before + flat.rows.after == 24
    no_pad = plan_tiles(100, 300, tile=64, overlap=0.25, stride=32, pad_border=False)
    assert no_pad.cols.before == 0 and no_pad.cols.starts[-1] == 300 - 64


def test_window_starts_match_monai_placement():
    assert window_starts(1024, 512, 384) == [0, 384, 512]
    assert window_starts(512, 512, 384) == [0]
    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]


@pytest.mark.parametrize("pads", [(3, 2, 1, 4), (9, 12, 7, 30), (0, 0, 0, 0)])
def test_mirror_pad_matches_numpy_reflect_even_beyond_the_image(pads):
    a = np.arange(5 * 6, dtype=np.float32).reshape(1, 1, 5, 6)
    t, b, l, r = pads
    got = mirror_pad(torch.from_numpy(a), t, b, l, r).numpy()
    np.testing.assert_array_equal(got, np.pad(a, ((0, 0), (0, 0), (t, b), (l, r)), mode="reflect"))


@pytest.mark.parametrize("shape, pads", [((1, 6), (16, 16, 16, 16)), ((5, 1), (3, 4, 16, 16)), ((1, 1), (2, 3, 4, 5))])
def test_mirror_pad_of_a_single_row_or_column_pads_both_axes(shape, pads):
    # a 1xN image padded on all sides: the single row was repeated but its columns never padded
    # (the 1xN / Nx1 images crashed the Predictor's window concatenation)
    a = np.arange(np.prod(shape), dtype=np.float32).reshape(1, 1, *shape)
    t, b, l, r = pads
    got = mirror_pad(torch.from_numpy(a), t, b, l, r).numpy()
    assert got.shape == (1, 1, shape[0] + t + b, shape[1] + l + r)
    mode = {0: "edge" if shape[0] == 1 else "reflect", 1: "edge" if shape[1] == 1 else "reflect"}
    expected = np.pad(
        np.pad(a, ((0, 0), (0, 0), (t, b), (0, 0)), mode=mode[0]), ((0, 0), (0, 0), (0, 0), (l, r)), mode=mode[1]
    )
    np.testing.assert_array_equal(got, expected)


def test_blend_weights_shape_and_symmetry():
    g = blend_weights((64, 48), "gaussian")
    assert g.shape == (64, 48) and 0.99 < float(g.max()) <= 1.0 and float(g.min()) >= 1e-3
    torch.testing.assert_close(g, g.flip(0))
    torch.testing.assert_close(g, g.flip(1))
    # sigma = tile / 8 along each axis: one sigma from the centre the weight is exp(-1/2)
    row = blend_weights((1, 64), "gaussian")[0]
    centre = (64 - 1) / 2
    x = np.arange(64) - centre
    np.testing.assert_allclose(row.numpy(), np.maximum(np.exp(-(x**2) / (2 * 8.0**2)), row.min().item()), rtol=1e-5)
    lin = blend_weights((1, 8), "linear")[0]
    assert lin[0] < lin[1] < lin[2] < lin[3] and lin[3] == lin[4] and float(lin[0]) == pytest.approx(1 / 8)
    assert torch.all(blend_weights((16, 16), "constant") == 1)
    with pytest.raises(InferenceError, match="valid: gaussian, linear, constant"):
        blend_weights((8, 8), "cosine")


def test_bad_tile_and_overlap_are_clear_errors():
    with pytest.raises(InferenceError, match="multiple of the model's stride 32"):
        plan_tiles(100, 100, tile=50, stride=32)
    with pytest.raises(InferenceError, match=r"overlap must be in \[0, 1\)"):
        plan_tiles(100, 100, tile=64, overlap=1.0)


def test_model_that_changes_the_size_is_named():
    with pytest.raises(InferenceError, match="must keep the spatial size"):
        sliding_window_inference(_image(40, 40), lambda t: t[..., ::2, ::2], tile=32, stride=16)


def test_generator_reports_each_batch():
    x = _image(100, 100)
    gen = iter_sliding_window(x, lambda t: t[:, :1], tile=32, overlap=0.25, batch_size=5, stride=16)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    n = len(plan_tiles(100, 100, 32, 0.25, 16).windows)
    assert events == [(i, -(-n // 5)) for i in range(1, -(-n // 5) + 1)]
    np.testing.assert_allclose(out.numpy(), x[:, :1].numpy(), atol=1e-6)


def test_matches_monai_sliding_window_inference():
    monai_inferers = pytest.importorskip("monai.inferers")
    net = ZeroPadConv().eval()
    x = _image(200, 170)
    with torch.inference_mode():
        ours = sliding_window_inference(
            x, net, tile=64, overlap=0.25, blend="gaussian", batch_size=4, stride=16, pad_border=False
        )
        theirs = monai_inferers.sliding_window_inference(x, (64, 64), 4, net, overlap=0.25, mode="gaussian")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
