"""Training on real data: validation Dice per epoch, and the Trainer's speed against a bare PyTorch loop.

    python benchmarks/bench_train.py [--data ../shared/data/cvc-clinicdb] [--epochs 3] [--size 128 160]
                                     [--batch-size 8] [--weights resnet34.safetensors] [--train-limit N]

CVC-ClinicDB (612 colonoscopy frames from ~29 videos) is split 80/20 by
contiguous frame blocks (``group_by: frames``), so near-identical neighbouring
frames never straddle the split. Unet(resnet34) trains from random weights
(no network here) or from a local encoder weights file (``--weights``), on the
CPU, with AdamW, seed 004's 0.6 BCE + 0.4 Dice and no augmentation (so both
loops do the same work per image).

Speed is measured side by side in one run, step by step: after each of the
Trainer's steps (its data pipeline, loss terms, events, bookkeeping) the bare
loop takes one step — a copy of the same model with the same initial weights,
the same preprocessed image and target tensors held in memory, the same batch
size, optimiser, learning rate (copied from the Trainer's step) and loss,
nothing else — so a burst of load from other processes hits both alike. A
Trainer step is timed from asking its generator for the next event to
receiving the Step (a suspended generator does no work); validation and
checkpoint writing are reported in their own columns. The ratio trainer /
bare has a target of >= 0.9.
The Trainer decodes each PNG once and then serves it from its in-memory
cache, while the bare loop gets every tensor preloaded for free: the first
epoch's ratio includes that decoding, later epochs do not. ``--train-limit``
shortens epochs to a random subset, so most samples are decoded for the first
time in every epoch and the ratio then understates a full run's.

On a machine shared with other busy processes pass ``--threads 1``: with
torch's default (one thread per core) two processes' spinning OpenMP threads
made every step 10-20x slower on the 2-core machine this was written on.

GPU run (seed 004's models; when a GPU is available):

    python benchmarks/bench_train.py --device cuda --precision auto --arch Unet --encoder efficientnet-b1 \
        --size 288 384 --batch-size 16 --epochs 15 --lr 2e-3 --augment seed004 --loss seed004_bce_tversky
    python benchmarks/bench_train.py --device cuda ... --arch UnetPlusPlus --encoder efficientnet-b1

(``--weights`` with a local efficientnet-b1 ImageNet file when the machine has
no network; ``--no-bare`` skips the comparison loop to save GPU time.)
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")) / "cvc-clinicdb"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the CVC-ClinicDB folder (images/ + masks/); default $MEDSEG_DATA_DIR/cvc-clinicdb, "
        "else ../shared/data/cvc-clinicdb",
    )
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=[128, 160], metavar=("H", "W"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--arch", default="Unet")
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--weights", default=None, help="local encoder weights (.safetensors / .pth); default: random")
    ap.add_argument("--loss", default="seed004_bce_dice")
    ap.add_argument("--augment", default="none")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--train-limit",
        type=int,
        default=None,
        metavar="N",
        help="train on N batches per epoch only (a shorter run; validation stays whole)",
    )
    ap.add_argument("--no-bare", action="store_true", help="skip the bare-loop comparison")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    return ap.parse_args(argv)


def config_dict(args, out_dir: str) -> dict:
    return {
        "data": {
            "root": str(args.data),
            "group_by": "frames",
            "val_fraction": 0.2,
            "split_seed": 0,
            "image_size": list(args.size),
        },
        "model": {"arch": args.arch, "encoder": args.encoder, "encoder_weights": args.weights},
        "loss": args.loss,
        "augment": args.augment,
        "optim": {"name": "adamw", "lr": args.lr, "weight_decay": 1e-4, "scheduler": "cosine"},
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "seed": 0,
        "deterministic": False,
        "out_dir": out_dir,
        "val_overlays": 0,
        "max_steps_per_epoch": args.train_limit,
    }


class Timed:
    """Runs the Trainer's generator and books the time spent inside it by the event it produced.

    A generator does nothing while suspended, so the time between asking for an
    event and receiving it is exactly the work that event reports: a Step's is
    the step (data loading, forward, backward, optimiser; the epoch's setup
    for its first step), an EpochEnd's is validation, a CheckpointSaved's the
    checkpoint write.
    """

    def __init__(self, events):
        self.events = events
        self.pending = None

    def _next(self):
        if self.pending is not None:
            item, self.pending = self.pending, None
            return item
        t = time.perf_counter()
        event = next(self.events)
        return event, time.perf_counter() - t

    def until_epoch_end(self, after_step=None):
        """(EpochEnd, seconds of each step, seconds in validation); ``after_step(event)`` runs between steps."""
        step_s = []
        while True:
            event, dt = self._next()
            if event.kind == "step":
                step_s.append(dt)
                if after_step is not None:
                    after_step(event)
            elif event.kind == "epoch":
                return event, step_s, dt
            elif event.kind in ("cancelled", "result"):
                raise SystemExit(f"training ended early: {event}"[:2000])

    def checkpoints(self) -> float:
        """Seconds spent writing the checkpoints that follow an EpochEnd."""
        total = 0.0
        while True:
            try:
                event, dt = self._next()
            except StopIteration:
                return total
            if event.kind != "checkpoint":
                self.pending = (event, dt)  # the next epoch's first step (or the Result)
                return total
            total += dt


def preload(data) -> tuple:
    """Every training sample as the Trainer's pipeline produces it, stacked once in memory."""
    import torch

    fresh = copy.copy(data)  # its own empty decode cache: the Trainer's stays cold, as in a real run
    items = [fresh[(i, 0)] for i in range(len(fresh))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["target"] for it in items])


