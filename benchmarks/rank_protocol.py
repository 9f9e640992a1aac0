"""The pieces of benchmarks/bench_rank.py: planting errors, subsets of CVC-ClinicDB, another endoscope, scoring.

The new-dataset protocol (issue 17) asks whether the ranking holds on data it
was never tuned on: rules, weights and thresholds are chosen on CVC-ClinicDB
frames 1-297 (the first 14 video blocks) with corruption seeds 0-1; results
are reported on frames 409-612 (the last 11 blocks, 204 frames), copied into a
dataset of their own so that the fold models see nothing else, with
corruption seeds 2-5. Frames 298-408 are used by neither side, so no video
straddles the two; once the first choosing side saturated (too few of its
corrupted masks left outside the first fifth to tell two rules apart), they
became a second choosing side (``SPARE_FRAMES``, 111 frames, a video cut at
both ends), still never reported as a result.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

CHOOSE_FRAMES = range(1, 298)
REPORT_FRAMES = range(409, 613)
SPARE_FRAMES = range(298, 409)


def auroc(scores_bad, scores_good) -> float:
    """P(a corrupted sample ranks before a clean one): Mann-Whitney U with ties counted half.

    Inputs are "badness" (higher = more suspect)."""
    from medseg.qc.ranks import average_ranks

    bad, good = np.asarray(scores_bad, float), np.asarray(scores_good, float)
    if not len(bad) or not len(good):
        return float("nan")
    ranks = average_ranks(np.concatenate([bad, good])) + 1
    u = ranks[: len(bad)].sum() - len(bad) * (len(bad) + 1) / 2
    return float(u / (len(bad) * len(good)))


def subset_copy(src: Path, dst: Path, frames, transform=None) -> None:
    """Copy frames ``frames`` (numbers) of an images/masks dataset; ``transform(image, mask) -> (image, mask)``."""
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    for n in frames:
        name = f"{n}.png"
        if not (src / "images" / name).is_file():
            continue
        if transform is None:
            shutil.copy2(src / "images" / name, dst / "images" / name)
            shutil.copy2(src / "masks" / name, dst / "masks" / name)
            continue
        image = np.asarray(Image.open(src / "images" / name).convert("RGB"))
        mask = np.asarray(Image.open(src / "masks" / name))
        image, mask = transform(image, mask)
        Image.fromarray(image).save(dst / "images" / name)
        Image.fromarray(mask).save(dst / "masks" / name)


def another_endoscope(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame as another endoscope might give it: 1.5x the resolution, warmer and darker, less contrast."""
    h, w = mask.shape[:2]
    size = (round(w * 1.5), round(h * 1.5))
    big = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC)).astype(np.float32) / 255
    gains = np.array([1.08, 0.9, 0.78], np.float32)  # a yellower light
    shifted = np.clip(0.12 + 0.8 * (big * gains) ** 1.25, 0, 1)
    out_mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
    return (shifted * 255 + 0.5).astype(np.uint8), out_mask


def corrupt_copy(src: Path, dst: Path, fraction: float, seed: int, frames=None) -> dict[str, str]:
    """Copy the dataset (only ``frames`` when given) and corrupt ``fraction`` of its masks, spread over every
    kind; {sample id: kind}. The groups used for "another video's mask" are the dataset's own."""
    from medseg.datasets import open_dataset
    from medseg.qc.corruptions import KINDS, corrupt

    if frames is None:
        shutil.copytree(src, dst)
    else:
        subset_copy(src, dst, frames)
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


def evaluate(ws, method: str | None, planted: dict[str, str]) -> dict:
    """The queue's quality against the planted errors: AUROC, share in the first 20 %, per kind, fold Dice."""
    from medseg.qc.queue import review_queue

    queue = review_queue(ws, method=method)
    n = len(queue)
    position = {item.sample_id: k for k, item in enumerate(queue)}
    bad = [s for s in position if s in planted]
    good = [s for s in position if s not in planted]
    top = {item.sample_id for item in queue[: round(0.2 * n)]}
    out = {
        "samples": n,
        "corrupted": len(bad),
        "auroc": auroc([-position[s] for s in bad], [-position[s] for s in good]),
        "first_20pct": len(top & set(bad)) / max(1, len(bad)),
        "kinds": {},
    }
    for kind, count in sorted(Counter(planted[s] for s in bad).items()):
        members = [s for s in bad if planted[s] == kind]
        out["kinds"][kind] = {
            "n": count,
            "auroc": auroc([-position[s] for s in members], [-position[s] for s in good]),
            "first_20pct": len(top & set(members)) / count,
            "median_place": int(np.median([position[s] for s in members])),
        }
    details = ws.score_details(method) if method else {}
    fold_dice = {}
    for d in details.values():
        if d.get("fold") is not None and d.get("fold_dice") is not None:
            fold_dice[int(d["fold"])] = float(d["fold_dice"])
    out["fold_dice"] = [fold_dice[k] for k in sorted(fold_dice)]
    alone = {}
    for m in ws.score_methods():
        values = ws.scores(m)
        judged = {s: v for s, v in values.items() if v is not None and s in position}
        if len(judged) >= 2:  # unjudged samples count as neutral (the median)
            mid = float(np.median(list(judged.values())))
            badness = {s: -judged.get(s, mid) for s in position}
            alone[m] = auroc([badness[s] for s in bad], [badness[s] for s in good])
    out["alone"] = alone
    return out


def print_result(title: str, r: dict) -> None:
    print(f"\n== {title}: {r['samples']} samples, {r['corrupted']} corrupted")
    print(f"queue AUROC {r['auroc']:.3f}, corrupted in the first 20 %: {r['first_20pct']:.0%}")
    if r.get("fold_dice"):
        print("fold validation Dice: " + ", ".join(f"{d:.2f}" for d in r["fold_dice"]))
    if r.get("alone"):
        print("AUROC of each stored score alone: " + ", ".join(f"{m} {a:.3f}" for m, a in sorted(r["alone"].items())))
    print(f"{'kind':<12} {'n':>3} {'AUROC':>6} {'top20%':>7} {'median place':>13}")
    for kind, k in r["kinds"].items():
        print(f"{kind:<12} {k['n']:>3} {k['auroc']:>6.3f} {k['first_20pct']:>7.2f} {k['median_place']:>13}")
    if r.get("seconds"):
        print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items()))
