"""The Trainer: a generator of typed events that trains, validates, checkpoints, resumes and recovers.

``Trainer(config, cancel=, resume=, dist=, dataset=)`` checks everything it
can before training (config, data, model, loss, augmentation, checkpoints to
resume or fine-tune from): those errors raise from the constructor.
``run()`` is a job of :mod:`medseg.jobs` (events: :mod:`medseg.training.events`):
``Started``, per optimiser step ``Step`` (a ``Progress``; ``OOMRecovered``
when a step had to be redone smaller), per epoch ``EpochEnd`` and
``CheckpointSaved``, and last ``Result(TrainSummary)`` or ``Cancelled`` (after
writing a resumable ``last.medseg`` at the step it stopped). An exception
during training is logged as a ``Failed`` line and raised; it leaves the last
checkpoint as it was, since checkpoints are only ever replaced atomically.

Run folder (``config.out_dir``): ``config.yaml``, ``events.jsonl`` (one JSON
event a line, appended across resumes), ``last.medseg/`` (model + resumable
state: see ``train_state``), ``best.medseg/`` (by ``config.monitor`` on the
validation split; by the training loss without one), ``overlays/``.

Epochs and steps are 0-based in events; ``Step.step`` is the step's index
within its epoch. Under DDP (``dist``) every rank trains its shard, only rank
0 writes files and yields Step / EpochEnd / CheckpointSaved, and a cancel on
any rank stops all of them at the same step.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from medseg.destinations import check_destination
from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Failed, Result, Started
from medseg.training import trainer_setup as setup
from medseg.training.config import ConfigError, TrainConfig
from medseg.training.data import (
    EpochBatches,
    collate,
    make_loader,
    sequential_batches,
)
from medseg.training.events import STAGE, CheckpointSaved, EpochEnd, Step, TrainSummary, to_json
from medseg.training.optim import (
    build_optimizer,
    build_scheduler,
    freeze_encoder,
    keep_frozen_encoder_eval,
    refresh_lr,
)
from medseg.training.slices import SliceData, is_volume_sample, slice_dataset
from medseg.training.train_state import RunState, load_state, state_writers
from medseg.training.trainer_steps import StepRunner, Throughput
from medseg.training.validation import improved, validate


class Trainer:
    """See the module docstring."""

    def __init__(
        self,
        config: TrainConfig | dict[str, Any],
        *,
        cancel: CancelToken | None = None,
        resume: str | Path | None = None,
        dist: Any = None,
        dataset: Any = None,
    ):
        self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        cfg = self.config
        self.cancel, self.dist = cancel or CancelToken(), dist
        self.is_main = dist is None or bool(dist.is_main)
        self.run_dir = Path(cfg.out_dir)
        self.device, self.precision = setup.resolve_device_precision(cfg, dist)
        setup.seed_everything(cfg.seed, cfg.deterministic)

        samples, self.classmap, self.dataset = setup.open_samples(cfg, dataset)
        self.train_samples, self.val_samples = setup.split(samples, cfg.data.val_fraction, cfg.data.split_seed)
        volumes = any(is_volume_sample(s) for s in samples)
        self.model, self.spec, self.preprocessing, self.model_source = setup.build_model(
            cfg, self.classmap, resume, volumes
        )
        self.model.to(self.device).train()
        self.frozen = freeze_encoder(self.model) if cfg.model.freeze_encoder else 0
        self.loss = setup.build_loss(cfg, self.classmap.task, self.spec).to(self.device)
        augmentation = setup.build_train_augmentation(cfg)

        size = cfg.data.image_size
        dist_maps = self.loss.needs_dist_maps
        try:  # the slices of volume samples, or 2-D samples
            self.train_data = slice_dataset(
                self.train_samples,
                self.classmap,
                self.preprocessing,
                size,
                augmentation=augmentation,
                seed=cfg.seed,
                dist_maps=dist_maps,
                cache_mb=cfg.data.cache_mb,
                mirror_swap=cfg.data.mirror_swap,
            )
        except ValueError as e:
            raise ConfigError([str(e)]) from e
        self.volumes = isinstance(self.train_data, SliceData)
        if self.volumes and cfg.pseudo.enabled:
            raise ConfigError(["pseudo.enabled: pseudo-labels are made for 2-D images; the data are volumes"])
        self.val_data = slice_dataset(
            self.val_samples,
            self.classmap,
            self.preprocessing,
            size,
            seed=cfg.seed,
            dist_maps=dist_maps,
            cache_mb=cfg.data.cache_mb,
        )
        self.sampler = EpochBatches(
            len(self.train_data), cfg.batch_size * cfg.accumulate, cfg.seed, dist, cfg.max_steps_per_epoch
        )
        self._loader = None
        self.net = self._wrap(self.model)
        self.optimizer = build_optimizer(self.model, cfg.optim, self.loss.loss_parameters())
        self.scheduler, self.schedule = build_scheduler(
            self.optimizer, cfg.optim, cfg.epochs, self.sampler.batches_in_epoch()
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.progress = RunState(micro_batch=cfg.batch_size)
        self.resumed_from = None
        if resume is not None:
            state = load_state(self.model_checkpoint_folder(resume))
            state.restore(self.optimizer, self.scheduler, self.scaler, self.loss)
            self.progress = state.progress
            if self.progress.position > 0:
                self.train_data.extras = state.pseudo()
            self.resumed_from = str(resume)
        self.steps = StepRunner(
            self.net,
            self.loss,
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.device,
            setup.AMP_DTYPES[self.precision],
            cfg.grad_clip,
            cfg.mix,
            cfg.seed,
            self.progress.micro_batch,
            dist,
        )
        self.pseudo = None
        if cfg.pseudo.enabled:
            from medseg.training.pseudo import PseudoLabeler

            self.pseudo = PseudoLabeler(
                cfg.pseudo,
                self.spec,
                self.classmap,
                self.preprocessing,
                size,
                self.device,
                self.precision,
                cfg.batch_size,
            )

    @staticmethod
    def model_checkpoint_folder(path: str | Path) -> Path:
        from medseg.models.checkpoint import checkpoint_path

        p = Path(path)
        return p if p.is_dir() else checkpoint_path(p)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.dist is None:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------ paths and files
    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.medseg"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.medseg"

    def _emit(self, event: Any) -> Any:
        if self.is_main:
            with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as f:
                f.write(to_json(event) + "\n")
        return event

    def _data_provenance(self) -> dict[str, Any]:
        d = self.config.data
        return {
            "root": str(getattr(self.dataset, "root", d.root)),
            "layout": getattr(self.dataset, "layout", d.layout),
            "ids": [s.id for s in self.train_samples],
            "val_ids": [s.id for s in self.val_samples],
            "val_fraction": d.val_fraction,
            "split_seed": d.split_seed,
            "image_size": d.image_size,
            "volumes": self.volumes,
            "slices": self.preprocessing.slices,
        }

    def _save(self, tag: str, epoch: int, metrics: dict[str, Any], resumable: bool) -> Path:
        from medseg.models.checkpoint import save_checkpoint

        extra = None
        if resumable:
            self.progress.micro_batch = self.steps.micro_batch
            extra = state_writers(
                self.progress,
                self.optimizer,
                self.scheduler,
                self.scaler,
                self.loss,
                self.train_data.extras if self.progress.position > 0 else [],
            )
        provenance = {
            "config": self.config.to_dict(),
            "metrics": metrics,
            "data": self._data_provenance(),
            "training": {
                "tag": tag,
                "epoch": epoch,
                "global_step": self.progress.global_step,
                "resumable": resumable,
                "model_source": self.model_source,
                "device": str(self.device),
                "precision": self.precision,
            },
        }
        return save_checkpoint(
            self.run_dir / f"{tag}.medseg",
            self.model,
            self.spec,
            self.classmap,
            self.preprocessing,
            provenance,
            extra_files=extra,
        )

    def _barrier(self) -> None:
        if self.dist is not None:
            self.dist.barrier()

    # ------------------------------------------------------------ running
    def run(self) -> Iterator[Any]:
        """Train; yields events (see the module docstring). A failure is logged as ``Failed`` and raised."""
        try:
            if self.is_main:
                # the ranking's folds write into their workspace's runs/ (internal); nothing else may
                check_destination(
                    self.run_dir, sources=[self.config.data.root], purpose="the training run", internal=True
                )
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
                if hasattr(self.dataset, "record_run"):
                    # the workspace learns which label revisions this run trained on
                    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
                    self.dataset.record_run(f"train:{self.run_dir.resolve()}@{stamp}", self.best_path)
            steps = self.sampler.batches_in_epoch()
            try:
                yield self._emit(
                    Started(
                        "train",
                        self.config.epochs * steps,
                        {
                            "run_dir": str(self.run_dir),
                            "n_train": len(self.train_samples),
                            "n_val": len(self.val_samples),
                            "volumes": self.volumes,
                            "n_train_items": len(self.train_data),  # slices, for volumes
                            "n_val_items": len(self.val_data),
                            "device": str(self.device),
                            "precision": self.precision,
                            "epochs": self.config.epochs,
                            "steps_per_epoch": steps,
                            "resumed_from": self.resumed_from,
                            "config": self.config.to_dict(),
                        },
                    )
                )
            except Cancelled:
                raise self._emit(
                    Cancelled(
                        "training cancelled before its first step",
                        self.progress.global_step,
                        self.config.epochs * steps,
                    )
                ) from None
            events = self._epochs()
            for event in events:
                if not (self.is_main or isinstance(event, (Result, Cancelled))):
                    continue
                try:
                    yield self._emit(event)
                except Cancelled:  # thrown in at this yield by medseg.jobs.drive
                    raise self._emit(self._stop_at_next_check(events)) from None
                if isinstance(event, (Result, Cancelled)):
                    return
        except Cancelled:
            raise
        except Exception as e:
            if self.is_main:
                self._emit(Failed.from_exception(e, traceback.format_exc()))
            raise

    def _stop_at_next_check(self, events: Iterator[Any]) -> Cancelled:
        """A cancel that came between two events: the run goes on to its own check (after the current step),
        which writes ``last.medseg``; those events are logged, not yielded. Its ``Cancelled``."""
        self.cancel.set()
        for event in events:
            if isinstance(event, Cancelled):
                return event
            if self.is_main:
                self._emit(event)
        p = self.progress  # the run had finished: every checkpoint is written
        return Cancelled(
            f"training cancelled as it finished (epoch {p.epoch}, step {p.global_step})",
            p.global_step,
            p.global_step,
            {"checkpoint": str(self.last_path), "epoch": p.epoch, "global_step": p.global_step},
        )

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
