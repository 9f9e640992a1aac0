"""Exact and near duplicates, and duplicates whose masks disagree, on crafted datasets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.jobs import Progress, Result, Started
from medseg.qc import duplicates_pairs as dup_mod
from medseg.qc import run_qc
from medseg.qc.duplicates import CHECKS, Fingerprint, hash_pairs, phash_and_thumb, popcount
from medseg.qc.duplicates_fingerprint import _HASH_THUMB
from medseg.qc.run import qc
from tests._qc_data import jpeg_roundtrip, natural, rect_mask, write_dataset

DUP_CHECKS = "exact_duplicate,near_duplicate,duplicate_mask_disagreement"
OTHERS = {"coffee_c": "coffee", "chelsea_d": "chelsea", "rocket_e": "rocket", "page_f": "page"}


def _open(root):
    return open_dataset(root, group_by="pattern", group_pattern=r"^([a-z]+)")


def _by(report, check):
    return {f.sample_id: f for f in report.findings if f.check == check}


def _dataset(tmp_path, extra):
    samples = {name: (natural(src), rect_mask(64, (8, 30, 8, 30))) for name, src in OTHERS.items()}
    samples.update(extra)
    return _open(write_dataset(tmp_path / "ds", samples))


def test_identical_image_under_two_names_with_disagreeing_masks_is_an_error(tmp_path):
    astro = natural("astronaut")
    ds = _dataset(
        tmp_path,
        {
            "astro_a": (astro, rect_mask(64, (10, 30, 10, 30))),
            "copy_b": (astro.copy(), rect_mask(64, (36, 60, 36, 60))),
        },
    )
    report = qc(ds, DUP_CHECKS, workers=1)
    exact = _by(report, "exact_duplicate")
    assert set(exact) == {"astro_a", "copy_b"}
    assert exact["astro_a"].details["others"] == ["copy_b"] and "group split would leak" in exact["astro_a"].message
    bad = _by(report, "duplicate_mask_disagreement")
    assert set(bad) == {"astro_a", "copy_b"}
    assert all(f.severity == "error" and f.value < 0.05 for f in bad.values())
    assert "label error" in bad["astro_a"].message
    assert _by(report, "near_duplicate") == {}  # exact pairs are not reported twice


def test_identical_images_with_identical_masks_only_report_the_duplicate(tmp_path):
    astro = natural("astronaut")
    ds = _dataset(tmp_path, {"astro_a": (astro, rect_mask(64)), "astro_b": (astro.copy(), rect_mask(64))})
    report = qc(ds, DUP_CHECKS, workers=1)
    assert set(_by(report, "exact_duplicate")) == {"astro_a", "astro_b"}
    assert "all in" not in _by(report, "exact_duplicate")["astro_a"].message
    assert _by(report, "duplicate_mask_disagreement") == {}


def test_jpeg_resave_and_brightness_change_are_near_duplicates_other_images_are_not(tmp_path):
    astro = natural("astronaut")
    bright = np.clip(astro.astype(float) * 1.1 + 5, 0, 255).astype(np.uint8)
    m = rect_mask(64)
    ds = _dataset(
        tmp_path, {"astro_a": (astro, m), "astro_jpeg": (jpeg_roundtrip(astro), m), "astro_bright": (bright, m)}
    )
    report = qc(ds, DUP_CHECKS, workers=2)
    near = _by(report, "near_duplicate")
    assert set(near) == {"astro_a", "astro_jpeg", "astro_bright"}
    assert {o["id"] for o in near["astro_a"].details["others"]} == {"astro_jpeg", "astro_bright"}
    assert near["astro_a"].severity == "info"  # all in one group
    assert all(o["distance"] <= 4 and o["correlation"] >= 0.995 for o in near["astro_a"].details["others"])
    assert _by(report, "exact_duplicate") == {} and _by(report, "duplicate_mask_disagreement") == {}


def test_same_picture_resaved_with_a_lost_mask_is_an_error(tmp_path):
    astro = natural("astronaut")
    ds = _dataset(
        tmp_path,
        {"astro_a": (astro, rect_mask(64)), "astro_jpeg": (jpeg_roundtrip(astro), np.zeros((64, 64), np.uint8))},
    )
    bad = _by(qc(ds, DUP_CHECKS, workers=1), "duplicate_mask_disagreement")
    assert set(bad) == {"astro_a", "astro_jpeg"} and bad["astro_jpeg"].severity == "error"
    assert bad["astro_jpeg"].value == 0.0


def test_loose_near_duplicates_only_warn_about_a_missing_class(tmp_path):
    astro = natural("astronaut")
    ds = _dataset(
        tmp_path,
        {"astro_a": (astro, rect_mask(64)), "astro_jpeg": (jpeg_roundtrip(astro), np.zeros((64, 64), np.uint8))},
    )
    # as if the JPEG copy were a neighbouring video frame: only identical pixels count as the same picture
    params = {"duplicate_mask_disagreement": {"same_min_correlation": 1.0}}
    bad = _by(qc(ds, DUP_CHECKS, params, workers=1), "duplicate_mask_disagreement")
    assert set(bad) == {"astro_jpeg"}
    assert bad["astro_jpeg"].severity == "warning" and "lacks" in bad["astro_jpeg"].message


def test_only_pairs_with_something_to_report_are_aligned(tmp_path, monkeypatch):
    """Aligning is most of a pair's cost: a pair that is not the same picture (here: the copy threshold out of
    reach) and labels the same classes has nothing to report and is not aligned; one lacking a class is."""
    astro = natural("astronaut")
    aligned = []
    real = dup_mod.aligned
    monkeypatch.setattr(dup_mod, "aligned", lambda *a, **k: aligned.append(1) or real(*a, **k))
    params = {"duplicate_mask_disagreement": {"same_min_correlation": 1.0}}
    for name, mask, found in ((0, rect_mask(64), set()), (1, np.zeros((64, 64), np.uint8), {"astro_jpeg"})):
        aligned.clear()
        ds = _dataset(
            tmp_path / str(name), {"astro_a": (astro, rect_mask(64)), "astro_jpeg": (jpeg_roundtrip(astro), mask)}
        )
        report = qc(ds, DUP_CHECKS, params, workers=1)
        assert set(_by(report, "near_duplicate")) == {"astro_a", "astro_jpeg"}  # the pair was judged ...
        assert set(_by(report, "duplicate_mask_disagreement")) == found
        assert len(aligned) == len(found)  # ... and aligned only where it had something to report


def test_hash_pairs_match_brute_force_and_popcount_fallback(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, 50, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, 50).astype(np.uint64)
    hashes = np.concatenate([base, base ^ flips])  # each base hash has a partner one bit away
    i, j, _ = hash_pairs(hashes, 3)
    brute = {
        (a, b) for a in range(100) for b in range(a + 1, 100) if (int(hashes[a]) ^ int(hashes[b])).bit_count() <= 3
    }
    assert set(zip(i.tolist(), j.tolist())) == brute and len(brute) >= 50
    expected = popcount(hashes)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert np.array_equal(popcount(hashes), expected)


def test_phash_is_stable_under_resize_and_differs_between_photos():
    from PIL import Image

    g = natural("chelsea", 128)[..., 0] / 255.0
    small = np.asarray(Image.fromarray(natural("chelsea", 128)).resize((90, 90)))[..., 0] / 255.0
    h1, t1 = phash_and_thumb(g)
    h2, t2 = phash_and_thumb(small)
    h3, t3 = phash_and_thumb(natural("coffee", 128)[..., 0] / 255.0)
    assert (h1 ^ h2).bit_count() <= 4 and float(t1 @ t2) > 0.98
    assert (h1 ^ h3).bit_count() > 12 and float(t1 @ t3) < 0.9
    assert phash_and_thumb(np.zeros((32, 32)))[1] is None  # a flat image has no correlation thumbnail


def test_run_qc_yields_progress_then_the_report(tmp_path):
    ds = _dataset(tmp_path, {})
    events = list(run_qc(ds, DUP_CHECKS, workers=1))
    started, progress, end = events[0], events[1:-1], events[-1]
    assert isinstance(started, Started) and started.total == len(ds)
    assert all(isinstance(e, Progress) for e in progress) and isinstance(end, Result)
    samples = [e for e in progress if e.stage == "samples"]
    # each stage's total is what its done reaches: the samples, then one step per dataset-wide check
    assert [e.done for e in samples] == list(range(len(ds) + 1)) and {e.total for e in samples} == {len(ds)}
    assert [(e.stage, e.done, e.total, e.item) for e in progress[len(samples) :]] == [
        ("dataset-wide checks", 0, 3, None)
    ] + [("dataset-wide checks", k, 3, name) for k, name in enumerate(DUP_CHECKS.split(","), 1)]
    report = end.value
    assert report.n_samples == len(ds) and report.checks == DUP_CHECKS.split(",")
    with pytest.raises(ValueError, match="did you mean 'near_duplicate'"):
        next(run_qc(ds, "near_duplicates"))


@pytest.mark.parametrize("copies", [3, 5])
def test_every_copy_of_an_exact_duplicate_group_names_all_the_others(tmp_path, copies):
    astro, cat = natural("astronaut"), natural("camera")
    extra = {f"astro_{k}": (astro.copy(), rect_mask(64)) for k in range(copies)}
    extra.update({f"cat_{k}": (cat.copy(), rect_mask(64)) for k in range(copies + 1)})
    report = qc(_dataset(tmp_path, extra), DUP_CHECKS, workers=1)
    exact = _by(report, "exact_duplicate")
    assert set(exact) == set(extra)
    for group in ("astro", "cat"):
        members = sorted(s for s in extra if s.startswith(group))
        for sid in members:
            others = [o for o in members if o != sid]
            assert sorted(exact[sid].details["others"]) == others and exact[sid].value == len(others), sid
    assert _by(report, "near_duplicate") == {} and _by(report, "duplicate_mask_disagreement") == {}


def _unit(rng, n=_HASH_THUMB * _HASH_THUMB) -> np.ndarray:
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def _partner(rng, thumb: np.ndarray, correlation: float) -> np.ndarray:
    """A unit vector whose dot product with ``thumb`` is ``correlation``."""
    u = _unit(rng)
    u -= (u @ thumb) * thumb
    return correlation * thumb + np.sqrt(1 - correlation**2) * u / np.linalg.norm(u)


def test_near_duplicate_thresholds_are_inclusive_at_distance_8_and_correlation_0_95():
    """Fingerprints built with a known hash distance and thumbnail correlation, judged with the check's defaults."""
    rng = np.random.default_rng(3)
    fps, expected = {}, {}
    for name, flipped, corr, near in [
        ("in", 8, 0.9505, True),
        ("far", 9, 0.999, False),
        ("weak", 8, 0.9495, False),
        ("close", 1, 0.9495, False),
        ("edge", 0, 0.9505, True),
    ]:
        base = int(rng.integers(0, 2**63))
        bits = rng.choice(64, flipped, replace=False)
        partner_hash = base ^ sum(1 << int(b) for b in bits)
        thumb = _unit(rng)
        fps[f"{name}_a"] = Fingerprint(f"{name}a", base, thumb.astype(np.float32), "m", {}, {})
        fps[f"{name}_b"] = Fingerprint(
            f"{name}b", partner_hash, _partner(rng, thumb, corr).astype(np.float32), "m", {}, {}
        )
        if near:
            expected[f"{name}_a"], expected[f"{name}_b"] = {f"{name}_b"}, {f"{name}_a"}
    check = next(c for c in CHECKS if c.name == "near_duplicate")
    ctx = SimpleNamespace(sample_ids=list(fps), cache={}, groups={s: s for s in fps}, paths={})
    found = check.decide({"fingerprint": fps}, ctx, dict(check.defaults))
    assert {f.sample_id: {o["id"] for o in f.details["others"]} for f in found} == expected
    distances = {f.sample_id: f.details["others"][0]["distance"] for f in found}
    assert distances["in_a"] == 8 and distances["edge_a"] == 0


