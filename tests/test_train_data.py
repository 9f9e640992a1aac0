"""The training data pipeline: layouts of images and targets, resizing, distance maps, seeded order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_data import make_disks, make_palette, make_uw, one_thread  # noqa: F401 - autouse fixture

from medseg.datasets import ClassMap, open_dataset
from medseg.errors import MaskError
from medseg.models.spec import Preprocessing
from medseg.training.augment import get_preset
from medseg.training.data import (
    EpochBatches,
    SegmentationData,
    epoch_order,
    make_loader,
)

PREP = Preprocessing(channels=3)


def test_binary_items_any_bit_depth(tmp_path):
    for bits in (8, 16):
        d = open_dataset(make_disks(tmp_path / str(bits), n=4, bits=bits))
        data = SegmentationData(d.samples, d.classmap, PREP, [32, 32])
        item = data[(0, 0)]
        x, y = item["image"], item["target"]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
        assert torch.equal(x[0], x[1])  # grey repeated to 3 channels
        assert y.shape == (1, 32, 32) and y.dtype == torch.float32 and set(y.unique().tolist()) == {0.0, 1.0}
        # the bright disk is the foreground
        assert float(x[0][y[0] > 0].mean()) > float(x[0][y[0] == 0].mean()) + 0.2
        assert "dist_maps" not in item


def test_mean_std_and_single_channel(tmp_path):
    d = open_dataset(make_disks(tmp_path, n=2))
    plain = SegmentationData(d.samples, d.classmap, Preprocessing(channels=1), [32, 32])[(0, 0)]["image"]
    std = SegmentationData(d.samples, d.classmap, Preprocessing(channels=1, mean=[0.5], std=[0.25]), [32, 32])
    assert plain.shape == (1, 32, 32)
    torch.testing.assert_close(std[(0, 0)]["image"], (plain - 0.5) / 0.25)


def test_multiclass_palette_rgba_and_nearest_resize(tmp_path):
    d = open_dataset(make_palette(tmp_path, n=2))
    assert d.classmap.task == "multiclass"
    full = SegmentationData(d.samples, d.classmap, PREP, None)[(0, 0)]
    assert full["image"].shape == (3, 32, 32)  # alpha dropped
    assert full["target"].dtype == torch.int64 and set(full["target"].unique().tolist()) == {0, 1, 2}
    for size in ([16, 16], [64, 48]):
        item = SegmentationData(d.samples, d.classmap, PREP, size)[(0, 0)]
        assert item["image"].shape == (3, *size) and item["target"].shape == tuple(size)
        assert set(item["target"].unique().tolist()) <= {0, 1, 2}  # nearest: no new ids
    up = SegmentationData(d.samples, d.classmap, PREP, [64, 64])[(0, 0)]["target"]
    assert torch.equal(up[::2, ::2], full["target"])


def test_class_ids_missing_from_the_class_map_are_an_error(tmp_path):
    d = open_dataset(make_palette(tmp_path, n=2))
    only_one = ClassMap.from_names(["disk"], task="multiclass")
    with pytest.raises(MaskError, match=r"class ids \[2\]"):
        SegmentationData(d.samples, only_one, PREP, None)[(0, 0)]


def test_multilabel_targets_and_distance_maps_in_physical_units(tmp_path):
    d = open_dataset(make_uw(tmp_path, n_cases=1, slices=1))
    assert d.classmap.task == "multilabel"
    item = SegmentationData(d.samples, d.classmap, PREP, [16, 16], dist_maps=True)[(0, 0)]
    y, dm = item["target"], item["dist_maps"]
    assert y.shape == (3, 16, 16) and y.dtype == torch.float32
    assert y[1].sum() == 0 and y[0].sum() > 0 and y[2].sum() > 0  # small bowel empty, others present
    assert dm.shape == (3, 16, 16) and dm.dtype == torch.float32
    assert (dm[0][y[0] > 0] <= 0).all() and (dm[0][y[0] == 0] > 0).all()
    assert torch.count_nonzero(dm[1]) == 0  # no contour, no boundary signal
    # 1.5 mm pixels (from the UW file name) resized 32 -> 16: 3 mm per pixel, so distances are multiples of 3
    torch.testing.assert_close(item["spacing"], torch.tensor([3.0, 3.0], dtype=torch.float64))
    # Euclidean distances between pixel centres 3 mm apart: (d / 3)^2 is a whole number
    k = (dm[0].double() / 3.0) ** 2
    assert float(dm[0].max()) >= 3.0 and torch.allclose(k, k.round(), atol=1e-3)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    d = open_dataset(make_disks(tmp_path, n=4))
    aug = get_preset("light")
    a = SegmentationData(d.samples, d.classmap, PREP, [32, 32], aug, seed=7)
    b = SegmentationData(d.samples, d.classmap, PREP, [32, 32], get_preset("light"), seed=7)
    for key in [(0, 0), (1, 0), (0, 1), (1, 5)]:
        assert torch.equal(a[key]["image"], b[key]["image"]) and torch.equal(a[key]["target"], b[key]["target"])
    epochs = [a[(2, e)]["image"] for e in range(6)]
    assert any(not torch.equal(epochs[0], x) for x in epochs[1:])


def test_epoch_order_is_seeded_and_resumable():
    assert epoch_order(20, 0, 3) == epoch_order(20, 0, 3)
    assert epoch_order(20, 0, 3) != epoch_order(20, 0, 4) != epoch_order(20, 1, 4)
    assert sorted(epoch_order(20, 0, 3)) == list(range(20))
    s = EpochBatches(10, 3, seed=0)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 3 and all(len(b) == 3 for b in full)  # 10 // 3 full batches, the last 1 dropped
    assert all(e == 2 for batch in full for _, e in batch)
    s.set_epoch(2, start_batch=1)
    assert list(s) == full[1:] and len(s) == 2
    capped = EpochBatches(10, 3, seed=0, max_batches=2)
    capped.set_epoch(2)
    assert list(capped) == full[:2]
    tiny = EpochBatches(2, 4, seed=0)
    assert [len(b) for b in tiny] == [2]  # fewer samples than a batch: one small batch


class _Shard:
    def __init__(self, rank, world):
        self.rank, self.world = rank, world

    def shard(self, indices, epoch, seed):
        return epoch_order(len(indices), seed, epoch)[self.rank :: self.world]


def test_ddp_shards_come_from_the_dist_context():
    parts = [epoch_order(12, 0, 1, _Shard(r, 2)) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(12)) and not set(parts[0]) & set(parts[1])


def test_worker_count_does_not_change_the_batches(tmp_path):
    d = open_dataset(make_disks(tmp_path, n=4))
    data = SegmentationData(d.samples, d.classmap, PREP, [32, 32], get_preset("light"), seed=3)
    got = []
    for workers in (0, 2):
        sampler = EpochBatches(len(data), 2, seed=3)
        sampler.set_epoch(1)
        got.append([b["image"] for b in make_loader(data, sampler, num_workers=workers, seed=3)])
    assert len(got[0]) == 2 and all(torch.equal(x, y) for x, y in zip(*got))


def test_decoded_samples_are_cached_within_the_budget(tmp_path):
    d = open_dataset(make_disks(tmp_path, n=4))
    data = SegmentationData(d.samples, d.classmap, PREP, [32, 32])
    first = data.decoded(0)
    assert data.decoded(0) is first and data._cached_bytes == first.nbytes
    off = SegmentationData(d.samples, d.classmap, PREP, [32, 32], cache_mb=0)
    assert off.decoded(0) is not off.decoded(0)
    np.testing.assert_array_equal(off.decoded(0).image, first.image)


def _strips(root, shapes):
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, shape in enumerate(shapes):
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        m = np.zeros(shape, np.uint8)
        m.flat[: max(1, m.size // 3)] = 255
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")
    return root


def test_own_size_samples_are_mirrored_up_to_the_stride_and_train(tmp_path):
    # 1xN and Nx1 images at their own size reached the network unpadded: "Output size is too small"
    shapes = [(1, 50), (50, 1), (1, 1), (37, 29), (8, 12)]
    d = open_dataset(_strips(tmp_path / "data", shapes))
    data = SegmentationData(d.samples, d.classmap, Preprocessing(channels=3, divisible_by=4), None)
    for k, s in enumerate(d.samples):
        item = data[(k, 0)]
        rows, cols = shapes[int(s.id[1:])]
        padded = (-(-rows // 4) * 4, -(-cols // 4) * 4)
        padded = (4, 8) if padded == (4, 4) else padded  # one stride cell is widened to two
        assert tuple(item["image"].shape) == (3, *padded) and tuple(item["target"].shape) == (1, *padded)
        image, mask = s.load_image().array / 255.0, s.load_mask()
        np.testing.assert_allclose(item["image"][:, :rows, :cols].numpy(), np.moveaxis(image, -1, 0), atol=1e-6)
        assert np.array_equal(item["target"][0, :rows, :cols].numpy(), mask)
        # the padding mirrors the sample: the first padded row repeats the last real one
        if padded[0] > rows:
            assert torch.equal(item["image"][:, rows, :cols], item["image"][:, rows - 1, :cols])

    from _train_data import config

    from medseg.training.config import TrainConfig
    from medseg.training.trainer import Trainer

    cfg = config(
        tmp_path / "data",
        tmp_path / "run",
        batch_size=1,
        data={"image_size": None, "val_fraction": 0.0, "group_pattern": None},
    )
    cfg["model"]["kwargs"] = {"depth": 2, "base_channels": 4}
    events = list(Trainer(TrainConfig.from_dict(cfg)).run())
    assert events[-1].kind == "result", events[-1]
    assert sum(e.kind == "step" for e in events) == len(shapes)


def test_a_stack_is_refused_naming_its_file(tmp_path):
    import tifffile

    from medseg.errors import ReadError

    root = make_disks(tmp_path, n=2)
    (root / "images" / "p0_s0.png").unlink()
    tifffile.imwrite(root / "images" / "p0_s0.tif", np.zeros((5, 32, 32), np.uint8))
    d = open_dataset(root)
    data = SegmentationData([d.by_id("p0_s0")], d.classmap, PREP, [32, 32])
    with pytest.raises(ReadError, match=r"p0_s0\.tif: training takes 2-D images; this one has shape \(5, 32, 32\)"):
        data[(0, 0)]
