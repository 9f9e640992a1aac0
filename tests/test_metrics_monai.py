"""Our Dice, IoU, HD95 and ASSD against MONAI's on shared cases, with anisotropic spacing.

MONAI is a test-only dependency (the ``testing`` extra): the engine does not
use it, this test checks the engine's definitions against it.
"""

from __future__ import annotations

import warnings

import monai.metrics as mm
import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.training.metrics import MetricAccumulator, dice_iou
from medseg.training.surface_metrics import assd, hd95

TOL = 1e-4


def _blobs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    m = ndimage.binary_opening(ndimage.gaussian_filter(rng.random(shape), 2) > 0.5)
    if not m.any():
        m[tuple(s // 2 for s in shape)] = True
    return m


def _cases() -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]]:
    rng = np.random.default_rng(1234)
    out = []
    for i in range(5):
        shape = (40, 48)
        out.append(
            (
                f"blobs{i}",
                _blobs(rng, shape),
                _blobs(rng, shape),
                (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.3, 2.0))),
            )
        )
    sq = np.zeros((32, 32), bool)
    sq[8:18, 8:18] = True
    out.append(("squares offset 3", sq, np.roll(sq, 3, axis=1), (0.8, 1.7)))
    yy, xx = np.mgrid[:40, :40]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2
    ring = disk & ((yy - 20) ** 2 + (xx - 20) ** 2 >= 6**2)
    out.append(("ring vs disk", ring, disk, (1.0, 1.0)))
    edge = np.zeros((24, 30), bool)
    edge[:, :9] = True
    out.append(("touching the image edge", edge, np.roll(edge, 4, axis=1) & (xx[:24, :30] >= 2), (0.5, 3.0)))
    a, b = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    a[2, 3], b[11, 13], b[12, 2:6] = True, True, True
    out.append(("pixels and a line", a, b, (1.2, 0.9)))
    vol_rng = np.random.default_rng(7)
    out.append(("volume", _blobs(vol_rng, (10, 24, 24)), _blobs(vol_rng, (10, 24, 24)), (3.0, 0.7, 0.7)))
    return out


CASES = _cases()


def _t(m: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(m)[None, None].float()


@pytest.mark.parametrize("name,pred,gt,spacing", CASES, ids=[c[0] for c in CASES])
def test_matches_monai(name, pred, gt, spacing):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_hd = mm.compute_hausdorff_distance(
            _t(pred), _t(gt), include_background=True, percentile=95, spacing=spacing
        ).item()
        m_assd = mm.compute_average_surface_distance(
            _t(pred), _t(gt), include_background=True, symmetric=True, spacing=spacing
        ).item()
        m_dice = mm.compute_dice(_t(pred), _t(gt), include_background=True, ignore_empty=False).item()
        m_iou = mm.compute_iou(_t(pred), _t(gt), include_background=True, ignore_empty=False).item()
    dice, iou = dice_iou(pred[None, None], gt[None, None])
    assert dice[0, 0] == pytest.approx(m_dice, abs=TOL)
    assert iou[0, 0] == pytest.approx(m_iou, abs=TOL)
    assert hd95(pred, gt, spacing) == pytest.approx(m_hd, abs=TOL, rel=TOL)
    assert assd(pred, gt, spacing) == pytest.approx(m_assd, abs=TOL, rel=TOL)
    assert m_hd > 0 and m_assd > 0  # every case has a real surface distance to compare


def test_empty_dice_iou_as_monai_without_ignore_empty():
    empty, blob = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    blob[2:5, 2:5] = True
    for p, g in [(empty, empty), (blob, empty), (empty, blob)]:
        dice, iou = dice_iou(p[None, None], g[None, None])
        assert dice[0, 0] == mm.compute_dice(_t(p), _t(g), ignore_empty=False).item()
        assert iou[0, 0] == mm.compute_iou(_t(p), _t(g), ignore_empty=False).item()


def test_accumulator_matches_monai_on_a_multiclass_batch():
    rng = np.random.default_rng(99)
    ids_t = np.stack([_blobs(rng, (40, 40)).astype(np.int64) for _ in range(3)])
    ids_t[:, 30:, :8] = 2
    ids_p = ids_t.copy()
    ids_p[0] = np.roll(ids_p[0], 2, axis=0)  # both classes shifted
    ids_p[1] = np.where(_blobs(rng, (40, 40)), 1, ids_p[1])  # extra class-1 blobs
    ids_p[1, 30:, :8] = 2
    ids_p[2, 26:, :11] = 2  # class 2 too large
    spacing = [(1.0, 0.5), (2.0, 2.0), (0.7, 1.3)]
    acc = MetricAccumulator("multiclass", 3)
    ours = acc.update(ids_p, ids_t, spacing=spacing)
    onehot = lambda ids: torch.nn.functional.one_hot(torch.from_numpy(ids), 3).movedim(-1, 1).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {
            "dice": mm.compute_dice(onehot(ids_p), onehot(ids_t), include_background=False, ignore_empty=False),
            "hd95": mm.compute_hausdorff_distance(
                onehot(ids_p), onehot(ids_t), include_background=False, percentile=95, spacing=spacing
            ),
            "assd": mm.compute_average_surface_distance(
                onehot(ids_p), onehot(ids_t), include_background=False, symmetric=True, spacing=spacing
            ),
        }
    for k, v in theirs.items():
        np.testing.assert_allclose(ours[k], v.numpy(), rtol=TOL, atol=TOL, err_msg=k)
    r = acc.compute()
    assert r["dice"] == pytest.approx(float(theirs["dice"].mean(0).mean()), abs=TOL)
    assert r["hd95"] == pytest.approx(float(theirs["hd95"].mean(0).mean()), abs=TOL)