def test_more_samples_than_one_block_of_the_distance_matrix_still_finds_every_near_duplicate(tmp_path):
    """2,100 tiny frames: the pairwise hash distances are computed in blocks of 2,048 rows."""
    assert dup_mod._BLOCK == 2048
    rng = np.random.default_rng(0)
    mask = rect_mask(16, (4, 10, 4, 10))
    samples = {f"s{n:04d}": (rng.integers(0, 256, (16, 16), dtype=np.uint8), mask) for n in range(2100)}

    def nudge(image):  # a re-encoded copy: a few pixels one grey level off
        out = image.copy()
        out[rng.integers(0, 16, 6), rng.integers(0, 16, 6)] ^= 1
        return out

    planted = {"s2095": "s0005", "s2090": "s2060"}  # across the two blocks, and both inside the second
    for copy, original in planted.items():
        samples[copy] = (nudge(samples[original][0]), mask)
    samples["s2099"] = (samples["s0007"][0].copy(), mask)
    report = qc(_open(write_dataset(tmp_path / "ds", samples)), "exact_duplicate,near_duplicate", workers=1)
    near = {sid: {o["id"] for o in f.details["others"]} for sid, f in _by(report, "near_duplicate").items()}
    assert near == {**{c: {o} for c, o in planted.items()}, **{o: {c} for c, o in planted.items()}}
    assert {sid: f.details["others"] for sid, f in _by(report, "exact_duplicate").items()} == {
        "s0007": ["s2099"],
        "s2099": ["s0007"],
    }


