"""Ranking volumes: per-slice scores, a volume's score from its worst slices, the slices the queue names, and a
fold model trained on other cases' slices pointing at the slices planted wrong."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_train_data import synthetic_dataset, volume_config

from medseg.classmap import ClassMap
from medseg.findings import Finding
from medseg.io.volume_geometry import label_image_like
from medseg.io.volume_labels import read_label_volume
from medseg.qc.label_scores import label_score
from medseg.qc.queue import score_phrase, worst_slices
from medseg.qc.volume_scores import MIN_WORST, volume_score, worst_count

CLASSMAP = ClassMap.from_names(["liver", "spleen", "kidney_left"])


def ellipsoid_labels(shape=(20, 32, 32)) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, np.uint8)
    labels[((z - 10) / 8) ** 2 + ((y - 12) / 6) ** 2 + ((x - 12) / 6) ** 2 < 1] = 1
    labels[((z - 9) / 6) ** 2 + ((y - 22) / 4) ** 2 + ((x - 22) / 5) ** 2 < 1] = 2
    return labels


def confident_probs(labels2d: np.ndarray, classmap: ClassMap = CLASSMAP) -> np.ndarray:
    """A model that sees the clean label: 0.85 on its class, the rest shared (channels: background, ids)."""
    n = len(classmap.ids) + 1
    probs = np.full((n, *labels2d.shape), 0.15 / (n - 1), np.float32)
    for c in range(n):
        probs[c][labels2d == c] = 0.85
    return probs


def scores(labels: np.ndarray, truth: np.ndarray) -> dict:
    return {z: label_score(confident_probs(truth[z]), labels[z], CLASSMAP) for z in range(labels.shape[0])}


def test_a_volume_scores_as_its_worst_slices_and_names_them():
    truth = ellipsoid_labels()
    clean_score, clean = volume_score(scores(truth, truth), truth.shape[0])
    labels = truth.copy()
    labels[9] = np.roll(labels[9], 8, axis=1)  # one slice shifted
    labels[13][labels[13] == 1] = 0  # one slice missing the liver
    score, d = volume_score(scores(labels, truth), labels.shape[0])
    judged = int(truth.any(axis=(1, 2)).sum())
    assert d["n_judged"] == judged == clean["n_judged"] and d["n_slices"] == 20
    assert d["worst_k"] == worst_count(judged) == max(MIN_WORST, -(-judged // 10))
    assert set(d["worst_slices"][:2]) == {9, 13}
    assert d["slice_scores"][9] < 0.7 < d["slice_scores"][10]
    worst = sorted(d["slice_scores"].values())[: d["worst_k"]]
    assert score == pytest.approx(np.mean(worst), abs=1e-4)
    assert clean_score > score + 0.2
    # a mean over every judged slice would hide two bad slices among the good ones
    means = [np.mean(list(x["slice_scores"].values())) for x in (clean, d)]
    assert means[0] - means[1] < (clean_score - score) / 3
    phrase = score_phrase(score, {**d, "out_of_fold": True}, "oof-k2")
    assert phrase.startswith(f"Dice {d['dice']:.2f} between out-of-fold prediction and label on its 3 worst slices")


def test_an_empty_volume_that_the_model_leaves_empty_is_right():
    empty = np.zeros((6, 16, 16), np.uint8)
    score, d = volume_score(scores(empty, empty), 6)
    assert score == 1.0 and d["n_judged"] == 0 and d["worst_slices"] == []


def test_the_queue_names_finding_slices_before_the_models_worst():
    found = (
        Finding("c", "slice_jump", "warning", "m", details={"slices": [7, 30], "z": 30}),
        Finding("c", "stray_island", "info", "m", details={"slices": [2], "z": 2}),
        Finding("c", "slice_gap", "warning", "m", details={"slices": [11, 12], "z": 11}),
    )
    assert worst_slices({"worst_slices": [5, 30, 6]}, found) == (30, 11, 5, 6, 7, 12, 2)
    assert worst_slices({}, ()) == ()
    assert worst_slices({"dice": 0.5}, (Finding("c", "specks", "warning", "m"),)) == ()  # a 2-D sample


def test_a_model_trained_on_other_cases_points_to_the_slices_planted_wrong(tmp_path):
    from medseg.inference import Predictor
    from medseg.jobs import run
    from medseg.qc.volume_scores import score_volume
    from medseg.training import Trainer
    from medseg.training.config import TrainConfig

    ds = synthetic_dataset(tmp_path / "ds", n_cases=4)
    # 3 cases x 10 slices, 30 epochs of 4 steps at 32 x 32: a weak model (its clean slices score ~0.55)
    cfg = volume_config(tmp_path / "ds", tmp_path / "run", epochs=30, max_steps_per_epoch=10, batch_size=8)
    summary = run(Trainer(TrainConfig.from_dict(cfg), dataset=dataclasses.replace(ds, samples=ds.samples[:3])).run())
    predictor = Predictor(summary.checkpoint, device="cpu")
    held = ds.samples[3]
    labels, _ = read_label_volume(held.mask_paths[1])
    clean_score, clean = score_volume(predictor, held, ds.classmap)
    bad = labels.copy()
    bad[5] = np.roll(bad[5], 12, axis=1)  # organs drawn 12 px off
    bad[6][:] = 1  # a slice painted liver throughout
    path = tmp_path / "bad.nii.gz"
    nib.save(label_image_like(bad, held.image_path, held.geometry), str(path))
    score, d = score_volume(predictor, dataclasses.replace(held, id="bad", mask_paths={1: path}), ds.classmap)
    assert set(d["worst_slices"][:2]) == {5, 6}
    assert d["slice_scores"][6] < d["slice_scores"][5] < min(clean["slice_scores"].values())
    assert score < clean_score - 0.1
    for z in set(range(10)) - {5, 6}:  # the other slices are scored as before
        assert d["slice_scores"].get(z) == clean["slice_scores"].get(z)
