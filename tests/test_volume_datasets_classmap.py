"""Class maps for volume datasets: sparse ids (TotalSegmentator's 41 CT structures numbered up to 117) and a
deterministic palette that keeps 41 and more classes apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medseg.classmap import _DEFAULT_COLOURS, ClassMap, distinct_colours
from medseg.datasets.label_names import read_label_names


def _min_distance(colours) -> float:
    c = np.asarray(colours, float)
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(c, 2))


def test_distinct_colours_are_deterministic_prefixes_starting_with_the_defaults():
    assert distinct_colours(12) == _DEFAULT_COLOURS
    assert distinct_colours(41) == distinct_colours(41)
    assert distinct_colours(60)[:41] == distinct_colours(41)  # adding classes never recolours the first ones
    assert distinct_colours(0) == []


@pytest.mark.parametrize(("n", "apart"), [(41, 60.0), (64, 30.0), (120, 15.0)])
def test_distinct_colours_stay_apart(n, apart):
    colours = distinct_colours(n)
    assert len(colours) == len(set(colours)) == n
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colours)
    assert _min_distance(colours) >= apart


def test_from_names_no_longer_repeats_colours_past_twelve():
    cm = ClassMap.from_names([f"structure_{i}" for i in range(41)])
    assert len(set(cm.colour_table().values())) == 41


def test_sparse_ids_from_id_names_round_trip_through_json():
    names = {0: "bg", 1: "spleen", 52: "aorta", 117: "costal_cartilages"}
    cm = ClassMap.from_id_names(names, extra={"source": "labels.json"})
    assert cm.ids == [1, 52, 117] and cm.background == "bg" and cm.task == "multiclass"
    assert cm.name_of(117) == "costal_cartilages" and cm.id_of("aorta") == 52
    assert [c.colour for c in cm.classes] == distinct_colours(3)
    again = ClassMap.from_json(cm.to_json())
    assert again.to_dict() == cm.to_dict()
    colours = cm.napari_colour_dict()
    assert colours[117][3] == 1.0 and colours[0][3] == 0.0 and colours[None][3] == 0.0
    assert ClassMap.from_id_names({1: "lesion"}).task == "binary"


def test_the_real_ct_labels_json_gives_41_classes_apart(ct_labels_json):
    cm = read_label_names(ct_labels_json)
    assert len(cm.classes) == 41 and max(cm.ids) == 117 and 12 not in cm.ids
    assert _min_distance(list(cm.colour_table().values())) >= 60.0


@pytest.fixture
def ct_labels_json(ct_mr_dir):
    return ct_mr_dir / "ct_abdomen_labels.json"
