"""mixup (seed 004) and cutmix on binary, multiclass, multilabel and distance-map targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _augment_data import cvc_sample, id_mask, multilabel_of
from scipy import stats

from medseg.training.batch_mix import cutmix, mixed_loss, mixup, sample_lambda


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(b: int = 4, h: int = 24, w: int = 32):
    """Images whose every pixel is unique to its sample, and targets of every task."""
    ids = torch.stack([torch.from_numpy(np.roll(id_mask(h, w), 3 * i, axis=1)) for i in range(b)])  # (B,H,W) long
    images = torch.arange(b * 3 * h * w, dtype=torch.float32).reshape(b, 3, h, w) / (b * 3 * h * w)
    binary = (ids > 0).float()[:, None]  # (B,1,H,W)
    multilabel = torch.from_numpy(np.stack([multilabel_of(m.numpy()) for m in ids])).permute(0, 3, 1, 2)
    dist = torch.randn(b, 3, h, w, generator=_gen(9))  # (B,C,H,W) float
    return images, {"ids": ids, "binary": binary, "multilabel": multilabel, "dist": dist}


@pytest.mark.parametrize(("alpha", "tol"), [(1.0, 0.03), (0.4, 0.03), (4.0, 0.02)])
def test_lambda_follows_beta(alpha, tol):
    g = _gen(123)
    lams = np.array([sample_lambda(alpha, g) for _ in range(1500)])
    assert abs(lams.mean() - 0.5) < tol
    assert abs(lams.var() - 1 / (4 * (2 * alpha + 1))) < 0.01  # Var of Beta(a, a)
    assert stats.kstest(lams, stats.beta(alpha, alpha).cdf).pvalue > 0.01
    # a wrong alpha is told apart
    assert stats.kstest(lams, stats.beta(alpha * 3, alpha * 3).cdf).pvalue < 0.01


def test_draws_repeat_with_the_generator_seed():
    images, t = _batch()
    a, b = mixup(images, t["ids"], 1.0, _gen(5)), mixup(images, t["ids"], 1.0, _gen(5))
    assert a.lam == b.lam and torch.equal(a.index, b.index) and torch.equal(a.images, b.images)
    c = cutmix(images, t["ids"], 1.0, _gen(6))
    d = cutmix(images, t["ids"], 1.0, _gen(6))
    assert c.box == d.box and torch.equal(c.targets, d.targets)
    assert mixup(images, t["ids"], 1.0, _gen(7)).lam != a.lam


def test_mixup_blends_images_and_pairs_every_target_kind():
    images, t = _batch()
    res = mixup(images, t, alpha=1.0, generator=_gen(1))
    assert 0 < res.lam < 1 and sorted(res.index.tolist()) == list(range(4))
    torch.testing.assert_close(res.images, res.lam * images + (1 - res.lam) * images[res.index])
    for k, v in t.items():
        assert res.targets_a[k] is v
        assert torch.equal(res.targets_b[k], v[res.index]) and res.targets_b[k].dtype == v.dtype
    tup = mixup(images, (t["ids"], t["dist"]), 1.0, _gen(1))
    assert isinstance(tup.targets_b, tuple) and torch.equal(tup.targets_b[0], t["ids"][tup.index])


def test_mixed_loss_is_the_seed_formula():
    images, t = _batch()
    res = mixup(images, t["ids"], 1.0, _gen(2))
    logits = torch.randn(4, 4, 24, 32, generator=_gen(3))
    expected = res.lam * F.cross_entropy(logits, t["ids"]) + (1 - res.lam) * F.cross_entropy(
        logits, t["ids"][res.index]
    )
    torch.testing.assert_close(mixed_loss(F.cross_entropy, logits, res.targets_a, res.targets_b, res.lam), expected)
    # by hand, without the library: lam * CE_a + (1 - lam) * CE_b from log-softmax
    logp = torch.log_softmax(logits, 1)
    ce = [-logp.gather(1, y[:, None]).mean() for y in (t["ids"], t["ids"][res.index])]
    torch.testing.assert_close(expected, res.lam * ce[0] + (1 - res.lam) * ce[1])


def test_mixed_boundary_loss_equals_loss_of_mixed_distance_maps():
    """Why distance maps are not mixed: the boundary loss is linear in them."""
    images, t = _batch()
    res = mixup(images, {"target": t["multilabel"].float(), "dist": t["dist"]}, 0.4, _gen(4))
    probs = torch.sigmoid(torch.randn(4, 3, 24, 32, generator=_gen(5)))

    def bce_plus_boundary(pred, target, dist):
        return F.binary_cross_entropy(pred, target) + (pred * dist).mean()

    def boundary(pred, dist):
        return (pred * dist).mean()

    lam, a, b = res.lam, res.targets_a, res.targets_b
    torch.testing.assert_close(
        mixed_loss(boundary, probs, {"dist": a["dist"]}, {"dist": b["dist"]}, lam),
        boundary(probs, lam * a["dist"] + (1 - lam) * b["dist"]),
    )
    expected = lam * bce_plus_boundary(probs, a["target"], a["dist"]) + (1 - lam) * bce_plus_boundary(
        probs, b["target"], b["dist"]
    )
    torch.testing.assert_close(mixed_loss(bce_plus_boundary, probs, a, b, lam), expected)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_pastes_one_exact_box_into_images_and_all_targets(seed):
    images, t = _batch()
    res = cutmix(images, t, alpha=1.0, generator=_gen(seed))
    y0, y1, x0, x1 = res.box
    inside = torch.zeros(24, 32, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert res.area_ratio == pytest.approx(inside.sum().item() / (24 * 32))
    for name, src in [("images", images), *t.items()]:
        out = res.images if name == "images" else res.targets[name]
        assert out.dtype == src.dtype and out.shape == src.shape
        torch.testing.assert_close(out[..., inside], src[res.index][..., inside], rtol=0, atol=0)
        torch.testing.assert_close(out[..., ~inside], src[..., ~inside], rtol=0, atol=0)
    assert set(res.targets["ids"].unique().tolist()) <= {0, 1, 2, 3}
    # pixels are unique per sample, so the changed pixels are exactly the box of each re-paired sample
    moved = (res.index != torch.arange(4)).sum().item()
    changed = (res.images != images).any(dim=1).sum().item()
    assert changed == moved * inside.sum().item()


def test_cutmix_area_follows_lambda():
    images, t = _batch(b=2, h=64, w=64)
    ratios = [cutmix(images, t["ids"], 1.0, _gen(s)).area_ratio for s in range(200)]
    # box side sqrt(1 - lam) with lam ~ U(0, 1): E[area] = 1/2 before border clipping, less after
    assert 0.25 < np.mean(ratios) < 0.5 and min(ratios) >= 0 and max(ratios) <= 1


def test_cutmix_on_real_cvc_frames(cvc_dir):
    import cv2

    frames, masks = [], []
    for stem in ("1", "2", "30", "60"):
        image, mask = cvc_sample(cvc_dir, stem)
        frames.append(cv2.resize(image, (64, 48), interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(mask.astype(np.uint8), (64, 48), interpolation=cv2.INTER_NEAREST))
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    ids = torch.from_numpy(np.stack(masks)).long()
    res = cutmix(images, ids[:, None].float(), 1.0, _gen(11))
    y0, y1, x0, x1 = res.box
    assert torch.equal(res.targets[:, :, y0:y1, x0:x1], ids[res.index][:, None, y0:y1, x0:x1].float())
    assert set(res.targets.unique().tolist()) <= {0.0, 1.0}
    mixed = mixup(images, ids, 1.0, _gen(12))
    assert mixed.images.min() >= 0 and mixed.images.max() <= 1


def test_bad_inputs_are_refused():
    images, t = _batch()
    with pytest.raises(ValueError, match="alpha must be a positive"):
        mixup(images, t["ids"], 0.0, _gen())
    with pytest.raises(ValueError, match="batch"):
        mixup(images, t["ids"][:2], 1.0, _gen())
    with pytest.raises(ValueError, match="floating"):
        cutmix((images * 255).to(torch.uint8), t["ids"], 1.0, _gen())
    with pytest.raises(ValueError, match=r"does not end in the images' \(H, W\)"):
        cutmix(images, t["ids"][:, :10], 1.0, _gen())