def test_hash_pairs_across_blocks_match_brute_force():
    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 2**63, 2 * dup_mod._BLOCK + 300, dtype=np.uint64)
    for a, b in [(3, 2100), (2050, 4200), (4100, 4300), (100, 200)]:  # within and across blocks of rows
        hashes[b] = hashes[a] ^ np.uint64(0b1011)
    i, j, d = hash_pairs(hashes, 8)
    found = set(zip(i.tolist(), j.tolist(), d.tolist()))
    assert {(3, 2100, 3), (2050, 4200, 3), (4100, 4300, 3), (100, 200, 3)} <= found
    for a, b, dist in found:
        assert a < b and (int(hashes[a]) ^ int(hashes[b])).bit_count() == dist <= 8


def _shifted_pair(iou_wanted: float):
    """Two 128 px windows of one photo, the second 2 px lower and further right (a re-cropped copy),
    each with the same disc where the picture shows it; the copy's disc shrunk to reach ``iou_wanted``."""
    from skimage.draw import disk

    big = natural("astronaut", 160)
    a = np.ascontiguousarray(big[10:138, 10:138])
    b = np.ascontiguousarray(big[12:140, 12:140])
    radius = 30.0
    small = radius * np.sqrt(iou_wanted)  # a concentric disc inside: IoU = (r'/r)^2
    ma = np.zeros((128, 128), np.uint8)
    mb = np.zeros((128, 128), np.uint8)
    ma[disk((64, 64), radius)] = 255
    mb[disk((62, 62), small)] = 255
    return a, ma, b, mb


