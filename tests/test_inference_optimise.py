"""BatchNorm folding: same outputs, the caller's model untouched, untraceable models left alone."""

from __future__ import annotations

import torch
from torch import nn

from medseg.inference.optimise import fold_batchnorm


def _conv_bn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with torch.no_grad():  # running statistics far from the identity, so folding must do real work
        net[1].running_mean.uniform_(-2, 2)
        net[1].running_var.uniform_(0.1, 4)
        net[1].weight.uniform_(0.5, 2)
        net[1].bias.uniform_(-1, 1)
    return net.eval()


def test_folding_keeps_outputs_and_leaves_the_original():
    net = _conv_bn()
    x = torch.rand(2, 3, 20, 24)
    folded, ok = fold_batchnorm(net, torch.rand(1, 3, 16, 16))
    assert ok and folded is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(net[1], nn.BatchNorm2d)  # the caller's model still has its BN
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


def test_untraceable_or_training_or_bn_free_models_are_returned_as_they_are():
    class ValueBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _conv_bn()

        def forward(self, x):
            y = self.body(x)
            return y if float(y.mean()) > 0 else -y  # control flow on a value: torch.fx cannot trace it

    probe = torch.rand(1, 3, 16, 16)
    m = ValueBranch().eval()
    assert fold_batchnorm(m, probe) == (m, False)
    train = _conv_bn().train()
    assert fold_batchnorm(train, probe) == (train, False)
    plain = nn.Conv2d(3, 1, 1).eval()
    assert fold_batchnorm(plain, probe) == (plain, False)
