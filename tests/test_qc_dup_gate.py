"""The duplicate-mask check's gate: a hash candidate is aligned only if its magnitude spectra say it could
reach the correlation the judge needs of it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.classmap import ClassMap
from medseg.qc import duplicates_disagree as dis
from medseg.qc.checks_base import SampleView
from medseg.qc.duplicates import CHECKS
from medseg.qc.duplicates_align import aligned_correlation, magnitudes, picture
from medseg.qc.duplicates_fingerprint import fingerprint
from tests._qc_data import jpeg_roundtrip, natural

PARAMS = dict(next(c for c in CHECKS if c.name == "duplicate_mask_disagreement").defaults)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def _fp(image: np.ndarray, mask: np.ndarray):
    return fingerprint(SampleView("x", mask, ClassMap.binary("foreground"), image=image, rgb=True))


def _copies(name: str) -> dict[str, np.ndarray]:
    """A 128 px window of a photo and copies of it: re-cropped a few pixels off (shifted), cropped and
    edge-padded back, JPEG re-saved, brighter."""
    big = natural(name, 160)
    a = big[10:138, 10:138]
    return {
        "original": a,
        "shifted 2 px": big[12:140, 12:140],
        "shifted 6 px": big[16:144, 6:134],
        "padded 4 px": np.pad(a[4:, 4:], ((0, 4), (0, 4), (0, 0)), mode="edge"),
        "jpeg": jpeg_roundtrip(a),
        "brighter": np.clip(a.astype(int) * 115 // 100, 0, 255).astype(np.uint8),
    }


def _bound(ga: np.ndarray, gb: np.ndarray) -> float:
    ma, mb = magnitudes([ga, gb])
    return float(ma @ mb)


@pytest.mark.parametrize("name", PHOTOS[:4])
def test_copies_that_align_to_a_threshold_pass_the_gate_and_different_photos_do_not(name):
    copies = {k: _fp(v, np.zeros(v.shape[:2], np.uint8)) for k, v in _copies(name).items()}
    a = copies.pop("original")
    for what, b in copies.items():
        corr = aligned_correlation(picture(a.grey), picture(b.grey))
        assert corr >= PARAMS["same_min_correlation"], what  # each copy is the same picture once aligned ...
        assert _bound(a.grey, b.grey) >= PARAMS["same_min_correlation"] - dis.GATE_MARGIN, what  # ... kept
    others = [_fp(natural(o, 128), np.zeros((128, 128), np.uint8)) for o in PHOTOS if o != name]
    for o in others:
        assert _bound(a.grey, o.grey) < PARAMS["near_min_correlation"] - dis.GATE_MARGIN  # dropped


def test_a_circular_shift_keeps_the_whole_bound():
    g = _fp(natural("astronaut", 64), np.zeros((64, 64), np.uint8)).grey
    assert _bound(g, np.roll(g, (5, -3), (0, 1))) == pytest.approx(1.0, abs=1e-5)


def _candidates(pairs: dict[str, tuple]) -> tuple[list, dict]:
    fps, chunk = {}, []
    for key, (a, b) in pairs.items():
        fps[key + "/a"], fps[key + "/b"] = a, b
        chunk.append((key + "/a", key + "/b", 4))
    return chunk, fps


def test_the_gate_drops_only_candidates_whose_judgement_reports_nothing(monkeypatch):
    """Judged with and without the gate, crafted candidates give the same findings; the gate aligns the
    copies but not the different photos, with a mask on both sides or on one only."""
    disc = np.zeros((128, 128), np.uint8)
    disc[40:90, 30:80] = 1
    pairs = {}
    for name in PHOTOS[:3]:
        copies = _copies(name)
        a = _fp(copies["original"], disc)
        for what in ("shifted 2 px", "shifted 6 px", "padded 4 px"):
            # a copy whose mask was redrawn smaller: the judge flags it
            pairs[f"{name} {what}"] = (a, _fp(copies[what], disc * np.roll(disc, 6, 0)))
        for other in PHOTOS[3:]:
            pairs[f"{name} vs {other}"] = (a, _fp(natural(other, 128), disc))
        pairs[f"{name} vs {PHOTOS[-1]}, no mask"] = (a, _fp(natural(PHOTOS[-1], 128), 0 * disc))
    chunk, fps = _candidates(pairs)

    def judged(margin):
        monkeypatch.setattr(dis, "GATE_MARGIN", margin)
        aligned = []
        real = dis.aligned_correlations
        monkeypatch.setattr(dis, "aligned_correlations", lambda p: aligned.extend(p) or real(p))
        ctx = SimpleNamespace(cache={})
        return sorted(dis.judge_candidates(ctx, chunk, fps, PARAMS)), len(aligned)

    gated, n_gated = judged(dis.GATE_MARGIN)
    full, n_full = judged(2.0)  # every candidate aligned: the check as it was
    assert gated == full
    flagged = {sid.rsplit("/", 1)[0] for sid, _ in gated}
    assert flagged == {k for k in pairs if "shifted" in k or "padded" in k}
    assert n_full == len(pairs) == 21 and n_gated == 9  # the 9 copies


def test_pictures_made_together_are_those_made_one_at_a_time_bit_for_bit():
    from medseg.qc.duplicates_align import pictures_of

    rng = np.random.default_rng(5)
    greys = [rng.random((64, 64)).astype(np.float16) for _ in range(9)]
    greys += [_fp(natural(name, 128), np.zeros((128, 128), np.uint8)).grey for name in PHOTOS]
    for one, together in zip(map(picture, greys), pictures_of(greys)):
        for a, b in zip(one, together):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
