"""Does training memory grow across epochs? RSS of this process over 20 short epochs of a real Trainer run.

    python benchmarks/bench_train_memory.py [--epochs 20] [--images 24] [--size 64] [--arch PlainUNet]

Seed 000's Keras loop leaked until it crashed; the target here is growth below
5 % between the end of epoch 2 (caches, allocator pools and lazily built state
are in place by then) and the end of the last epoch. Each epoch trains on a
generated dataset (discs on noise, written as PNGs and read through
``medseg.datasets``), validates, computes metrics and writes the last
checkpoint, so every part of an epoch is in the loop. RSS comes from psutil when
installed, else /proc/self/status (Linux). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def rss_bytes() -> int:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return psutil.Process().memory_info().rss
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read RSS: install psutil (pip install psutil) or run on Linux")


def make_dataset(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        r = rng.integers(size // 10, size // 4)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = rng.integers(0, 100, (size, size, 3)).astype(np.uint8)
        img[disc] = rng.integers(150, 255, (int(disc.sum()), 3))
        Image.fromarray(img).save(root / "images" / f"case{k}.png")
        Image.fromarray((disc * 255).astype(np.uint8)).save(root / "masks" / f"case{k}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--images", type=int, default=24, help="generated images (a quarter validate)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--arch", default="PlainUNet", help="PlainUNet (width 8, depth 3) or an smp architecture")
    ap.add_argument("--encoder", default="resnet18", help="encoder of an smp architecture")
    ap.add_argument("--augment", default="seed004", help="augmentation preset (default: seed 004's pipeline)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", type=float, default=5.0, help="allowed growth in %% (5)")
    args = ap.parse_args(argv)
    if args.epochs < 3:
        ap.error("--epochs must be at least 3 (growth is measured from epoch 2)")

    import torch

    from medseg.training.config import TrainConfig
    from medseg.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="medseg-mem-") as tmp:
        data = make_dataset(Path(tmp) / "data", args.images, args.size)
        model = {"arch": args.arch}
        if args.arch.lower() == "plainunet":
            model["kwargs"] = {"depth": 3, "base_channels": 8}
        else:
            model.update(encoder=args.encoder, kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]})
        config = TrainConfig.from_dict(
            {
                "data": {
                    "root": str(data),
                    "group_by": "stem",
                    "val_fraction": 0.25,
                    "image_size": [args.size, args.size],
                },
                "model": model,
                "augment": args.augment,
                "loss": "seed004_bce_dice",
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "device": "cpu",
                "precision": "fp32",
                "out_dir": str(Path(tmp) / "run"),
                "val_overlays": 2,
            }
        )
        rows = []
        start = rss_bytes()
        t0 = time.perf_counter()
        for event in Trainer(config).run():
            if event.kind == "epoch":
                rows.append((event.epoch + 1, rss_bytes(), len(gc.get_objects()), time.perf_counter() - t0))
            elif event.kind == "cancelled":
                print(f"training ended with {event.kind}: {event}", file=sys.stderr)
                return 2
    print(
        f"RSS before the Trainer: {start / 2**20:.1f} MiB; {args.arch}, {args.images} images of "
        f"{args.size}x{args.size}, batch {args.batch_size}, augmentation {args.augment}, torch threads {args.threads}"
    )
    print(f"{'epoch':>5} {'RSS MiB':>9} {'vs epoch 2':>10} {'py objects':>11} {'elapsed s':>9}")
    ref = rows[1][1]
    for epoch, rss, objects, elapsed in rows:
        print(f"{epoch:>5} {rss / 2**20:>9.1f} {100 * (rss - ref) / ref:>+9.2f}% {objects:>11} {elapsed:>9.1f}")
    growth = 100 * (rows[-1][1] - ref) / ref
    ok = growth < args.target
    grown = (rows[-1][1] - ref) / 2**20
    print(
        f"growth from epoch {rows[1][0]} to epoch {rows[-1][0]}: {growth:+.2f} % ({grown:+.1f} MiB, "
        f"{grown / (len(rows) - 2):+.2f} MiB per epoch) (target < {args.target:g} %): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
