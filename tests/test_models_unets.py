"""The own U-Nets: shapes at every depth, the parts each is made of, ablation switches, aux head, dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.models import create_model, model_stride
from medseg.models.blocks import ASPP, CBAM, AttentionGate, ResidualBlock
from medseg.models.spec import ModelSpec
from medseg.models.unets import DilatedUNet, PlainUNet, ResAttUNet


def _spec(arch: str, **kwargs) -> ModelSpec:
    return ModelSpec(
        arch,
        "none",
        in_channels=kwargs.pop("in_channels", 3),
        classes=kwargs.pop("classes", 2),
        task="multiclass",
        aux=kwargs.pop("aux", False),
        kwargs={"base_channels": 4, **kwargs},
    )


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("arch", ["ResAttUNet", "DilatedUNet", "PlainUNet"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_shapes_for_any_multiple_of_the_stride(arch, depth):
    spec = _spec(arch, depth=depth, in_channels=1, classes=3)
    stride = model_stride(spec)
    model = create_model(spec).eval()
    assert stride == 2**depth == model.stride
    for h, w in [(stride, 3 * stride), (5 * stride, 2 * stride)]:
        with torch.no_grad():
            assert model(torch.randn(1, 1, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("arch", ["ResAttUNet", "DilatedUNet", "PlainUNet"])
def test_aux_head_on_the_bottleneck(arch):
    model = create_model(_spec(arch, depth=2, aux=True, classes=4))
    y = model(torch.randn(2, 3, 16, 16))
    assert y.shape == (2, 4, 16, 16)
    assert model.last_aux.shape == (2, 4)
    model.last_aux.sum().backward()
    assert model.encoder[-1].parameters().__next__().grad.abs().sum() > 0  # it reads the bottleneck
    assert create_model(_spec(arch, depth=2)).aux_head is None


def test_res_att_unet_has_every_part():
    depth = 3
    model = ResAttUNet(3, 2, depth=depth, base_channels=4)
    assert _count(model, CBAM) == depth  # one per encoder stage, not on the bridge
    assert _count(model, ASPP) == 1
    assert _count(model, AttentionGate) == depth  # one per skip connection
    assert _count(model, ResidualBlock) == 2 * depth + 1  # encoder stages, bridge, decoder stages
    aspp = next(m for m in model.modules() if isinstance(m, ASPP))
    rates = [m.dilation[0] for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert rates == [6, 12, 18]
    assert next(m for m in model.encoder[-1].modules() if isinstance(m, nn.Conv2d)).out_channels == 4 * 2**depth


@pytest.mark.parametrize(
    "switch,kind", [("cbam", CBAM), ("aspp", ASPP), ("attention_gates", AttentionGate), ("residual", ResidualBlock)]
)
def test_res_att_unet_ablations(switch, kind):
    spec = _spec("ResAttUNet", depth=2, **{switch: False})
    model = create_model(spec)
    assert _count(model, kind) == 0
    y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 2, 32, 32)
    y.mean().backward()


def test_res_att_unet_gates_change_the_output():
    torch.manual_seed(0)
    gated = ResAttUNet(3, 1, depth=2, base_channels=4).eval()
    torch.manual_seed(0)
    plain = ResAttUNet(3, 1, depth=2, base_channels=4, attention_gates=False).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gates.")})
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(gated(x), plain(x))


def test_dilated_unet_keeps_resolution_in_its_dilated_stage():
    depth = 3
    model = DilatedUNet(3, 1, depth=depth, base_channels=4, dilations=(2, 4)).eval()
    sizes = []
    hooks = [stage.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for stage in model.encoder]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert sizes == [(64, 64), (32, 32), (16, 16), (8, 8), (8, 8)]  # the last stage dilates instead of pooling
    dilated = [m.dilation[0] for m in model.encoder[-1].modules() if isinstance(m, nn.Conv2d) and m.dilation[0] > 1]
    assert sorted(set(dilated)) == [2, 4]
    assert all(m.dilation == (1, 1) for s in model.encoder[:-1] for m in s.modules() if isinstance(m, nn.Conv2d))
    assert len(model.lateral) == depth + 2  # every stage feeds the simplified decoder


def test_dilated_unet_rejects_bad_dilations():
    with pytest.raises(ValueError, match="dilations"):
        DilatedUNet(3, 1, dilations=())


def test_plain_unet_follows_seed_003():
    depth = 3
    model = PlainUNet(3, 1, depth=depth, base_channels=4)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(d.p == 0.2 for d in drops)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == depth and all(u.stride == (2, 2) for u in ups)
    assert _count(model, nn.BatchNorm2d) == 2 * (2 * depth + 1)  # two conv-BN-ReLU per block
    assert model.head.kernel_size == (1, 1)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))  # dropout is active in training
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


def test_widths_follow_base_channels():
    for cls in (PlainUNet, ResAttUNet, DilatedUNet):
        small = sum(p.numel() for p in cls(3, 1, depth=2, base_channels=4).parameters())
        large = sum(p.numel() for p in cls(3, 1, depth=2, base_channels=8).parameters())
        assert large > 1.5 * small


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="depth"):
        create_model(_spec("PlainUNet", depth=0))
    with pytest.raises(ValueError, match="depth"):
        model_stride(_spec("ResAttUNet", depth=0))
