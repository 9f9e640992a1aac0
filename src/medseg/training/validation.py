"""Validation after each epoch: metrics over the validation split and a few overlay images.

Validation runs on the images as training sees them (windowed, resized to
``data.image_size``, no augmentation) against masks resized with nearest
neighbours, so its Dice is measured at the training resolution. Metrics come
from ``MetricAccumulator`` (per-class Dice / IoU, their means, HD95 / ASSD in
physical units when ``val_hd95`` is on) plus the mean validation loss.

Overlays (``<run>/overlays/epoch_XXX_<id>.png``) show the image with the
ground-truth contours in white and the predicted contours in each class's
colour, for the first ``val_overlays`` validation samples (the same ones
every epoch, so they can be compared over epochs).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from medseg.datasets.classmap import ClassMap
from medseg.models.spec import Preprocessing
from medseg.training.metrics import MetricAccumulator

GT_COLOUR = (255, 255, 255)


def channel_names(classmap: ClassMap) -> list[str]:
    """One name per logit channel (multiclass includes the background)."""
    names = list(classmap.names)
    return ["background", *names] if classmap.task == "multiclass" else names


def foreground_masks(x: torch.Tensor | np.ndarray, task: str, classes: int, logits: bool) -> np.ndarray:
    """(K, H, W) bool, one per foreground class, from one sample's logits (C, H, W) or target."""
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if task == "multiclass":
        ids = a.argmax(0) if logits else a.astype(np.int64)
        return np.stack([ids == c for c in range(1, classes)]) if classes > 1 else np.zeros((0, *ids.shape), bool)
    return a > 0 if logits else a > 0.5


def overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """RGB uint8: ``image`` (C, H, W) in [0, 1] with GT (white) and predicted (class colour) contours."""
    rgb = np.clip(image, 0.0, 1.0)
    rgb = np.repeat(rgb[:1], 3, axis=0) if rgb.shape[0] != 3 else rgb
    out = np.ascontiguousarray((np.moveaxis(rgb, 0, -1) * 255).round().astype(np.uint8))
    for k in range(gt.shape[0]):
        for mask, colour in ((gt[k], GT_COLOUR), (pred[k], colours[k % len(colours)])):
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 1)
    return out


def unstandardise(x: np.ndarray, prep: Preprocessing) -> np.ndarray:
    c = x.shape[0]
    m = np.broadcast_to(np.asarray(0.0 if prep.mean is None else prep.mean, np.float32), (c,))
    s = np.broadcast_to(np.asarray(1.0 if prep.std is None else prep.std, np.float32), (c,))
    return x * s[:, None, None] + m[:, None, None]


def safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(sample_id))[:120] or "sample"


@torch.inference_mode()
def validate(
    model: torch.nn.Module,
    loss: torch.nn.Module,
    loader: Any,
    ids: list[str],
    classmap: ClassMap,
    preprocessing: Preprocessing,
    device: torch.device,
    autocast: Any,
    *,
    surface: bool = False,
    overlay_dir: Path | None = None,
    overlays: int = 0,
    epoch: int = 0,
) -> tuple[dict[str, float], list[str]]:
    """(metrics, overlay paths) of ``model`` over ``loader``; ``autocast`` is a context factory."""
    task, classes = classmap.task, classmap.num_classes
    acc = MetricAccumulator(task, classes, class_names=channel_names(classmap), surface=surface)
    colours = [tuple(classmap.colour_table().get(cid, (255, 0, 0))) for cid in classmap.ids]
    loss_sum, n_images, written = 0.0, 0, []
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            target = batch["target"].to(device, non_blocking=True)
            with autocast():
                logits = model(images)
            logits = logits.float()
            aux = getattr(model, "last_aux", None)
            dist_maps = batch["dist_maps"].to(device) if "dist_maps" in batch else None
            value, _ = loss(logits, target, dist_maps=dist_maps, aux_logits=None if aux is None else aux.float())
            b = images.shape[0]
            loss_sum += float(value) * b
            n_images += b
            acc.update(logits, target, spacing=batch["spacing"].numpy())
            if overlay_dir is not None and len(written) < overlays:
                overlay_dir.mkdir(parents=True, exist_ok=True)
                for j in range(min(b, overlays - len(written))):
                    sid = ids[int(batch["index"][j])]
                    shown = unstandardise(images[j].float().cpu().numpy(), preprocessing)
                    if preprocessing.slices > 1:  # 2.5-D: the slice itself, not its neighbours as colours
                        shown = shown[preprocessing.slices // 2 : preprocessing.slices // 2 + 1]
                    picture = overlay(
                        shown,
                        foreground_masks(target[j], task, classes, logits=False),
                        foreground_masks(logits[j], task, classes, logits=True),
                        colours,
                    )
                    path = overlay_dir / f"epoch_{epoch:03d}_{safe_name(sid)}.png"
                    Image.fromarray(picture).save(path)
                    written.append(str(path))
            del images, target, logits, value
    finally:
        model.train(was_training)
    metrics = acc.compute() if n_images else {}
    if n_images:
        metrics["loss"] = loss_sum / n_images
    return metrics, written


def improved(value: float | None, best: float | None, monitor: str) -> bool:
    """Whether ``value`` beats ``best``: lower is better for loss and distances, higher for overlap."""
    if value is None or math.isnan(value):  # None or NaN never improves
        return False
    if best is None or math.isnan(best):
        return True
    lower = monitor.split("/")[0] in ("loss", "hd95", "assd", "train_loss")
    return value < best if lower else value > best
