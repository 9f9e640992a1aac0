"""Seed 000's blocks: shapes at odd sizes, gradients to every parameter, attention values in [0, 1]."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.models.blocks import ASPP, CBAM, AttentionGate, DoubleConv, ResidualBlock


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _assert_all_params_get_gradient(module: nn.Module, out: torch.Tensor) -> None:
    # a random projection of the output: a plain sum would cancel through BatchNorm
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("cin,cout", [(3, 8), (8, 8)])
@pytest.mark.parametrize("dilation", [1, 3])
def test_residual_block_shape_and_gradients(cin, cout, dilation):
    block = ResidualBlock(cin, cout, dilation=dilation)
    x = torch.randn(2, cin, 17, 23)
    out = block(x)
    assert out.shape == (2, cout, 17, 23)
    assert (out >= 0).all()  # ends in a ReLU
    assert isinstance(block.shortcut, nn.Identity) == (cin == cout)
    _assert_all_params_get_gradient(block, out)


def test_residual_block_dilation_widens_receptive_field():
    plain, dilated = ResidualBlock(1, 1), ResidualBlock(1, 1, dilation=4)
    for block in (plain, dilated):
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1.0)
        block.eval()
    x = torch.zeros(1, 1, 33, 33)
    x[..., 16, 16] = 1.0
    reach = []
    for b in (plain, dilated):
        hit = torch.nonzero((b(x) - b(torch.zeros_like(x)))[0, 0, 16].abs() > 0).flatten()
        reach.append(int(hit.max() - hit.min()) + 1)
    assert reach == [5, 17]  # two 3x3 convs reach 2 pixels each side; dilated by 4, 8 each side


def test_double_conv_shape():
    assert DoubleConv(3, 5)(torch.randn(2, 3, 9, 11)).shape == (2, 5, 9, 11)


@pytest.mark.parametrize("size", [(7, 9), (13, 11), (8, 8)])
def test_aspp_shape_for_odd_sizes_and_gradients(size):
    aspp = ASPP(6, 10, rates=(1, 6, 12, 18))
    # the pooling branch ends in a ReLU: a random init can leave all its units off for a small
    # batch, and then no gradient reaches its bias whatever the wiring; start them on
    nn.init.constant_(aspp.pool[1].bias, 0.5)
    aspp.project[1].p = 0.0  # and no dropped channel hides a branch
    assert len(aspp.branches) == 4
    dilations = [m.dilation for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dilations == [(6, 6), (12, 12), (18, 18)]
    out = aspp(torch.randn(2, 6, *size))
    assert out.shape == (2, 10, *size)
    _assert_all_params_get_gradient(aspp, out)


def test_aspp_trains_with_a_batch_of_one():
    aspp = ASPP(4, 4, rates=(1, 2)).train()
    out = aspp(torch.randn(1, 4, 5, 5))
    assert out.shape == (1, 4, 5, 5) and torch.isfinite(out).all()


def test_aspp_rejects_bad_rates():
    with pytest.raises(ValueError, match="rates"):
        ASPP(4, 4, rates=(0, 6))


@pytest.mark.parametrize("channels", [1, 8, 32])
def test_cbam_gates_in_unit_interval_and_gradients(channels):
    cbam = CBAM(channels)
    x = torch.randn(2, channels, 15, 21)
    out = cbam(x)
    assert out.shape == x.shape
    # channel and spatial gates are sigmoids: out = x * a * b with a, b in [0, 1]
    assert (out * x >= 0).all()
    assert (out.abs() <= x.abs() + 1e-6).all()
    assert not torch.allclose(out, x)  # it does gate
    _assert_all_params_get_gradient(cbam, out)


def test_cbam_zero_input_stays_finite():
    cbam = CBAM(8)
    for mode in (cbam.train, cbam.eval):
        mode()
        out = cbam(torch.zeros(2, 8, 9, 9))
        assert torch.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize("x_size,g_size", [((17, 23), (9, 12)), ((16, 16), (8, 8)), ((10, 10), (10, 10))])
def test_attention_gate_coefficients_and_lower_resolution_gating(x_size, g_size):
    gate = AttentionGate(skip_channels=6, gate_channels=12)
    x, g = torch.randn(2, 6, *x_size), torch.randn(2, 12, *g_size)
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (2, 1, *x_size)
    assert (alpha >= 0).all() and (alpha <= 1).all()
    assert alpha.std() > 0  # spatially varying, not a constant
    out = gate(x, g)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x * gate.coefficients(x, g))
    _assert_all_params_get_gradient(gate, out)


def test_attention_gate_depends_on_the_gating_signal():
    gate = AttentionGate(4, 8).eval()
    x = torch.randn(1, 4, 16, 16)
    a1 = gate.coefficients(x, torch.randn(1, 8, 8, 8))
    a2 = gate.coefficients(x, torch.randn(1, 8, 8, 8))
    assert not torch.allclose(a1, a2)
