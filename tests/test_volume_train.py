"""Training on the slices of volumes: items (case, z), 2.5-D neighbours clamped at the ends, volumes decoded once,
splits by case, the intensity normalisation stored in the checkpoint and applied identically at inference, and a
tiny fine-tune on synthetic volumes and on the real CT."""

from __future__ import annotations

import numpy as np
import pytest
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_train_data import real_dataset, synthetic_dataset, volume_config
from PIL import Image

from medseg.inference import Predictor
from medseg.inference.volume_input import STAT_SLICES, VolumeInput, neighbours, stat_slices, volume_window
from medseg.io.normalise import apply_window, percentile_window
from medseg.jobs import Result, run
from medseg.models import load_checkpoint
from medseg.models.spec import Preprocessing
from medseg.training import Trainer
from medseg.training.config import ConfigError
from medseg.training.slices import SliceData, slice_id, slice_items


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("vol") / "ds", n_cases=4)


def _prep(slices=1, window=(40, 400), channels=None, **kw):
    return Preprocessing(
        channels=channels or slices,
        window=list(window) if isinstance(window, tuple) else window,
        input_size=[32, 32],
        divisible_by=8,
        resize=True,
        slices=slices,
        scope="volume",
        **kw,
    )


def test_slice_items_cover_every_slice_of_every_case(synthetic):
    items = slice_items(synthetic.samples)
    assert len(items) == 4 * 10  # display (10, 36, 40): 10 slices per case
    assert items[:2] == [(0, 0), (0, 1)] and items[-1] == (3, 9)
    assert slice_items(synthetic.samples, zs=[0, 9]) == [(i, z) for i in range(4) for z in (0, 9)]
    assert slice_id("case_001", 7) == "case_001@z007"


def test_25d_items_stack_clamped_neighbours_and_decode_each_volume_once(synthetic):
    data = SliceData(synthetic.samples[:2], synthetic.classmap, _prep(slices=3), [32, 32])
    assert len(data) == 20 and data.ids()[0] == "case_000@z000"
    items = [data[i] for i in range(len(data))]
    assert data.decodes == 2  # two volumes, twenty items: decoded once each, not per item
    assert items[0]["image"].shape == (3, 32, 32) and items[0]["target"].shape == (32, 32)
    vol = data.volume(0).image
    first, middle, last = items[0]["image"].numpy(), items[4]["image"].numpy(), items[9]["image"].numpy()
    np.testing.assert_array_equal(first[0], first[1])  # slice -1 clamped to slice 0
    np.testing.assert_array_equal(first[2], vol[1])
    np.testing.assert_array_equal(middle, vol[3:6])
    np.testing.assert_array_equal(last[1], last[2])  # slice 10 clamped to slice 9
    assert neighbours(0, 10, 5) == [0, 0, 0, 1, 2] and neighbours(9, 10, 5) == [7, 8, 9, 9, 9]
    # labels are the class channels of the label volume's slice
    labels = synthetic.samples[0].load_mask()
    assert set(np.unique(items[4]["target"].numpy())) <= {0, 1, 2, 3}
    assert labels[4].any() and items[4]["target"].numpy().any()


def test_small_cache_keeps_the_volumes_used_last(synthetic):
    data = SliceData(synthetic.samples[:3], synthetic.classmap, _prep(), [32, 32], cache_mb=0.0001)
    data[0], data[1], data[10]
    assert data.decodes == 3  # nothing fits: each volume is decoded for its item, never kept
    data = SliceData(synthetic.samples[:3], synthetic.classmap, _prep(), [32, 32], cache_mb=1)
    for i in range(len(data)):
        data[i]
    assert data.decodes == 3


def test_2d_per_slice_on_a_three_channel_model_repeats_the_slice(synthetic):
    data = SliceData(synthetic.samples[:1], synthetic.classmap, _prep(slices=1, channels=3), [32, 32])
    x = data[5]["image"].numpy()
    assert x.shape == (3, 32, 32)
    np.testing.assert_array_equal(x[0], x[2])


def test_volume_window_ct_is_fixed_and_mr_percentiles_come_from_evenly_spaced_slices():
    rng = np.random.default_rng(0)
    vol = rng.normal(300, 80, (40, 12, 10)).astype(np.float32)
    vol[7] += 5000  # a slice the statistics do not read must not move the window
    assert volume_window(vol, _prep(window=(40, 400)))[0] == (40.0, 400.0)
    zs = stat_slices(40)
    assert len(zs) == STAT_SLICES and zs[0] == 0 and zs[-1] == 39 and 7 not in zs
    (center, width), described = volume_window(vol, _prep(window="percentile"))
    assert (center, width) == pytest.approx(percentile_window(vol[zs]))
    assert "percentile" in described
    assert stat_slices(5) == [0, 1, 2, 3, 4]