@pytest.mark.parametrize("iou_wanted, flagged", [(0.85, True), (0.98, False)])
def test_a_shifted_copy_is_aligned_before_its_mask_is_compared(tmp_path, iou_wanted, flagged):
    a, ma, b, mb = _shifted_pair(iou_wanted)
    true_iou = ((ma > 0) & np.roll(mb > 0, (2, 2), (0, 1))).sum() / ((ma > 0) | np.roll(mb > 0, (2, 2), (0, 1))).sum()
    assert abs(true_iou - iou_wanted) < 0.02
    unaligned = ((ma > 0) & (mb > 0)).sum() / ((ma > 0) | (mb > 0)).sum()
    assert unaligned < 0.9  # compared in place even the faithful copy would be flagged
    ds = _open(write_dataset(tmp_path / "ds", {"astro_a": (a, ma), "copy_b": (b, mb)}))
    report = qc(ds, DUP_CHECKS, workers=1)
    bad = _by(report, "duplicate_mask_disagreement")
    if not flagged:
        assert bad == {}
        return
    assert set(bad) == {"astro_a", "copy_b"} and all(f.severity == "error" for f in bad.values())
    assert bad["astro_a"].details["partner"] == "copy_b" and bad["copy_b"].details["partner"] == "astro_a"
    assert abs(bad["astro_a"].value - iou_wanted) < 0.04
    assert "a copy" in bad["astro_a"].message and "shifted" in bad["astro_a"].message
    # the threshold is the QC parameter: at 0.8 the same pair passes
    loose = qc(ds, DUP_CHECKS, {"duplicate_mask_disagreement": {"min_iou": 0.8}}, workers=1)
    assert _by(loose, "duplicate_mask_disagreement") == {}


