"""Finding 11 of issue 16 on real CVC-ClinicDB frames: a copied frame whose mask was redrawn smaller
(IoU about 0.85) is a label error in one of the copies; here three copies tell which (the redrawn one
disagrees with two that agree): it is the error, ahead of the clean frames, its copies keep an info finding
naming it; an anti-aliasing-level difference (IoU above 0.95) is not flagged."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image
from scipy import ndimage

from medseg.qc import qc, review_queue
from medseg.workspace import Workspace

FRAMES = range(100, 116)  # 16 frames of two videos (polyps of 3,000-26,000 px)
ORIGINAL, COPY, NEXT = "112", "900", "113"  # frame 112's polyp: about 25,700 px
SMOOTH, SMOOTH_COPY = "105", "901"


def _mask(path):
    m = np.asarray(Image.open(path))
    return (m[..., 0] if m.ndim == 3 else m) > 127


def _iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def _planted(cvc_dir, root):
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for k in FRAMES:
            shutil.copyfile(cvc_dir / sub / f"{k}.png", root / sub / f"{k}.png")
    shutil.copyfile(cvc_dir / "images" / f"{ORIGINAL}.png", root / "images" / f"{COPY}.png")
    shutil.copyfile(cvc_dir / "images" / f"{SMOOTH}.png", root / "images" / f"{SMOOTH_COPY}.png")
    src = _mask(cvc_dir / "masks" / f"{ORIGINAL}.png")
    eroded = ndimage.binary_erosion(src, iterations=6)
    Image.fromarray(eroded.astype(np.uint8) * 255).save(root / "masks" / f"{COPY}.png")
    smooth = _mask(cvc_dir / "masks" / f"{SMOOTH}.png")
    # the edge of an anti-aliased outline binarised at another level: a one-pixel rim on one side
    rim = ndimage.binary_dilation(smooth) & ~smooth
    rim[:, : smooth.shape[1] // 2] = False
    Image.fromarray((smooth | rim).astype(np.uint8) * 255).save(root / "masks" / f"{SMOOTH_COPY}.png")
    return _iou(src, eroded), _iou(smooth, smooth | rim)


def test_a_copied_frame_with_a_redrawn_mask_is_the_odd_one_out_of_its_copies(cvc_dir, tmp_path):
    iou, smooth_iou = _planted(cvc_dir, tmp_path / "cvc")
    assert 0.8 < iou < 0.9 and smooth_iou > 0.95
    with Workspace.create(tmp_path / "ws", tmp_path / "cvc") as ws:
        report = qc(ws, workers=1)
        bad = {f.sample_id: f for f in report.findings if f.check == "duplicate_mask_disagreement"}
        # frame 113 is a near-copy of 112 (aligned picture correlation 0.99995, masks at IoU 0.98): the
        # redrawn copy disagrees with both, they do not disagree with each other, so the copy is the error;
        # the smooth pair (IoU > 0.95) is not flagged
        assert set(bad) == {ORIGINAL, COPY, NEXT}
        assert bad[COPY].severity == "error" and bad[COPY].details["odd_one_out_of"] == sorted([ORIGINAL, NEXT])
        assert {o["id"] for o in bad[COPY].details["others"]} == {ORIGINAL, NEXT}
        assert abs(bad[COPY].value - iou) < 0.05 and "the odd one out" in bad[COPY].message
        for right in (ORIGINAL, NEXT):
            assert bad[right].severity == "info" and bad[right].details["likely_wrong"] == [COPY]
            assert bad[right].details["partner"] == COPY and f"sample {COPY} is the odd one out" in bad[right].message

        queue = review_queue(ws)
        order = [i.sample_id for i in queue]
        clean = [i.sample_id for i in queue if not i.findings]
        assert clean and all(order.index(s) > order.index(COPY) for s in clean)
        assert [i.priority for i in queue] == sorted(i.priority for i in queue)
        odd = queue[order.index(COPY)]
        assert odd.signals[0].startswith("QC error: duplicate image's mask disagrees (IoU 0.8")
        assert "the odd one out, most likely the wrong label" in odd.signals[0]
        right = queue[order.index(ORIGINAL)]
        assert right.priority > odd.priority + 0.5  # not pulled up with the odd one: no error of its own
        assert any(f"with sample {COPY} (the same image), the odd one out" in s for s in right.signals)


def test_a_copied_frame_whose_mask_disagrees_with_its_only_copy_is_queued_together_with_it(cvc_dir, tmp_path):
    iou, _ = _planted(cvc_dir, tmp_path / "cvc")
    (tmp_path / "cvc" / "images" / f"{NEXT}.png").unlink()  # the near-copy of 112 gone: a pair, not three
    (tmp_path / "cvc" / "masks" / f"{NEXT}.png").unlink()
    with Workspace.create(tmp_path / "ws", tmp_path / "cvc") as ws:
        report = qc(ws, workers=1)
        bad = {f.sample_id: f for f in report.findings if f.check == "duplicate_mask_disagreement"}
        assert set(bad) == {ORIGINAL, COPY} and all(f.severity == "error" for f in bad.values())
        assert bad[ORIGINAL].details["partner"] == COPY and bad[COPY].details["partner"] == ORIGINAL
        queue = review_queue(ws)
        order = [i.sample_id for i in queue]
        at = sorted(order.index(s) for s in (ORIGINAL, COPY))
        assert at[1] == at[0] + 1  # queued together: one of the two is wrong, only a look at both says which
        assert order[at[0]] == COPY  # the redrawn label, the likelier error by its own signals, first
        clean = [i.sample_id for i in queue if not i.findings]
        assert clean and all(order.index(s) > at[1] for s in clean)
        assert queue[at[0]].priority == queue[at[1]].priority
        assert "one of them is wrong, queued together" in queue[at[0]].signals[0]


def test_the_threshold_is_a_qc_parameter(cvc_dir, tmp_path):
    iou, _ = _planted(cvc_dir, tmp_path / "cvc")
    from medseg.datasets import open_dataset

    ds = open_dataset(tmp_path / "cvc")
    loose = {"duplicate_mask_disagreement": {"min_iou": 0.5}}
    report = qc(ds, "exact_duplicate,duplicate_mask_disagreement", loose, workers=1)
    assert [f for f in report.findings if f.check == "duplicate_mask_disagreement"] == []
    assert report.params["duplicate_mask_disagreement"]["min_iou"] == 0.5


def test_a_pair_the_other_signals_tell_apart_keeps_the_trusted_label_in_its_own_place(cvc_dir, tmp_path):
    """A copy of frame 112 whose mask was moved off the polyp: two copies cannot tell which label is wrong, the
    picture's edges and the neighbouring frames can. The moved one keeps the error at the top; 112 reads its
    error as info naming the copy (queue_state.told_pairs), in the queue computed and in the one read back."""
    _planted(cvc_dir, tmp_path / "cvc")
    for sub in ("images", "masks"):
        (tmp_path / "cvc" / sub / f"{NEXT}.png").unlink()  # a pair, not three copies
    moved = np.roll(_mask(cvc_dir / "masks" / f"{ORIGINAL}.png"), (60, 90), axis=(0, 1))
    Image.fromarray(moved.astype(np.uint8) * 255).save(tmp_path / "cvc" / "masks" / f"{COPY}.png")
    with Workspace.create(tmp_path / "ws", tmp_path / "cvc") as ws:
        report = qc(ws, workers=1)
        bad = {f.sample_id: f for f in report.findings if f.check == "duplicate_mask_disagreement"}
        assert set(bad) == {ORIGINAL, COPY} and all(f.severity == "error" for f in bad.values())  # as QC stores them
        for queue in (review_queue(ws), review_queue(ws)):  # computed, then read back from the stored order
            order = [i.sample_id for i in queue]
            assert order[0] == COPY
            assert (
                f"with sample {ORIGINAL} (the same image): the other signals trust that label more"
                in (queue[0].signals[0])
            )
            item = queue[order.index(ORIGINAL)]
            (told,) = [f for f in item.findings if f.check == "duplicate_mask_disagreement"]
            assert told.severity == "info" and told.details["trusted_over"] == [COPY]
            assert any(s.startswith("QC info") and "the other signals trust this label more" in s for s in item.signals)
            assert order.index(ORIGINAL) > 1  # not pulled up beside the copy
