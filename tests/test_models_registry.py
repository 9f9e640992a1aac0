"""Every registered architecture builds, runs forward and backward, for binary, multiclass and multilabel tasks."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import MedsegError, UnknownNameError
from medseg.models import create_model, list_architectures, list_encoders, model_stride
from medseg.models.aux_head import presence_targets
from medseg.models.spec import ModelSpec

OWN = ("ResAttUNet", "DilatedUNet", "PlainUNet")
SMP_NAMES = (
    "Unet",
    "UnetPlusPlus",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "Linknet",
    "MAnet",
    "PAN",
    "UPerNet",
    "Segformer",
    "DPT",
)
TASK_CLASSES = {"binary": 1, "multiclass": 3, "multilabel": 2}
# narrow decoders keep the sweep fast on a shared CPU; every part of each decoder is still there
NARROW = {
    "UnetPlusPlus": {"decoder_channels": [16, 8, 8]},
    "MAnet": {"decoder_pab_channels": 8},
    "FPN": {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32},
    "PSPNet": {"psp_out_channels": 32},
    "DeepLabV3": {"decoder_channels": 32},
    "DeepLabV3Plus": {"decoder_channels": 32},
    "PAN": {"decoder_channels": 16},
    "UPerNet": {"decoder_channels": 32},
    "Segformer": {"decoder_segmentation_channels": 32},
}


def tiny_spec(arch: str, task: str = "multiclass", in_channels: int = 3, aux: bool = False) -> ModelSpec:
    """The smallest configuration of ``arch`` that still has every part (fast on 2 CPU cores)."""
    if arch in OWN:
        encoder, kwargs = "none", {"depth": 3, "base_channels": 8}
    elif arch == "DPT":  # DPT needs a timm ViT; timm's test_vit is tiny
        encoder, kwargs = (
            "tu-test_vit",
            {"decoder_intermediate_channels": [8, 16, 32, 32], "decoder_fusion_channels": 16},
        )
    else:
        encoder, kwargs = "resnet18", {"encoder_depth": 3, **NARROW.get(arch, {})}
    return ModelSpec(
        arch, encoder, in_channels=in_channels, classes=TASK_CLASSES[task], task=task, aux=aux, kwargs=kwargs
    )


def _targets(task: str, classes: int, shape: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    if task == "multiclass":
        return torch.randint(0, classes, (2, *shape), generator=gen)
    # multilabel channels overlap freely: independent random masks
    return (torch.rand(2, classes, *shape, generator=gen) > 0.5).float()


def _loss(task: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task == "multiclass":
        return F.cross_entropy(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def _train_step(spec: ModelSpec, size: tuple[int, int] = (64, 64)) -> nn.Module:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = create_model(spec).train()
    x = torch.randn(2, spec.in_channels, *size, generator=gen)
    logits = model(x)
    assert logits.shape == (2, spec.classes, *size)
    assert torch.isfinite(logits).all()
    target = _targets(spec.task, spec.classes, size, gen)
    loss = _loss(spec.task, logits, target)
    if spec.aux:
        assert model.last_aux is not None and model.last_aux.shape == (2, spec.classes)
        loss = loss + 0.3 * F.binary_cross_entropy_with_logits(
            model.last_aux, presence_targets(target, spec.task, spec.classes)
        )
    else:
        assert model.last_aux is None
    loss.backward()
    conv = _first_conv(model)
    assert conv.in_channels == spec.in_channels
    assert conv.weight.grad is not None
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0
    return model


def test_registry_lists_smp_and_own_architectures():
    names = list_architectures()
    assert set(SMP_NAMES) | set(OWN) <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("arch", list_architectures())
def test_every_architecture_trains_one_step(arch):
    """All architectures x one task (multiclass, the aux head on, which also exercises smp's aux_params)."""
    model = _train_step(tiny_spec(arch, "multiclass", aux=True))
    assert sum(p.grad is not None for p in model.parameters()) > 0


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("arch", ["Unet", "ResAttUNet"])
def test_every_task_trains_one_step(arch, task):
    """One smp and one own architecture x every task, grey input, no aux head."""
    spec = tiny_spec(arch, task, in_channels=1)
    model = _train_step(spec)
    head = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == spec.classes][-1]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0  # the loss reaches the output layer


def test_pspnet_aux_head_is_smp_classification_head():
    spec = ModelSpec(
        "PSPNet", "resnet18", classes=2, task="multilabel", aux=True, kwargs={"encoder_depth": 3, "aux_dropout": 0.3}
    )
    model = _train_step(spec)
    assert isinstance(model, smp.PSPNet)
    assert model.classification_head is not None
    assert model.classification_head[2].p == 0.3  # smp's head: pool, flatten, dropout, linear
    assert model.classification_head[-2].weight.grad.abs().sum() > 0  # the 0.3 aux loss reaches it
    plain = create_model(ModelSpec("PSPNet", "resnet18", kwargs={"encoder_depth": 3}))
    assert plain.classification_head is None


