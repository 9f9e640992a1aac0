"""One optimiser step: batch mixing, micro-batches with gradient accumulation, AMP, clipping, OOM recovery.

A loader batch is the *effective* batch (``batch_size * accumulate``
samples). It is mixed as a whole (mixup / cutmix, drawn from a generator
seeded by (seed, global step), so mixing is reproducible and resumable) and
then cut into micro-batches of ``micro_batch`` samples; each micro-batch's
loss is weighted by its share of the batch before ``backward``, so the
accumulated gradient is that of the mean loss over the whole batch for any
loss that is a mean over samples and pixels (BCE, CE, focal; Dice-like losses
pooled over the batch differ slightly between splits).

Out of memory (``torch.OutOfMemoryError`` or a RuntimeError saying "out of
memory"): the gradients are dropped, the CUDA cache emptied, the micro-batch
halved (so twice as many are accumulated: the effective batch and the data
order stay the same) and the step redone from its start. At a micro-batch of
1 there is nothing left to halve and the error propagates.

Mixup follows seed 004: ``lam * L(pred, a) + (1 - lam) * L(pred, b)``, every
term (and the aux term) mixed alike; cutmix pastes targets and distance maps
with the images, so its loss needs no mixing.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from medseg.training.augment import sample_seed
from medseg.training.batch_mix import cutmix, mixup
from medseg.training.config import MixConfig
from medseg.training.events import OOMRecovered
from medseg.training.optim import unwrap

MIX_STREAM = 2**31 - 1  # SeedSequence "epoch" slot of the mixing draws, apart from any real epoch


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


@dataclass
class StepResult:
    loss: float
    terms: dict[str, float]
    lr: float
    images: int
    grad_norm: float | None = None
    oom: list[OOMRecovered] = field(default_factory=list)
    mixed: str | None = None


class StepRunner:
    """Runs optimiser steps for a Trainer; holds the current micro-batch size."""

    def __init__(
        self,
        net: torch.nn.Module,
        loss: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        grad_clip: float | None,
        mix: MixConfig,
        seed: int,
        micro_batch: int,
        dist: Any = None,
    ):
        self.net, self.model, self.loss = net, unwrap(net), loss
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.device, self.amp_dtype, self.grad_clip = device, amp_dtype, grad_clip
        self.mix, self.seed, self.micro_batch, self.dist = mix, int(seed), int(micro_batch), dist
        self.loss_params = [p for p in loss.parameters() if p.requires_grad]
        self.clip_params = [p for p in self.model.parameters() if p.requires_grad] + self.loss_params

    # ------------------------------------------------------------ mixing
    def _mix(self, images: torch.Tensor, targets: dict[str, torch.Tensor], global_step: int):
        m = self.mix
        kinds = [(k, a) for k, a in (("mixup", m.mixup_alpha), ("cutmix", m.cutmix_alpha)) if a > 0]
        if not kinds or images.shape[0] < 2:
            return images, targets, None, 1.0, None
        g = torch.Generator().manual_seed(sample_seed(self.seed, MIX_STREAM, global_step))
        if float(torch.rand((), generator=g)) >= m.p:
            return images, targets, None, 1.0, None
        kind, alpha = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
        if kind == "mixup":
            r = mixup(images, targets, alpha, g)
            return r.images, r.targets_a, r.targets_b, r.lam, kind
        r = cutmix(images, targets, alpha, g)
        return r.images, r.targets, None, 1.0, kind

    # ------------------------------------------------------------ loss
    def compute_loss(
        self, logits: torch.Tensor, ta: dict[str, torch.Tensor], tb: dict[str, torch.Tensor] | None, lam: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        aux = getattr(self.model, "last_aux", None)
        aux = aux.float() if aux is not None else None
        logits = logits.float()  # losses in fp32 whatever the autocast dtype

        def one(t: dict[str, torch.Tensor]):
            return self.loss(logits, t["target"], dist_maps=t.get("dist_maps"), aux_logits=aux)

        if tb is None:
            return one(ta)
        (la, pa), (lb, pb) = one(ta), one(tb)
        return lam * la + (1.0 - lam) * lb, {k: lam * pa[k] + (1.0 - lam) * pb[k] for k in pa}

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------ step
    def run(self, batch: dict[str, Any], global_step: int) -> StepResult:
        images = batch["image"].to(self.device, non_blocking=True)
        targets = {k: batch[k].to(self.device, non_blocking=True) for k in ("target", "dist_maps") if k in batch}
        images, ta, tb, lam, kind = self._mix(images, targets, global_step)
        lr = float(self.optimizer.param_groups[0]["lr"])
        events: list[OOMRecovered] = []
        while True:
            message = None
            try:
                total, parts = self._accumulate(images, ta, tb, lam)
            except Exception as e:  # only OOM is handled; everything else is re-raised
                if not is_oom(e) or self.micro_batch <= 1:
                    raise
                message = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            if message is None:
                break
            # outside the except block, so the traceback's frames (holding activations) are gone
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.micro_batch = max(1, self.micro_batch // 2)
            events.append(OOMRecovered(self.micro_batch, math.ceil(images.shape[0] / self.micro_batch), message))
        grad_norm = self._finish_step()
        return StepResult(
            float(total), {k: float(v) for k, v in parts.items()}, lr, int(images.shape[0]), grad_norm, events, kind
        )

    def _accumulate(self, images, ta, tb, lam) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.optimizer.zero_grad(set_to_none=True)
        n = images.shape[0]
        bounds = list(range(0, n, self.micro_batch))
        total = torch.zeros((), device=self.device)
        parts: dict[str, torch.Tensor] = {}
        for k, start in enumerate(bounds):
            sl = slice(start, min(start + self.micro_batch, n))
            weight = (sl.stop - sl.start) / n
            sync = k == len(bounds) - 1 or not hasattr(self.net, "no_sync")
            with contextlib.nullcontext() if sync else self.net.no_sync():
                with self.autocast():
                    logits = self.net(images[sl])
                loss, p = self.compute_loss(
                    logits,
                    {t: v[sl] for t, v in ta.items()},
                    None if tb is None else {t: v[sl] for t, v in tb.items()},
                    lam,
                )
                self.scaler.scale(loss * weight).backward()
            total += loss.detach() * weight
            for name, v in p.items():
                parts[name] = parts.get(name, 0.0) + v.detach() * weight
            del logits, loss, p
        return total, parts

    def _finish_step(self) -> float | None:
        if self.dist is not None and self.loss_params:
            # the loss's learnable weights live outside DDP, so their gradients are averaged here
            for p in self.loss_params:
                if p.grad is not None:
                    self.dist.all_reduce_mean(p.grad)
        grad_norm = None
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.clip_params, self.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return grad_norm


class Throughput:
    """Images per second between consecutive steps (data loading included: what a user waits for)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def reset(self) -> None:
        self.last = time.perf_counter()

    def tick(self, images: int) -> float:
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        return images / dt if dt > 0 else float("nan")
