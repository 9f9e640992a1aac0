"""The generated demo dataset: a real dataset folder to the engine, with its sequences as groups and known errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medseg.datasets import open_dataset
from medseg.datasets.demo import PLANTED_KINDS, make_demo_dataset


def test_demo_dataset_indexes_as_sequences_with_planted_errors(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo")
    ds = open_dataset(demo.root)
    assert len(ds.samples) == demo.n_frames == 24 and not ds.problems
    assert len(ds.groups) == demo.sequences == 4  # one group per video: no leak across a split
    assert sorted(demo.planted.values()) == sorted(PLANTED_KINDS)

    clean = make_demo_dataset(tmp_path / "clean", planted=0)
    for sid, kind in demo.planted.items():
        bad = np.asarray(Image.open(demo.root / "masks" / f"{sid}.png"))
        good = np.asarray(Image.open(clean.root / "masks" / f"{sid}.png"))
        assert not np.array_equal(bad, good), kind
        if kind == "missing":
            assert not bad.any() and good.any()
        if kind == "grey_noise":
            assert len(np.unique(bad)) > 10
    untouched = next(str(i) for i in range(1, 25) if str(i) not in demo.planted)
    np.testing.assert_array_equal(
        np.asarray(Image.open(demo.root / "masks" / f"{untouched}.png")),
        np.asarray(Image.open(clean.root / "masks" / f"{untouched}.png")),
    )


def test_demo_dataset_never_writes_into_a_used_folder(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="new or empty folder"):
        make_demo_dataset(tmp_path / "used")
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
