"""What a training run records beside its checkpoints: ``metrics.csv`` (a row per epoch), ``curves.png``
(its learning curves) and, with ``tensorboard: true``, TensorBoard event files in ``tensorboard/``.

The Trainer hands every event it logs to :class:`RunRecorder` (rank 0 only): a ``Step`` gives the
learning rate and, for TensorBoard, the step's loss; an ``EpochEnd`` writes its ``metrics.csv`` row
(:mod:`medseg.runs.files`); the run's end (finished, cancelled or failed) draws ``curves.png`` from the
whole file, so a resumed run's curves hold its earlier epochs too. A record that cannot be written
(a full disk) is logged and training goes on: the checkpoints are what must not be lost.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any

from medseg.errors import ConfigError, RunFolderError
from medseg.runs.curves import plot_run
from medseg.runs.files import CURVES_PNG, TENSORBOARD_DIR, append_epoch, epoch_row, read_metrics

log = logging.getLogger(__name__)

TENSORBOARD_MISSING = (
    "tensorboard: true needs the 'tensorboard' package, which is not installed "
    "(pip install tensorboard, or pip install 'napari-medseg[tensorboard]'); "
    "metrics.csv and curves.png are written without it"
)


def check_tensorboard(wanted: bool) -> None:
    """ConfigError when TensorBoard files are asked for and the package that writes them is missing."""
    if wanted and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError([TENSORBOARD_MISSING])


class RunRecorder:
    """Writes a run folder's record from the Trainer's events (see the module docstring)."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = False, title: str = ""):
        check_tensorboard(tensorboard)
        self.run_dir = Path(run_dir)
        self.title = title or self.run_dir.name
        self.tensorboard = tensorboard
        self._writer = None
        self._lr: float | None = None

    def observe(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        try:
            if kind == "step":
                self._lr = float(event.lr)
                if self.tensorboard:
                    self._board().add_scalar("train/loss_step", float(event.loss), int(event.done))
                    self._board().add_scalar("train/lr", float(event.lr), int(event.done))
            elif kind == "epoch":
                row = epoch_row(event.epoch, event.train_loss, event.val, self._lr, float(event.seconds))
                append_epoch(self.run_dir, row)
                if self.tensorboard:
                    self._epoch_to_board(row)
            elif kind in ("result", "cancelled", "error"):  # how a run ends (medseg.jobs kinds)
                self.close()
        except (OSError, RunFolderError) as e:  # the record is a convenience; the run and its checkpoints go on
            log.warning("%s: could not write the run's record: %s", self.run_dir, e)

    def close(self) -> None:
        """Draw ``curves.png`` from ``metrics.csv`` and close the TensorBoard files (the run's end)."""
        try:
            if (self.run_dir / "metrics.csv").is_file():
                rows = read_metrics(self.run_dir)
                if rows:
                    plot_run(rows, self.run_dir / CURVES_PNG, self.title)
        except (OSError, ValueError) as e:
            log.warning("%s: could not draw the learning curves: %s", self.run_dir, e)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _board(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR))
        return self._writer

    def _epoch_to_board(self, row: dict[str, Any]) -> None:
        board, epoch = self._board(), int(row["epoch"])
        for key, value in row.items():
            if key in ("epoch", "lr", "seconds") or value is None or not math.isfinite(value):
                continue
            # "val_dice/polyp" -> "val/dice/polyp": TensorBoard groups the tags by their first part
            tag = "train/loss" if key == "train_loss" else "val/" + key[4:]
            board.add_scalar(tag, float(value), epoch)
        board.flush()