def test_candidates_to_align_are_aligned_by_batched_inverse_transforms_as_each_alone_would_be(monkeypatch):
    """Aligning a chunk's candidates takes one inverse FFT per batch of pairs, and each pair's correlation
    equals that of the pair's own phase-correlation shift (medseg.datasets.frame_similarity.aligned_correlation)."""
    from medseg.datasets.frame_similarity import aligned_correlation
    from medseg.qc import duplicates_align as da

    rng = np.random.default_rng(3)
    base = [rng.random((80, 80)).astype(np.float32) for _ in range(4)]
    greys = [
        np.ascontiguousarray(b[y : y + 64, x : x + 64]) for b in base for y, x in ((8, 8), (5, 9), (8, 2), (12, 14))
    ]
    pairs = [(a, b) for n, a in enumerate(greys) for b in greys[n + 1 :: 3]]
    calls = []
    real = np.fft.irfft2
    monkeypatch.setattr(da.np.fft, "irfft2", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = da.aligned_correlations([(da.picture(a), da.picture(b)) for a, b in pairs])
    assert len(pairs) == 45 and len(calls) == -(-len(pairs) // da._BATCH) < len(pairs) and len(got) == len(pairs)
    monkeypatch.undo()
    assert got == [aligned_correlation(a, b) for a, b in pairs]
    assert max(got) > 0.999 and min(got) < 0.2  # shifted copies were found, different pictures not


def test_the_odd_one_out_of_three_copies_is_the_error_and_its_copies_are_likely_right(tmp_path):
    astro = natural("astronaut")
    right, wrong = rect_mask(64, (10, 30, 10, 30)), rect_mask(64, (36, 60, 36, 60))
    extra = {"astro_a": (astro, right), "astro_b": (astro.copy(), right.copy()), "astro_c": (astro.copy(), wrong)}
    bad = _by(qc(_dataset(tmp_path, extra), DUP_CHECKS, workers=1), "duplicate_mask_disagreement")
    assert set(bad) == {"astro_a", "astro_b", "astro_c"}
    odd = bad["astro_c"]
    assert odd.severity == "error" and odd.details["odd_one_out_of"] == ["astro_a", "astro_b"]
    assert "odd one out" in odd.message and "likely label error" in odd.message
    for sid in ("astro_a", "astro_b"):
        assert bad[sid].severity == "info" and bad[sid].details["likely_wrong"] == ["astro_c"]
        assert "sample astro_c is the odd one out" in bad[sid].message
        assert [o["severity"] for o in bad[sid].details["others"]] == ["info"]


@pytest.mark.parametrize("split", [(1, 1), (2, 2)])
def test_copies_split_evenly_do_not_tell_which_is_wrong_every_one_stays_an_error(tmp_path, split):
    astro = natural("astronaut")
    extra = {f"astro_r{k}": (astro.copy(), rect_mask(64, (10, 30, 10, 30))) for k in range(split[0])}
    extra.update({f"astro_w{k}": (astro.copy(), rect_mask(64, (36, 60, 36, 60))) for k in range(split[1])})
    bad = _by(qc(_dataset(tmp_path, extra), DUP_CHECKS, workers=1), "duplicate_mask_disagreement")
    assert set(bad) == set(extra)
    assert all(f.severity == "error" and "one of the two is a label error" in f.message for f in bad.values())
    assert not any("odd_one_out_of" in f.details or "likely_wrong" in f.details for f in bad.values())


def test_the_queue_words_name_the_odd_ones_out_and_the_copies_in_the_plural_when_several():
    from medseg.findings import Finding
    from medseg.qc.queue_item import finding_penalty
    from medseg.qc.queue_words import signals

    def said(severity, **details):
        f = Finding("s", "duplicate_mask_disagreement", severity, "m", value=0.4, details=details)
        return signals((f,), finding_penalty, None, {}, None)[0 if severity == "error" else -1]

    others = [{"id": "b", "iou": 0.4, "severity": "error"}, {"id": "c", "iou": 0.3, "severity": "error"}]
    assert "with samples b, c (copies of the same image that do not disagree with one another): the odd one out" in (
        said("error", others=others, odd_one_out_of=["b", "c"])
    )
    assert "with sample b (the same image): one of them is wrong, queued together" in said("error", others=others[:1])
    one = said("info", others=[{"id": "x", "iou": 0.4, "severity": "info"}], likely_wrong=["x"])
    assert "with sample x (the same image), the odd one out among the image's copies: that label is" in one
    two = said("info", others=[], likely_wrong=["x", "y"])
    assert "with samples x, y (the same image), the odd ones out among the image's copies: those labels" in two


def test_many_copies_of_one_picture_are_judged_only_where_their_masks_differ(tmp_path, monkeypatch):
    """61 copies of a picture across three split groups, one with another mask: one pair to judge (a copy of each
    mask), not 60 or 1,830; each copy's details name at most LISTED others and one copy per other group."""
    from medseg.qc import duplicates, duplicates_disagree

    judged = []
    real = duplicates_disagree.exact_mask_pairs
    monkeypatch.setattr(
        duplicates_disagree, "exact_mask_pairs", lambda *a: judged.append(len((found := real(*a))[0])) or found
    )
    astro, right, wrong = natural("astronaut"), rect_mask(64, (10, 30, 10, 30)), rect_mask(64, (36, 60, 36, 60))
    extra = {f"{g}_{k:02d}": (astro.copy(), right.copy()) for k in range(20) for g in ("ab", "cd", "ef")}
    extra["ab_odd"] = (astro.copy(), wrong)
    report = qc(_dataset(tmp_path, extra), DUP_CHECKS, workers=1)
    assert judged == [1]
    exact = _by(report, "exact_duplicate")
    assert set(exact) == set(extra) and all(f.value == 60 for f in exact.values())
    assert all(len(f.details["others"]) == duplicates.LISTED for f in exact.values())
    assert exact["ab_00"].details["cross_group"] == ["cd_00", "ef_00"] and "and 52 more" in exact["ab_00"].message
    bad = _by(report, "duplicate_mask_disagreement")
    assert set(bad) == set(extra)
    odd = bad["ab_odd"]  # its details name NAMED of its 60 copies, its words count them all
    assert odd.severity == "error" and len(odd.details["odd_one_out_of"]) == duplicates_disagree.NAMED
    assert len(odd.details["others"]) == duplicates_disagree.NAMED and odd.details["others_not_listed"] == 10
    assert "disagrees with 60 copies of this picture" in odd.message and "(and 59 more pairs)" in odd.message
    assert all(bad[s].details["likely_wrong"] == ["ab_odd"] for s in extra if s != "ab_odd")
    assert all(bad[s].severity == "info" for s in extra if s != "ab_odd")


@pytest.mark.parametrize("majority, minority", [(120, 80), (100, 100)])
def test_hundreds_of_copies_with_two_masks_are_one_pair_and_name_a_bounded_few(
    tmp_path, monkeypatch, majority, minority
):
    """Copies of one picture with two masks: one pair judged whatever their number (they were up to k^2/4, and
    1,000 copies took 19 s and 455 MB of QC and 37 MB of findings); the fewer copies are the odd ones, or none
    when the counts tie; each finding names at most NAMED samples and counts the rest."""
    from medseg.qc import duplicates_disagree

    judged = []
    real = duplicates_disagree.exact_mask_pairs
    monkeypatch.setattr(
        duplicates_disagree, "exact_mask_pairs", lambda *a: judged.append(len((found := real(*a))[0])) or found
    )
    astro, right, wrong = natural("astronaut"), rect_mask(64, (10, 30, 10, 30)), rect_mask(64, (36, 60, 36, 60))
    extra = {f"m_{k:03d}": (astro, right) for k in range(majority)}
    extra.update({f"n_{k:03d}": (astro, wrong) for k in range(minority)})
    bad = _by(qc(_dataset(tmp_path, extra), "duplicate_mask_disagreement", workers=1), "duplicate_mask_disagreement")
    named = duplicates_disagree.NAMED
    assert judged == [1] and set(bad) == set(extra)
    assert all(len(f.details["others"]) == named for f in bad.values())
    assert bad["m_000"].details["others_not_listed"] == minority - named
    assert f"(and {minority - 1} more pairs)" in bad["m_000"].message
    if majority == minority:
        assert all(f.severity == "error" and "odd_one_out_of" not in f.details for f in bad.values())
        return
    odd = bad["n_079"]
    assert odd.severity == "error" and len(odd.details["odd_one_out_of"]) == named
    assert f"disagrees with {majority} copies of this picture" in odd.message
    assert all(bad[s].severity == "info" and len(bad[s].details["likely_wrong"]) == named for s in extra if s[0] == "m")
