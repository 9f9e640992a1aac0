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
validation split; by the training loss without one), ``overlays/``, and the
run's record (:mod:`medseg.training.run_record`): ``metrics.csv`` (a row per
epoch), ``curves.png`` (at the run's end) and, with ``tensorboard: true``,
``tensorboard/``.

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
from medseg.training.data import EpochBatches
from medseg.training.events import to_json
from medseg.training.optim import build_optimizer, build_scheduler, freeze_encoder
from medseg.training.run_record import RunRecorder
from medseg.training.slices import SliceData, is_volume_sample, slice_dataset
from medseg.training.train_state import RunState, load_state
from medseg.training.trainer_epochs import EpochLoop
from medseg.training.trainer_files import CheckpointFiles
from medseg.training.trainer_steps import StepRunner


class Trainer(CheckpointFiles, EpochLoop):
    """See the module docstring; the epoch loop is :mod:`medseg.training.trainer_epochs`'s, the checkpoint
    files :mod:`medseg.training.trainer_files`'."""

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
        # metrics.csv, curves.png, TensorBoard files; a missing tensorboard package is refused here
        self.record = RunRecorder(self.run_dir, tensorboard=cfg.tensorboard) if self.is_main else None
        self.device, self.precision = setup.resolve_device_precision(cfg, dist)
        setup.seed_everything(cfg.seed, cfg.deterministic)

        samples, self.classmap, self.dataset = setup.open_samples(cfg, dataset)
        self.train_samples, self.val_samples = setup.split(samples, cfg.data.val_fraction, cfg.data.split_seed)
        volumes = any(is_volume_sample(s) for s in samples)
        self.model, self.spec, self.preprocessing, self.model_source = setup.build_model(
            cfg, self.classmap, resume, volumes
        )
        self.model.to(self.device).train()
        if cfg.channels_last:  # a convolution with NHWC weights gives NHWC outputs: the inputs need no copy
            self.model.to(memory_format=torch.channels_last)
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

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.dist is None:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------ running
    def _emit(self, event: Any) -> Any:
        if self.is_main:
            with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as f:
                f.write(to_json(event) + "\n")
            self.record.observe(event)
        return event

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
