"""How well does the review queue find wrong labels? Real CVC-ClinicDB masks with a known corrupted subset.

Copies ``$MEDSEG_DATA_DIR/cvc-clinicdb`` (default ../shared/data) into a temp
folder (the source is never touched), corrupts ~20 % of the masks in seven
realistic ways (:mod:`medseg.qc.corruptions`: shift, dilate, erode, missing
object, extra object, another video's frame mask, grey noise), creates a
workspace, runs the rule-based QC and the out-of-fold ranking (K folds, a
small PlainUNet at 64x96 trained from scratch on the CPU, 25 epochs), then prints:

* AUROC, corrupted vs clean, of the review queue's order and of each score alone;
* the fraction of corrupted samples in the first 20 % of the queue, per kind too;
* timings.

    python benchmarks/bench_rank.py [--folds 5] [--epochs 25] [--threads 1] [--keep DIR]

Run it in the background (about 14 min with one thread on a shared 2-core machine):
    nohup python benchmarks/bench_rank.py > /tmp/bench_rank.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image


def auroc(scores_bad: np.ndarray, scores_good: np.ndarray) -> float:
    """P(a corrupted sample ranks before a clean one): Mann-Whitney U with ties counted half.

    Inputs are "badness" (higher = more suspect)."""
    bad, good = np.asarray(scores_bad, float), np.asarray(scores_good, float)
    if not len(bad) or not len(good):
        return float("nan")
    allv = np.concatenate([bad, good])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):  # average ranks of ties
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[: len(bad)].sum() - len(bad) * (len(bad) + 1) / 2
    return float(u / (len(bad) * len(good)))


def corrupt_copy(src: Path, dst: Path, fraction: float, seed: int) -> dict[str, str]:
    """Copy the dataset and corrupt ``fraction`` of its masks, spread over every kind; {sample id: kind}."""
    from medseg.datasets import open_dataset
    from medseg.qc.corruptions import KINDS, corrupt

    shutil.copytree(src, dst)
    ds = open_dataset(dst)
    rng = np.random.default_rng(seed)
    ids = [s.id for s in ds.samples]
    group = {s.id: s.group for s in ds.samples}
    chosen = rng.choice(len(ids), size=round(fraction * len(ids)), replace=False)
    planted = {}
    for k, idx in enumerate(sorted(chosen)):
        sid = ids[idx]
        kind = KINDS[k % len(KINDS)]
        path = dst / "masks" / f"{sid}.png"
        mask = np.asarray(Image.open(path)) > 127
        other = None
        if kind == "other_frame":  # a frame of another video: neighbours of the same video look alike
            others = [i for i in ids if group[i] != group[sid]]
            other = np.asarray(Image.open(dst / "masks" / f"{others[rng.integers(len(others))]}.png")) > 127
        out = corrupt(kind, mask, rng, other)
        Image.fromarray(out if out.dtype == np.uint8 else (out * 255).astype(np.uint8)).save(path)
        planted[sid] = kind
    return planted


def config(epochs: int, size: tuple[int, int]) -> dict:
    from medseg.cli.rank import DEFAULT_CONFIG

    cfg = {**DEFAULT_CONFIG, "epochs": epochs, "device": "cpu", "precision": "fp32"}
    cfg["data"] = {**DEFAULT_CONFIG["data"], "image_size": list(size), "num_workers": 0}
    return cfg


def report(ws, method: str, planted: dict[str, str], elapsed: dict[str, float]) -> None:
    from medseg.qc.queue import review_queue

    queue = review_queue(ws, method=method)
    details = ws.score_details(method)
    n = len(queue)
    position = {item.sample_id: k for k, item in enumerate(queue)}
    bad = [s for s in position if s in planted]
    good = [s for s in position if s not in planted]
    top = {item.sample_id for item in queue[: round(0.2 * n)]}

    def auc_of(badness: dict[str, float]) -> float:
        return auroc([badness[s] for s in bad], [badness[s] for s in good])

    print(f"\n== CVC-ClinicDB, {n} samples, {len(bad)} corrupted ({len(bad) / n:.0%}), method {method}")
    print(f"queue AUROC (corrupted before clean): {auc_of({s: -position[s] for s in position}):.3f}")
    print(
        f"corrupted found in the first 20% of the queue: {len(top & set(bad))}/{len(bad)} "
        f"= {len(top & set(bad)) / max(1, len(bad)):.3f}"
    )
    for name in ("score", "soft_dice", "separation", "dice", "cleanlab", "iou"):
        values = {s: -float(details[s][name]) for s in position if s in details}
        if len(values) == n:
            print(f"  AUROC of {name} alone: {auc_of(values):.3f}")
    hd = {s: float(details[s]["hd95"]) for s in position if s in details}
    if len(hd) == n:
        print(f"  AUROC of hd95 alone: {auc_of(hd):.3f}")
    from medseg.qc.outline_fit import METHOD as OUTLINE

    outline = ws.scores(OUTLINE)
    if outline:
        # samples the outline cannot judge (empty labels) count as neutral here
        print(
            f"  AUROC of {OUTLINE} alone: {auc_of({s: -outline.get(s, 0.5) for s in position}):.3f} "
            f"({len(outline)} of {n} judged)"
        )
        per_kind = {
            k: auroc([-outline.get(s, 0.5) for s in bad if planted[s] == k], [-outline.get(s, 0.5) for s in good])
            for k in sorted(set(planted.values()))
        }
        print("    per kind: " + ", ".join(f"{k} {v:.3f}" for k, v in per_kind.items()))
        model_only = {s: -v for s, v in ws.scores(method).items() if v is not None}
        findings = {}
        for f in ws.findings():
            findings.setdefault(f.sample_id, []).append(f)
        from medseg.qc.queue import finding_penalty

        plain = {s: model_only.get(s, 0) + sum(finding_penalty(f) for f in findings.get(s, ())) for s in position}
        print(f"  queue AUROC without {OUTLINE} (model score and QC findings only): {auc_of(plain):.3f}")
    print(f"\n{'kind':<12} {'n':>3} {'AUROC':>6} {'top20%':>7} {'median rank':>12}")
    for kind, count in sorted(Counter(planted.values()).items()):
        members = [s for s in bad if planted[s] == kind]
        a = auroc([-position[s] for s in members], [-position[s] for s in good])
        found = len(top & set(members))
        median_position = int(np.median([position[s] for s in members]))
        print(f"{kind:<12} {count:>3} {a:>6.3f} {found / count:>7.2f} {median_position:>12}")
    clean_dice = [details[s]["dice"] for s in good if s in details]
    print(f"\nclean samples: median out-of-fold Dice {np.median(clean_dice):.3f}, mean {np.mean(clean_dice):.3f}")
    if elapsed:
        print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in elapsed.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 96))
    ap.add_argument("--fraction", type=float, default=0.2)
    # 1, not 2: on a machine shared with other jobs two OpenMP threads spin against each other
    # (measured: 7 s a step with 2 threads vs 0.4 s with 1 while other jobs ran)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    ap.add_argument("--report", default=None, metavar="DIR", help="only print the report of a run kept in DIR")
    args = ap.parse_args(argv)
    if args.report:
        from medseg.qc.run import run_qc
        from medseg.workspace import Workspace

        with Workspace.open(Path(args.report) / "ws", verify="none") as ws:
            from medseg.qc.outline_fit import METHOD as OUTLINE

            if OUTLINE not in ws.score_methods():  # a run kept before QC gave that score
                for _ in run_qc(ws, ["outline_fit"]):
                    pass
            report(ws, f"oof-k{args.folds}", json.loads((Path(args.report) / "planted.json").read_text()), {})
        return 0

    import torch

    torch.set_num_threads(args.threads)
    from medseg.qc.oof import iter_rank_oof
    from medseg.qc.ranking import FoldScored, FoldStarted
    from medseg.qc.run import run_qc
    from medseg.training.events import EpochEnd
    from medseg.workspace import Workspace

    data = Path(os.environ.get("MEDSEG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    src = data / "cvc-clinicdb"
    if not (src / "masks").is_dir():
        print(f"skipped: {src} not found (set MEDSEG_DATA_DIR)")
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-rank-"))
    elapsed: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        planted = corrupt_copy(src, work / "cvc", args.fraction, args.seed)
        (work / "planted.json").write_text(json.dumps(planted, indent=1))
        print(f"corrupted {len(planted)} masks: {dict(Counter(planted.values()))}", flush=True)
        ws = Workspace.create(work / "ws", work / "cvc")
        elapsed["copy+corrupt+workspace"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in run_qc(ws):
            pass
        elapsed["qc"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        method = f"oof-k{args.folds}"
        for event in iter_rank_oof(ws, config(args.epochs, tuple(args.size)), folds=args.folds, method=method):
            if isinstance(event, FoldStarted):
                print(f"fold {event.fold + 1}/{event.folds}: train {event.n_train}, score {event.n_score}", flush=True)
            elif isinstance(event, EpochEnd):
                e = event
                print(f"  epoch {e.epoch + 1}: loss {e.train_loss:.4f} ({e.seconds:.0f} s)", flush=True)
            elif isinstance(event, FoldScored):
                print(f"  scored {event.n_scored} in fold {event.fold + 1} ({event.seconds:.0f} s)", flush=True)
        elapsed["oof ranking"] = time.perf_counter() - t0
        report(ws, method, planted, elapsed)
        ws.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