def test_config_refuses_even_slices_and_pseudo_labels_on_volumes(synthetic, tmp_path):
    with pytest.raises(ConfigError, match="data.slices"):
        Trainer(volume_config(synthetic.root, tmp_path / "r", data={"slices": 2}), dataset=synthetic)
    with pytest.raises(ConfigError, match="pseudo"):
        Trainer(
            volume_config(synthetic.root, tmp_path / "r", pseudo={"enabled": True, "unlabelled_dir": str(tmp_path)}),
            dataset=synthetic,
        )


@pytest.mark.parametrize("window", [[40, 400], "percentile"])
def test_fine_tune_25d_split_by_case_and_normalisation_round_trip(synthetic, tmp_path, window):
    cfg = volume_config(
        synthetic.root, tmp_path / "run", data={"slices": 3, "val_fraction": 0.5, "window": window}, val_overlays=1
    )
    trainer = Trainer(cfg, dataset=synthetic)
    events = list(trainer.run())
    assert isinstance(events[-1], Result)
    (picture,) = (tmp_path / "run" / "overlays").glob("*_z000.png")
    rgb = np.asarray(Image.open(picture)).astype(int)
    assert np.mean((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])) > 0.5  # the slice in grey
    started = events[0].detail
    assert started["n_train"] == 2 and started["n_val"] == 2
    assert started["n_train_items"] == 20 and started["n_val_items"] == 20  # slices of the cases on each side

    ck = load_checkpoint(tmp_path / "run" / "last.medseg")
    assert ck.spec.in_channels == 3
    prep = ck.preprocessing
    assert (prep.slices, prep.channels, prep.scope, prep.window) == (3, 3, "volume", window)
    data = ck.provenance["data"]
    assert data["volumes"] is True and data["slices"] == 3
    assert not set(data["ids"]) & set(data["val_ids"]) and len(data["ids"]) == 2  # cases, never slices

    # inference prepares a slice exactly as training did: the checkpoint's window, neighbours, resize
    val = [s for s in synthetic.samples if s.id in data["val_ids"]]
    seen = SliceData(val, ck.classmap, prep, prep.input_size)
    predictor = Predictor(str(tmp_path / "run" / "last.medseg"), device="cpu")
    volume = VolumeInput(val[0].load_image(), predictor._preps)
    for z in (0, 4, 9):
        x = predictor.device_batch(volume.batch([z]))[0].numpy()
        np.testing.assert_allclose(x, seen[z]["image"].numpy(), atol=1e-5)
    if window == "percentile":
        image = val[0].load_image().array
        (c, w), _ = volume.window(0)
        assert (c, w) == pytest.approx(percentile_window(image[stat_slices(len(image))]))
    else:
        raw = val[0].load_image().array[4]
        np.testing.assert_allclose(volume.model_input(4)[1], apply_window(raw, 40, 400), atol=1e-6)


@pytest.mark.parametrize(
    ("modality", "window", "slices", "classes", "max_id"),
    [("ct", [40, 400], 30, 41, 117), ("mr", "percentile", 20, 23, 49)],
)
def test_fine_tune_on_the_real_slices(ct_mr_dir, tmp_path, modality, window, slices, classes, max_id):
    ds = real_dataset(ct_mr_dir, tmp_path / modality, modality)
    assert len(ds.classmap.ids) == classes and max(ds.classmap.ids) == max_id
    cfg = volume_config(
        ds.root, tmp_path / "run", data={"image_size": [64, 64], "window": window, "slices": 3}, max_steps_per_epoch=1
    )
    trainer = Trainer(cfg, dataset=ds)
    assert len(trainer.train_data) == slices
    summary = run(trainer.run())
    ck = load_checkpoint(summary.last_checkpoint)
    assert ck.spec.classes == classes + 1 and ck.classmap.ids == ds.classmap.ids
    assert ck.preprocessing.window == window and ck.preprocessing.scope == "volume"
    # the sparse ids came through as channels: a middle slice holds many classes
    z = slices // 2
    item = trainer.train_data[z]
    assert item["image"].shape == (3, 64, 64)
    assert len(np.unique(item["target"].numpy())) > 5 and item["target"].max() <= classes
    # and the checkpoint prepares the slice at inference as it was trained
    predictor = Predictor(summary.last_checkpoint, device="cpu")
    x = predictor.device_batch(predictor.volume_input(ds.samples[0].load_image()).batch([z]))[0]
    np.testing.assert_allclose(x.numpy(), item["image"].numpy(), atol=1e-5)