class BareLoop:
    """The plain PyTorch loop, one step at a time: shuffle, slice, forward, loss, backward, optimiser step."""

    def __init__(self, model, optimizer, loss_fn, images, targets, batch: int, device):
        import torch

        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.images, self.targets, self.batch, self.device = images, targets, batch, device
        self.generator = torch.Generator().manual_seed(0)
        self.order, self.position = None, 0
        self.seconds: list[float] = []

    def step(self, lr: float) -> None:
        import torch

        if self.order is None or (self.position + 1) * self.batch > len(self.order):
            self.order, self.position = torch.randperm(len(self.images), generator=self.generator), 0
        idx = self.order[self.position * self.batch : (self.position + 1) * self.batch]
        self.position += 1
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t = time.perf_counter()
        self.model.train()
        x = self.images[idx].to(self.device, non_blocking=True)
        y = self.targets[idx].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        loss, _ = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds.append(time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / "images").is_dir() or not (args.data / "masks").is_dir():
        print(
            f"CVC-ClinicDB not found at {args.data} (expected images/ and masks/ inside): pass --data DIR "
            "or set MEDSEG_DATA_DIR to the folder holding cvc-clinicdb/",
            file=sys.stderr,
        )
        return 2
    import torch

    from medseg.training.config import TrainConfig
    from medseg.training.optim import build_optimizer
    from medseg.training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="medseg-bench-") as tmp:
        out = args.out or str(Path(tmp) / "run")
        config = TrainConfig.from_dict(config_dict(args, out), source="bench_train")
        t_setup = time.perf_counter()
        trainer = Trainer(config)
        groups = len({s.group for s in trainer.train_samples}), len({s.group for s in trainer.val_samples})
        print(
            f"{args.data}: {len(trainer.train_samples)} training images in {groups[0]} frame blocks, "
            f"{len(trainer.val_samples)} validation images in {groups[1]} (no block on both sides)"
        )
        print(
            f"{args.arch}({args.encoder}, {'weights ' + args.weights if args.weights else 'random init'}) "
            f"at {args.size[0]}x{args.size[1]}, batch {args.batch_size}, AdamW lr {args.lr:g} cosine, "
            f"loss {args.loss}, augmentation {args.augment}, {trainer.device} {trainer.precision}, "
            f"torch threads {torch.get_num_threads()}"
        )

        bare = None
        if not args.no_bare:
            bare_model = copy.deepcopy(trainer.model)  # same initial weights
            bare_loss = copy.deepcopy(trainer.loss)
            bare_opt = build_optimizer(bare_model, config.optim, bare_loss.loss_parameters())
            images, targets = preload(trainer.train_data)
            bare = BareLoop(bare_model, bare_opt, bare_loss, images, targets, args.batch_size, trainer.device)
        print(f"setup (indexing, model, preloading the bare loop's tensors): {time.perf_counter() - t_setup:.1f} s")

        timed = Timed(iter(trainer.run()))
        next(timed.events)  # Started
        rows = []
        print(
            f"{'epoch':>5} {'trainer img/s':>13} {'bare img/s':>10} {'ratio':>6} {'val Dice':>8} {'val IoU':>7} "
            f"{'val loss':>8} {'train loss':>10} {'val s':>6} {'ckpt s':>6}",
            flush=True,
        )
        for epoch in range(config.epochs):
            done = len(bare.seconds) if bare else 0
            event, step_s, val_s = timed.until_epoch_end(None if bare is None else lambda e: bare.step(e.lr))
            ckpt_s = timed.checkpoints()
            t_ips = len(step_s) * args.batch_size / sum(step_s)
            b_ips = len(step_s) * args.batch_size / sum(bare.seconds[done:]) if bare else None
            v = event.val
            rows.append((step_s, event.train_loss, v))
            print(
                f"{epoch + 1:>5} {t_ips:>13.2f} {_f(b_ips, 10, 2)} {_f(b_ips and t_ips / b_ips, 6, 3)} "
                f"{_f(v.get('dice'), 8, 4)} {_f(v.get('iou'), 7, 4)} {_f(v.get('loss'), 8, 4)} "
                f"{event.train_loss:>10.4f} {val_s:>6.1f} {ckpt_s:>6.1f}",
                flush=True,
            )
        trainer_s = [t for r in rows for t in r[0]]
        n_images = len(trainer_s) * args.batch_size
        print(
            f"trainer: {n_images} images in {sum(trainer_s):.1f} s of training steps = "
            f"{n_images / sum(trainer_s):.2f} img/s"
        )
        if bare is not None:
            import statistics

            ratio = sum(bare.seconds) / sum(trainer_s)
            per_step = statistics.median(b / t for b, t in zip(bare.seconds, trainer_s))
            print(
                f"bare loop: {n_images} images in {sum(bare.seconds):.1f} s = {n_images / sum(bare.seconds):.2f} img/s"
            )
            print(
                f"trainer / bare loop = {ratio:.3f} overall, {per_step:.3f} median of step pairs "
                f"(target >= 0.9): {'met' if ratio >= 0.9 else 'MISSED'}"
            )
        dice = [r[2].get("dice") for r in rows if r[2].get("dice") is not None]
        print(f"best validation Dice {max(dice):.4f}" if dice else "no validation Dice")
    return 0


def _f(value, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


if __name__ == "__main__":
    raise SystemExit(main())
