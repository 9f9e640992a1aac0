"""Histogram equalisation on volumes: a model trained on CT slices with ``data.equalize`` is fed, slice for slice,
the same input by ``predict_volume`` as the network saw in training (CT window, and 2.5-D neighbours)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_train_data import real_dataset, synthetic_dataset, volume_config

from medseg.inference import Predictor
from medseg.inference.predict_volume import iter_predict_volume
from medseg.inference.volume_input import VolumeInput
from medseg.jobs import run
from medseg.models import load_checkpoint
from medseg.training import Trainer

CLAHE = {"method": "clahe", "clip_limit": 0.02, "kernel_size": [4, 4], "nbins": 256}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("veq") / "ds", n_cases=4)


def _train(dataset, out, **data):
    """Train a tiny model and keep every input the network got in training mode, one (C, H, W) per item."""
    cfg = volume_config(dataset.root, out, data=data, epochs=2)
    trainer = Trainer(cfg, dataset=dataset)
    fed: list[np.ndarray] = []

    def keep(module, args):
        if module.training:
            fed.extend(x.detach().cpu().numpy().copy() for x in args[0])

    handle = trainer.model.register_forward_pre_hook(keep)
    try:
        summary = run(trainer.run())
    finally:
        handle.remove()
    assert fed, "the training loop never ran the network"
    return trainer, summary.last_checkpoint, fed


def _predicted_inputs(predictor, volume) -> np.ndarray:
    """(Z, C, H, W): what ``iter_predict_volume`` fed the network for each slice of ``volume``."""
    tiles: list[np.ndarray] = []
    forward = predictor.forward_tiles

    def keep(x):
        tiles.append(x.detach().cpu().numpy().copy())
        return forward(x)

    predictor.forward_tiles = keep
    try:
        result = run(iter_predict_volume(predictor, volume))
    finally:
        del predictor.forward_tiles
    x = np.concatenate(tiles)
    assert x.shape[0] == result.shape[0], "one whole-slice window per slice expected"
    return x


def _check_same_inputs(trainer, ckpt, fed, samples, equalize):
    ck = load_checkpoint(ckpt)
    assert ck.preprocessing.equalize == equalize and ck.preprocessing.scope == "volume"
    predictor = Predictor(str(ckpt), device="cpu")
    inputs = {s.id: _predicted_inputs(predictor, s.load_image()) for s in samples}
    # slice for slice: item (case, z) of the training data is what predict_volume feeds for slice z
    data = trainer.train_data
    for index in range(len(data)):
        i, z = data.item(index)
        seen = data[(index, 0)]["image"].numpy()
        np.testing.assert_allclose(inputs[data.samples[i].id][z], seen, atol=1e-6)
    # and every input the network was trained on is one of those slices' inference inputs
    every = np.concatenate(list(inputs.values()))
    for x in fed:
        assert float(np.abs(every - x[None]).reshape(len(every), -1).max(1).min()) <= 1e-6
    # without the equalisation the same slices are other inputs: the comparison can fail
    plain = dataclasses.replace(ck.preprocessing, equalize=None)
    volume = VolumeInput(samples[0].load_image(), [plain])
    z = volume.shape[0] // 2
    other = predictor.device_batch(volume.batch([z]))[0].numpy()
    assert np.abs(other - inputs[samples[0].id][z]).max() > 0.1
    return inputs


@pytest.mark.parametrize(("equalize", "slices"), [(CLAHE, 1), ({"method": "histeq", "nbins": 256}, 3)])
def test_ct_window_equalised_slices_are_the_same_input_in_training_and_predict_volume(
    synthetic, tmp_path, equalize, slices
):
    trainer, ckpt, fed = _train(synthetic, tmp_path / "run", window=[40, 400], slices=slices, equalize=equalize)
    train_ids = set(load_checkpoint(ckpt).provenance["data"]["ids"])
    samples = [s for s in synthetic.samples if s.id in train_ids]
    inputs = _check_same_inputs(trainer, ckpt, fed, samples, equalize)
    x = inputs[samples[0].id]
    assert x.shape == (10, slices, 32, 32)
    if slices == 3:  # the neighbours are channels, each equalised on its own: slice z's is z+1's previous one
        np.testing.assert_allclose(x[4, 2], x[5, 1], atol=1e-6)
        np.testing.assert_array_equal(x[0, 0], x[0, 1])  # clamped at the first slice


def test_real_ct_25d_clahe_same_input_in_training_and_predict_volume(ct_mr_dir, tmp_path):
    ds = real_dataset(ct_mr_dir, tmp_path / "ct", "ct")
    trainer, ckpt, fed = _train(ds, tmp_path / "run", image_size=[64, 64], window=[40, 400], slices=3, equalize=CLAHE)
    inputs = _check_same_inputs(trainer, ckpt, fed, ds.samples, CLAHE)
    assert inputs[ds.samples[0].id].shape == (30, 3, 64, 64)