def test_outputs_are_logits_not_probabilities():
    """A strongly negative output bias must give negative outputs: no sigmoid/softmax inside the model."""
    for arch, head in (("Unet", lambda m: m.segmentation_head[0]), ("PlainUNet", lambda m: m.head)):
        model = create_model(tiny_spec(arch, "binary")).eval()
        with torch.no_grad():
            head(model).bias.fill_(-50.0)
            y = model(torch.randn(2, 3, 64, 64))
        assert (y < -10).all()
    with pytest.raises(ValueError, match="logits"):
        create_model(ModelSpec("Unet", "resnet18", kwargs={"activation": "sigmoid"}))


def test_smp_models_keep_smp_state_dict_keys():
    spec = ModelSpec("Unet", "resnet18", classes=2, task="multiclass", kwargs={"encoder_depth": 3})
    ours = create_model(spec)
    theirs = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(64, 32, 16), classes=2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())  # a plain smp checkpoint loads as it is


def test_names_are_case_insensitive():
    model = create_model(ModelSpec("deeplabv3PLUS", "resnet18", kwargs={"encoder_depth": 3}))
    assert isinstance(model, smp.DeepLabV3Plus)
    assert model.spec.arch == "DeepLabV3Plus"
    assert isinstance(create_model(ModelSpec("plainunet", "none", kwargs={"depth": 2, "base_channels": 4})), nn.Module)


@pytest.mark.parametrize(
    "spec,stride",
    [
        (ModelSpec("Unet", "resnet18"), 32),
        (ModelSpec("Unet", "resnet18", kwargs={"encoder_depth": 3}), 8),
        (ModelSpec("PSPNet", "resnet18"), 8),
        (ModelSpec("DeepLabV3Plus", "resnet18"), 16),
        (ModelSpec("FPN", "resnet18", kwargs={"encoder_depth": 4}), 16),
        (tiny_spec("DPT"), 32),
        (ModelSpec("PlainUNet", "none", kwargs={"depth": 2, "base_channels": 4}), 4),
        (ModelSpec("ResAttUNet", "none", kwargs={"depth": 3, "base_channels": 4}), 8),
        (ModelSpec("DilatedUNet", "none", kwargs={"base_channels": 4}), 16),
    ],
)
def test_model_stride_inputs_work(spec, stride):
    assert model_stride(spec) == stride
    model = create_model(spec).eval()
    size = (stride * max(1, 64 // stride), stride * max(1, 64 // stride) + stride)  # non-square multiples
    with torch.no_grad():
        assert model(torch.randn(1, spec.in_channels, *size)).shape == (1, spec.classes, *size)


def test_unknown_architecture_lists_close_matches_first():
    with pytest.raises(UnknownNameError) as info:
        create_model(ModelSpec("UnetPlusPluss", "resnet18"))
    err = info.value
    assert isinstance(err, MedsegError) and isinstance(err, ValueError)
    assert err.suggestions[0] == "UnetPlusPlus"
    msg = str(err)
    assert "'UnetPlusPluss'" in msg
    assert msg.index("UnetPlusPlus'") < msg.index("Other valid names:")
    for name in ("Segformer", "PlainUNet", "DPT"):
        assert name in msg


@pytest.mark.parametrize(
    "encoder,close",
    [
        ("resnet35", "resnet34"),
        ("densenet122", "densenet121"),
        ("tu-resnt18", "tu-resnet18"),
        ("tu-resnet18.nope", "tu-resnet18."),
    ],
)
def test_unknown_encoder_names_valid_ones(encoder, close):
    with pytest.raises(UnknownNameError) as info:
        create_model(ModelSpec("Unet", encoder))
    assert any(s.startswith(close) for s in info.value.suggestions)
    assert encoder in str(info.value)
    with pytest.raises(UnknownNameError):
        model_stride(ModelSpec("Unet", encoder))


def test_timm_encoders_with_tag_build():
    spec = ModelSpec("Unet", "tu-resnet18.a1_in1k", kwargs={"encoder_depth": 3})
    assert model_stride(spec) == 8
    _train_step(spec)


def test_unknown_own_option_is_named():
    with pytest.raises(UnknownNameError, match="did you mean 'depth'"):
        create_model(ModelSpec("PlainUNet", "none", kwargs={"deph": 3}))


def test_list_encoders():
    names = list_encoders()
    assert {"resnet34", "resnet50", "efficientnet-b0", "densenet121"} <= set(names)
    assert not any(n.startswith("tu-") for n in names)
    assert "tu-convnext_tiny" in list_encoders(include_timm=True)


def test_presence_targets():
    y = torch.zeros(2, 4, 4, dtype=torch.long)
    y[0, 0, 0] = 2
    y[1] = 255  # an ignore index counts for nothing
    torch.testing.assert_close(presence_targets(y, "multiclass", 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(presence_targets((y == 2).float()[:, None], "binary", 1), torch.tensor([[1.0], [0.0]]))
    ml = torch.zeros(2, 2, 4, 4)
    ml[1, :, 1, 1] = 1  # overlapping classes
    torch.testing.assert_close(presence_targets(ml, "multilabel", 2), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
