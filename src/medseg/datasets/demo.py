"""A small generated dataset that ships with the package: the launcher's sample and the docs' walkthrough.

Frames look like colonoscopy (mucosa with folds, a dark lumen, vessels, a lit
polyp, glints, the black corners of the optics) but are generated, not patient
data. They come as short "videos": each sequence is one scene seen through a
slowly moving camera, numbered like CVC-ClinicDB (``1.png``, ``2.png``, ...),
so the dataset layer finds the sequences as groups. A few masks are wrong on
purpose (``PLANTED_KINDS``) so that QC and the review queue have something real
to find; ``make_demo_dataset`` returns which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PLANTED_KINDS = ("shifted", "eroded", "missing", "other_frame", "grey_noise")
_TINTS = ((1.0, 1.0, 1.0), (0.78, 1.1, 1.3), (1.12, 0.8, 0.7), (0.9, 0.75, 1.35), (1.1, 1.05, 0.6))


@dataclass(frozen=True)
class DemoDataset:
    root: Path
    n_frames: int
    sequences: int
    planted: dict[str, str]  # sample id -> kind of planted label error


def make_demo_dataset(
    root: str | Path,
    sequences: int = 4,
    frames: int = 6,
    shape: tuple[int, int] = (144, 192),
    seed: int = 0,
    planted: int = 5,
) -> DemoDataset:
    """Write ``images/N.png`` and ``masks/N.png`` (0/255) into ``root`` (created; must be empty or absent).

    ``planted`` masks (spread over the sequences) get a realistic error: moved by
    a tenth of the frame, eroded, emptied, swapped for another sequence's mask,
    or overlaid with JPEG-like grey noise.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: the demo dataset is written into a new or empty folder")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = shape
    margin = max(h, w) // 8
    frames_out: list[tuple[np.ndarray, np.ndarray]] = []
    for s in range(sequences):
        big, big_mask = synthetic_endoscopy_frame(
            (h + 2 * margin, w + 2 * margin), seed=seed * 100 + s, tint=_TINTS[s % len(_TINTS)]
        )
        start = rng.integers(0, margin, 2)
        step = rng.normal(0, margin / (2 * frames), 2)
        for f in range(frames):
            y, x = np.clip(np.round(start + step * f), 0, 2 * margin).astype(int)
            frames_out.append((big[y : y + h, x : x + w], big_mask[y : y + h, x : x + w]))
    n = len(frames_out)
    victims = sorted(rng.choice(n, size=min(planted, n), replace=False).tolist())
    kinds = {i: PLANTED_KINDS[k % len(PLANTED_KINDS)] for k, i in enumerate(victims)}
    for i, (frame, mask) in enumerate(frames_out):
        out = (mask > 0).astype(np.uint8) * 255
        if i in kinds:
            other = frames_out[(i + frames * (1 + sequences // 2)) % n][1]
            out = _plant(out, kinds[i], other, rng)
        Image.fromarray(frame).save(root / "images" / f"{i + 1}.png")
        Image.fromarray(out).save(root / "masks" / f"{i + 1}.png")
    return DemoDataset(root, n, sequences, {str(i + 1): kind for i, kind in kinds.items()})


def _plant(mask: np.ndarray, kind: str, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    fg = mask > 0
    if kind == "shifted":
        dy, dx = (np.array(mask.shape) // 10) * rng.choice([-1, 1], 2)
        return (np.roll(fg, (int(dy), int(dx)), axis=(0, 1)) * 255).astype(np.uint8)
    if kind == "eroded":
        return (ndimage.binary_erosion(fg, iterations=max(2, min(mask.shape) // 30)) * 255).astype(np.uint8)
    if kind == "missing":
        return np.zeros_like(mask)
    if kind == "other_frame":
        return ((other > 0) * 255).astype(np.uint8)
    noisy = mask.copy()
    edge = ndimage.binary_dilation(fg, iterations=3) & ~fg
    noisy[edge] = rng.integers(8, 112, int(edge.sum()))
    return noisy


def synthetic_endoscopy_frame(
    shape: tuple[int, int] = (288, 384), seed: int = 0, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB frame, uint8 0/1 polyp mask): mucosa with folds, a dark lumen, vessels,
    a raised polyp lit from the camera, specular highlights and the black corners of the optics."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ly, lx = h * rng.uniform(0.3, 0.45), w * rng.uniform(0.55, 0.7)  # lumen centre
    r_lumen = np.hypot(yy - ly, xx - lx) / max(h, w)
    angle = np.arctan2(yy - ly, xx - lx)
    folds = 0.5 + 0.5 * np.sin(r_lumen * 38 + 0.6 * np.sin(3 * angle + rng.uniform(0, 6)))
    light = np.clip(r_lumen * 2.2, 0.08, 1.0) ** 0.7  # far wall (lumen) is dark
    texture = gaussian_filter(rng.standard_normal(shape), 6)
    texture /= np.abs(texture).max()
    vessels = np.abs(gaussian_filter(rng.standard_normal(shape), 5))
    vessels = np.clip(1 - vessels / (0.08 * vessels.max()), 0, 1) ** 4  # thin dark ridges

    py, px = h * rng.uniform(0.55, 0.7), w * rng.uniform(0.25, 0.4)  # polyp centre
    ry, rx = h * rng.uniform(0.12, 0.16), w * rng.uniform(0.1, 0.13)
    theta = np.arctan2(yy - py, xx - px)
    wobble = 1 + sum(0.05 * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    rho = np.hypot((yy - py) / ry, (xx - px) / rx) / wobble
    mask = (rho < 1).astype(np.uint8)
    dome = np.sqrt(np.clip(1 - rho**2, 0, 1))  # raised, lit from the camera

    mucosa = np.array([225, 130, 90], np.float32) * np.asarray(tint, np.float32)
    polyp = np.array([215, 120, 100], np.float32)
    shade = (0.75 + 0.25 * folds) * light * (1 + 0.12 * texture) * (1 - 0.25 * vessels)
    rgb = mucosa * shade[..., None]
    blend = gaussian_filter(mask.astype(np.float32), 1.5)[..., None]
    polyp_rgb = polyp * ((0.55 + 0.6 * dome) * (1 + 0.08 * texture))[..., None]
    rgb = rgb * (1 - blend) + polyp_rgb * blend
    spec = np.zeros(shape, np.float32)
    for _ in range(6):  # wet-surface glints
        cy, cx = (py, px) if rng.random() < 0.5 else (ly, lx)
        sy, sx = cy + rng.normal(0, ry * 0.5), cx + rng.normal(0, rx * 0.8)
        spec += np.exp(-(((yy - sy) / rng.uniform(1.5, 3)) ** 2 + ((xx - sx) / rng.uniform(2, 5)) ** 2))
    rgb = rgb + 255 * np.clip(spec, 0, 1)[..., None]
    fov = np.hypot((yy - h / 2) / (0.62 * h), (xx - w / 2) / (0.6 * w)) < 1  # optics: black corners
    rgb *= fov[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8), mask * fov
