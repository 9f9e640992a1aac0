"""Train ``medseg rank``'s fitted model again on copies of kept ``bench_rank.py --keep`` runs, with a recipe
changed: for choosing a training recipe on the choosing side without planting and QC-ing the sets again.

Each run folder (ws/ and planted.json) is copied under ``--work`` (training writes into the workspace: the kept
run stays as it was, to compare with), the fitted model trained again with ``--recipe`` changes, the queue
evaluated against the run's planted errors:

    python benchmarks/bench_rank.py --frames spare --seeds 0 1 --keep /tmp/sp01    # once
    python benchmarks/rank_retrain.py /tmp/sp01/run-* --work /tmp/w12 --recipe model.kwargs.base_channels=12
    python benchmarks/rank_retrain.py /tmp/sp01/run-* --work /tmp/mg30 --pretext-epochs 30

``--pretext-epochs N`` first trains the same network for N passes to restore the dataset's own images from
distorted copies (Models Genesis, Zhou et al. 2019, arXiv 1908.06912: a non-linear intensity curve, local pixel
shuffling, in- and out-painting; a 1x1 convolution restores the colours in place of the output layer) and
starts the fitted model from it: self-supervised pre-training on the images being ranked, no other data.
Given no change it trains the kept run's model again up to float rounding (frames 298-408, corruption seed 0:
the same queue, the fitted model alone at AUROC 0.8754 against the kept 0.8759).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from rank_protocol import evaluate, print_result


def recipe(changes: list[str]) -> dict:
    """``medseg rank``'s recipe on the CPU with each ``KEY.PATH=VALUE`` set as ``medseg rank --set`` sets it."""
    import copy

    import yaml
    from bench_rank import rank_config

    from medseg.cli.options import set_dotted

    cfg, problems = copy.deepcopy(rank_config(None)), []  # deep: rank_config shares medseg rank's defaults
    for item in changes:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--recipe {item!r}: expected KEY.PATH=VALUE")
            continue
        set_dotted(cfg, key.strip(), yaml.safe_load(raw), problems, f"--recipe {key.strip()}")
    if problems:
        raise SystemExit("; ".join(problems))
    return cfg


def _curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random monotone Bezier intensity curve through (0, 0) and (1, 1), inverted half the time."""
    p = rng.random((4, 2))
    p[0], p[3] = (0, 0), (1, 1)
    t = np.linspace(0, 1, 256)[:, None]
    c = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    order = np.argsort(c[:, 0])
    ys = c[order, 1]
    return c[order, 0], (1 - ys if rng.random() < 0.5 else ys)


def _boxes(rng, h: int, w: int, n: int, lo: float, hi: float):
    for _ in range(n):
        bh, bw = int(rng.integers(int(h * lo), int(h * hi))), int(rng.integers(int(w * lo), int(w * hi)))
        r, c = int(rng.integers(3, h - bh - 3)), int(rng.integers(3, w - bw - 3))
        yield slice(r, r + bh), slice(c, c + bw)


def distort(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Models Genesis' distortions of a [0, 1] (H, W, C) image, with its probabilities."""
    y = x.copy()
    h, w, ch = y.shape
    if rng.random() < 0.9:
        y = np.interp(y, *_curve(rng)).astype(np.float32)
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(20, 60))):
            bh, bw = int(rng.integers(2, 8)), int(rng.integers(2, 8))
            r, c = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
            block = y[r : r + bh, c : c + bw].reshape(-1, ch)
            y[r : r + bh, c : c + bw] = block[rng.permutation(len(block))].reshape(bh, bw, ch)
    if rng.random() < 0.9:
        if rng.random() < 0.8:
            for rows, cols in _boxes(rng, h, w, int(rng.integers(1, 5)), 1 / 8, 1 / 3):
                y[rows, cols] = rng.random((rows.stop - rows.start, cols.stop - cols.start, ch))
        else:
            kept, y = y, rng.random(y.shape).astype(np.float32)
            for rows, cols in _boxes(rng, h, w, int(rng.integers(1, 5)), 1 / 3, 0.85):
                y[rows, cols] = kept[rows, cols]
    return y


