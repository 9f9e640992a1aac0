"""The Trainer's run folder files: the checkpoints it writes and the provenance each carries.

``last.medseg`` (resumable: the model with the optimiser, scheduler, scaler,
loss and progress state of :mod:`medseg.training.train_state`) and
``best.medseg`` (the model only) are written through
:func:`medseg.models.checkpoint.save_checkpoint`, which replaces a checkpoint
atomically: a failed write leaves the previous one. Each records the config,
the epoch's metrics, the data it trained on (ids, split, volumes and slices,
which label revisions) and how (the model, device, precision, where the model
came from): what ``medseg runs`` reads to put runs side by side.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from medseg.training.train_state import state_writers


def describe_model(spec: Any) -> str:
    """The model in a few words: ``Unet(resnet34)``, or the name alone for the project's own U-Nets."""
    from medseg.models.registry import resolve

    return spec.arch if resolve(spec.arch).own else f"{spec.arch}({spec.encoder})"


class CheckpointFiles:
    """The checkpoint half of :class:`medseg.training.trainer.Trainer` (which sets the attributes used here)."""

    @staticmethod
    def model_checkpoint_folder(path: str | Path) -> Path:
        from medseg.models.checkpoint import checkpoint_path

        p = Path(path)
        return p if p.is_dir() else checkpoint_path(p)

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.medseg"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.medseg"

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
            "labels": self._labels_provenance(),
        }

    def _labels_provenance(self) -> dict[str, Any]:
        """Which labels the run trained on: a workspace's pinned revisions (the newest revision id and a
        digest of every sample's, so runs before and after cleaning tell apart), else the source masks."""
        revisions = getattr(self.dataset, "revisions", None)
        if not isinstance(revisions, dict):
            return {"kind": "source"}
        text = "\n".join(f"{k}:{v}" for k, v in sorted(revisions.items()))
        return {
            "kind": "workspace",
            "max_revision": max(revisions.values(), default=None),
            "revisions_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "statuses": list(getattr(self.dataset, "statuses", ()) or ()),
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
                "model": describe_model(self.spec),
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
