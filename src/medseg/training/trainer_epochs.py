"""The Trainer's epoch loop: steps, the end of each epoch (validation, best / last checkpoints, early
stopping) and a cancel's stop at the step it came in.

A fresh epoch labels its pseudo-labels first (when enabled); the loader is
rebuilt only when the training items changed. Under DDP every rank runs the
loop, rank 0's BatchNorm statistics and monitor value decide for all, only
rank 0 writes checkpoints, and a cancel on any rank stops all of them at the
same step (``_cancel_requested``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch

from medseg.errors import Cancelled
from medseg.jobs import Result
from medseg.training.data import collate, make_loader, sequential_batches
from medseg.training.events import STAGE, CheckpointSaved, EpochEnd, Step, TrainSummary
from medseg.training.optim import keep_frozen_encoder_eval, refresh_lr
from medseg.training.trainer_steps import Throughput
from medseg.training.validation import improved, validate


class EpochLoop:
    """The training half of :class:`medseg.training.trainer.Trainer` (which sets the attributes used here)."""

    def _barrier(self) -> None:
        if self.dist is not None:
            self.dist.barrier()

    def _cancel_requested(self) -> bool:
        flag = self.cancel.is_set()
        # any rank's cancel stops all ranks at the same step (else the others wait in a collective forever)
        return flag if self.dist is None else self.dist.any(flag)

    def _sync_buffers(self) -> None:
        """Rank 0's BatchNorm statistics on every rank (each rank updated them with its own last batches),
        so validation and pseudo-labels, and the decisions taken on them, are the same on all ranks."""
        if self.dist is None:
            return
        import torch.distributed as tdist

        for b in self.model.buffers():
            tdist.broadcast(b, src=0)

    def _train_mode(self) -> None:
        self.model.train()
        if self.frozen:
            keep_frozen_encoder_eval(self.model)

    def _loader_for_epoch(self, extras_changed: bool):
        if self._loader is None or extras_changed:
            self.sampler.n = len(self.train_data)
            self._loader = make_loader(
                self.train_data,
                self.sampler,
                self.config.data.num_workers,
                self.config.seed,
                pin_memory=self.device.type == "cuda",
            )
        return self._loader

    def _val_loader(self):
        if not len(self.val_data):
            return []
        batches = sequential_batches(len(self.val_data), self.steps.micro_batch)
        return torch.utils.data.DataLoader(
            self.val_data, batch_sampler=batches, collate_fn=collate, num_workers=self.config.data.num_workers
        )

    def _epochs(self) -> Iterator[Any]:
        cfg, p = self.config, self.progress
        stopped_early = False
        throughput = Throughput()
        for epoch in range(p.epoch, cfg.epochs):
            t0 = time.perf_counter()
            self.loss.set_epoch(epoch)
            pseudo_stats: dict[str, int] = {}
            changed = False
            if p.position == 0:  # a fresh epoch (a resumed one keeps its pseudo-labels)
                had = bool(self.train_data.extras)
                if self.pseudo is not None and self.pseudo.active(epoch):
                    self._sync_buffers()
                    self.train_data.extras, pseudo_stats = self.pseudo.label(self.model)
                else:
                    self.train_data.extras = []
                changed = had or bool(self.train_data.extras)
                p.epoch_first_step, p.epoch_loss_sum = p.global_step, 0.0
            loader = self._loader_for_epoch(changed or self._loader is None)
            self.sampler.set_epoch(epoch, p.position)
            n_steps = self.sampler.batches_in_epoch()
            self.schedule.begin_epoch(epoch, p.epoch_first_step, n_steps)
            refresh_lr(self.scheduler)
            self._train_mode()
            throughput.reset()
            for batch in loader:
                result = self.steps.run(batch, p.global_step)
                yield from result.oom
                step_index = p.position
                p.position += 1
                p.global_step += 1
                p.epoch_loss_sum += result.loss
                yield Step(
                    p.global_step,
                    cfg.epochs * n_steps,
                    STAGE,
                    epoch=epoch,
                    step=step_index,
                    loss=result.loss,
                    lr=result.lr,
                    terms=result.terms,
                    images_per_s=throughput.tick(result.images),
                    grad_norm=result.grad_norm,
                )
                del batch, result
                if self._cancel_requested():
                    yield from self._stop_cancelled()
                    return
            yield from self._end_epoch(epoch, pseudo_stats, time.perf_counter() - t0)
            if cfg.early_stopping_patience is not None and p.bad_epochs >= cfg.early_stopping_patience:
                stopped_early = True
                break
            if self._cancel_requested():
                yield from self._stop_cancelled()
                return
        yield Result(
            TrainSummary(
                best_checkpoint=str(self.best_path) if self.best_path.is_dir() else None,
                last_checkpoint=str(self.last_path) if self.last_path.is_dir() else None,
                best_metric=p.best_metric,
                epochs_run=p.epoch,
                stopped_early=stopped_early,
            )
        )

    def _end_epoch(self, epoch: int, pseudo_stats: dict[str, int], seconds_before: float) -> Iterator[Any]:
        cfg, p = self.config, self.progress
        t0 = time.perf_counter()
        train_loss = p.epoch_loss_sum / max(1, p.position)
        overlay_dir = self.run_dir / "overlays" if self.is_main and cfg.val_overlays else None
        self._sync_buffers()
        val, overlays = validate(
            self.model,
            self.loss,
            self._val_loader(),
            self.val_data.ids(),
            self.classmap,
            self.preprocessing,
            self.device,
            self.steps.autocast,
            surface=cfg.val_hd95,
            overlay_dir=overlay_dir,
            overlays=cfg.val_overlays,
            epoch=epoch,
        )
        self._train_mode()
        val.update(pseudo_stats)
        val.setdefault("pseudo_added", len(self.train_data.extras))
        monitor = cfg.monitor if self.val_samples else "train_loss"
        value = val.get(monitor) if self.val_samples else train_loss
        if self.dist is not None:  # rank 0's view decides best / early stopping for all ranks
            value = self.dist.broadcast_object(value)
        metrics = {"epoch": epoch, "train_loss": train_loss, "monitor": monitor, **val}
        better = improved(value, p.best_metric, monitor)
        if better:
            p.best_metric, p.best_epoch, p.bad_epochs = float(value), epoch, 0
        else:
            p.bad_epochs += 1
        p.epoch, p.position = epoch + 1, 0
        p.epoch_first_step, p.epoch_loss_sum = p.global_step, 0.0
        yield EpochEnd(
            epoch=epoch,
            train_loss=train_loss,
            val=val,
            overlays=overlays,
            seconds=seconds_before + time.perf_counter() - t0,
        )
        if self.is_main:
            if better:
                yield CheckpointSaved(
                    path=str(self._save("best", epoch, metrics, resumable=False)),
                    tag="best",
                    epoch=epoch,
                    metric=p.best_metric,
                )
            yield CheckpointSaved(
                path=str(self._save("last", epoch, metrics, resumable=True)),
                tag="last",
                epoch=epoch,
                metric=None if value is None else float(value),
            )
        self._barrier()

    def _stop_cancelled(self) -> Iterator[Any]:
        """Write a usable, resumable last checkpoint at this exact step, then end with Cancelled."""
        p = self.progress
        path = None
        if self.is_main:
            metrics = {"epoch": p.epoch, "cancelled": True, "position": p.position}
            path = self._save("last", p.epoch, metrics, resumable=True)
            yield CheckpointSaved(path=str(path), tag="last", epoch=p.epoch, metric=None)
        self._barrier()
        checkpoint = str(path) if path else str(self.last_path)
        yield Cancelled(
            f"training cancelled in epoch {p.epoch + 1} after step {p.global_step}; checkpoint: {checkpoint}",
            p.global_step,
            self.config.epochs * self.sampler.batches_in_epoch(),
            {"checkpoint": checkpoint, "epoch": p.epoch, "global_step": p.global_step},
        )
