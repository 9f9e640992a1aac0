"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

from medseg.errors import InferenceError, MedsegError
from medseg.inference.device import (
    available_devices,
    inference_context,
    prepare_model,
    resolve_device,
    resolve_precision,
)


def test_auto_picks_cuda_then_mps_then_cpu():
    dev = resolve_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert available_devices()[-1] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_missing_cuda_is_a_clear_error(name):
    with pytest.raises(InferenceError, match=rf"device '{name}' asked for but CUDA is not available.*cpu"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() > 7, reason="has 8 GPUs")
def test_missing_cuda_index_is_a_clear_error():
    with pytest.raises(MedsegError, match="cuda:7"):
        resolve_device("cuda:7")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_missing_mps_is_a_clear_error():
    with pytest.raises(InferenceError, match="Apple MPS is not available"):
        resolve_device("mps")


def test_unknown_device_lists_valid_names():
    with pytest.raises(InferenceError, match="unknown device 'gpu0'; valid: auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu0")
    with pytest.raises(InferenceError, match="unsupported device type 'meta'"):
        resolve_device("meta")


def test_precision_auto_is_fp32_on_cpu_and_explicit_choices_are_kept():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("FP16", cpu) == "fp16"
    with pytest.raises(InferenceError, match="unknown precision 'half'"):
        resolve_precision("half", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_precision_auto_on_cuda_is_reduced():
    assert resolve_precision("auto", torch.device("cuda")) in ("bf16", "fp16")


def test_inference_context_autocasts_only_reduced_precision():
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    cpu = torch.device("cpu")
    with inference_context(cpu, "fp32"):
        y = lin(x)
        assert torch.is_inference_mode_enabled()
    assert y.dtype == torch.float32
    with inference_context(cpu, "bf16"):
        assert lin(x).dtype == torch.bfloat16


def test_prepare_model_sets_eval_and_channels_last_when_asked():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout())
    net.train()
    prepare_model(net, torch.device("cpu"))
    assert not net.training and net[0].weight.is_contiguous()
    prepare_model(net, torch.device("cpu"), channels_last=True)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