def pretext_checkpoint(ws, cfg: dict, epochs: int, out: Path, seed: int = 0) -> Path:
    """The fitted model's network trained ``epochs`` passes to restore the workspace's images, saved at ``out``."""
    import torch
    from torch import nn

    from medseg.models.checkpoint import save_checkpoint
    from medseg.qc.fit_all import fit_config
    from medseg.qc.oof import base_config
    from medseg.training.data import decode_sample, standardise
    from medseg.training.trainer_setup import build_model
    from medseg.training.workspace_source import open_workspace_dataset

    config = base_config(fit_config(cfg), ws.root)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, spec, prep, _ = build_model(config, ws.classmap)
    size = config.data.image_size
    images = [decode_sample(s, ws.classmap, prep, size).image for s in open_workspace_dataset(ws.root).samples]
    head = model.head
    model.head = nn.Conv2d(head.in_channels, images[0].shape[2], 1)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"])
    batch = cfg["batch_size"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(images) // batch))
    for _ in range(epochs):
        order = rng.permutation(len(images))
        for b in range(0, len(order), batch):
            xs, targets = [], []
            for i in order[b : b + batch]:
                x = images[i][:, ::-1] if rng.random() < 0.5 else images[i]
                x = np.ascontiguousarray(x[::-1] if rng.random() < 0.5 else x)
                xs.append(standardise(distort(x, rng), prep))
                targets.append(np.moveaxis(x, -1, 0))
            restored = torch.sigmoid(model(torch.from_numpy(np.stack(xs))))
            loss = nn.functional.mse_loss(restored, torch.from_numpy(np.stack(targets)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.head = head
    return save_checkpoint(out, model.eval(), spec, ws.classmap, prep, provenance={"pretext_epochs": epochs})


def run(kept: Path, work: Path, cfg: dict, pretext_epochs: int) -> dict:
    from medseg.qc.fit_all import iter_rank_fit
    from medseg.workspace import Workspace

    folder = work / kept.name
    if folder.exists():
        raise SystemExit(f"{folder} exists: --work must not hold this run already")
    shutil.copytree(kept, folder)
    planted = json.loads((folder / "planted.json").read_text())
    seconds = {}
    with Workspace.open(folder / "ws") as ws:
        init = None
        if pretext_epochs:
            t = time.perf_counter()
            init = pretext_checkpoint(ws, cfg, pretext_epochs, folder / "pretext.medseg")
            seconds["pretext"] = time.perf_counter() - t
        t = time.perf_counter()
        for _ in iter_rank_fit(ws, cfg, init_from=init):
            pass
        seconds["rank"] = time.perf_counter() - t
        out = evaluate(ws, "fit-all", planted)
    out["seconds"] = seconds
    return out


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="kept run folders (ws/ and planted.json)")
    ap.add_argument("--work", type=Path, required=True, help="a folder for the copies (the kept runs stay as they are)")
    ap.add_argument("--recipe", action="append", default=[], metavar="KEY.PATH=VALUE", help="e.g. epochs=90")
    ap.add_argument("--pretext-epochs", type=int, default=0, metavar="N")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: run two of these on 2 cores)")
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = recipe(args.recipe)
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for kept in args.runs:
        r = run(kept, args.work, cfg, args.pretext_epochs)
        print_result(str(kept), r)
        results.append(r)
    a, t = [r["auroc"] for r in results], [r["first_20pct"] for r in results]
    alone = [r["alone"].get("fit-all", float("nan")) for r in results]
    print(
        f"\nmean: queue AUROC {np.mean(a):.3f}, first 20 % {np.mean(t):.1%} ({' / '.join(f'{x:.0%}' for x in t)}),"
        f" the fitted model alone {np.mean(alone):.3f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
