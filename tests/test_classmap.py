"""ClassMap: validation, lookups, per-task channel counts, JSON round trip, napari colours."""

from __future__ import annotations

import json

import pytest

from medseg.datasets.classmap import ClassMap, LabelClass


def test_num_classes_per_task():
    assert ClassMap.binary("polyp").num_classes == 1
    assert ClassMap.from_names(["left lung", "right lung"]).num_classes == 3  # + background
    gi = ClassMap.from_names(["large_bowel", "small_bowel", "stomach"], task="multilabel")
    assert gi.num_classes == 3


def test_from_names_defaults():
    one = ClassMap.from_names(["polyp"])
    assert one.task == "binary" and one.ids == [1]
    two = ClassMap.from_names(["a", "b"], colours=[(1, 2, 3), (4, 5, 6)])
    assert two.task == "multiclass" and two.colour_table() == {1: (1, 2, 3), 2: (4, 5, 6)}


def test_classes_sorted_by_id():
    cm = ClassMap([LabelClass(3, "c", (0, 0, 3)), LabelClass(1, "a", (0, 0, 1))])
    assert cm.ids == [1, 3] and cm.names == ["a", "c"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes=[LabelClass(1, "a", (1, 1, 1))], task="segmentation"), "unknown task"),
        (dict(classes=[LabelClass(1, "a", (1, 1, 1)), LabelClass(1, "b", (2, 2, 2))]), "duplicate class ids"),
        (dict(classes=[LabelClass(1, "a", (1, 1, 1)), LabelClass(2, "a", (2, 2, 2))]), "duplicate class names"),
        (dict(classes=[LabelClass(0, "a", (1, 1, 1))]), "0 is background"),
        (dict(classes=[LabelClass(-2, "a", (1, 1, 1))]), "0 is background"),
        (dict(classes=[LabelClass(2, "a", (1, 1, 1))], task="binary"), "binary class map"),
        (
            dict(classes=[LabelClass(1, "a", (1, 1, 1)), LabelClass(2, "b", (2, 2, 2))], task="binary"),
            "binary class map",
        ),
        (dict(classes=[LabelClass(1, "background", (1, 1, 1))]), "background"),
        (dict(classes=[LabelClass(1, "", (1, 1, 1))]), "non-empty name"),
        (dict(classes=[LabelClass(1.5, "a", (1, 1, 1))]), "integer"),
        (dict(classes=[LabelClass(1, "a", (300, 0, 0))]), "0..255"),
        (dict(classes=[LabelClass(1, "a", (1, 2))]), "3 integers"),
    ],
)
def test_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassMap(**kwargs)


def test_lookup_errors_list_what_exists():
    cm = ClassMap.from_names(["left lung", "right lung"])
    assert cm.id_of("right lung") == 2 and cm.name_of(1) == "left lung" and cm.name_of(0) == "background"
    with pytest.raises(KeyError, match=r"class id 7 .*ids: \[1, 2\]"):
        cm.name_of(7)
    with pytest.raises(KeyError, match="heart.*left lung"):
        cm.id_of("heart")


@pytest.mark.parametrize(
    "cm",
    [
        ClassMap.binary("polyp"),
        ClassMap.from_names(["left lung", "right lung"], colours=[(255, 0, 0), (0, 0, 255)]),
        ClassMap(
            ClassMap.from_names(["large_bowel", "small_bowel", "stomach"]).classes,
            task="multilabel",
            background="other",
            extra={"source": "uw-madison", "spacing": [1.5, 1.5]},
        ),
    ],
)
def test_dict_and_json_round_trip(cm):
    d = cm.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON types only
    assert ClassMap.from_dict(d) == cm
    assert ClassMap.from_json(cm.to_json()) == cm


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1, 2], "expected a mapping"),
        ({"task": "binary"}, "classes"),
        ({"classes": [{"id": 1, "name": "a"}]}, "colour"),
        ({"classes": [{"id": 1, "name": "a", "colour": [1, 2, 3]}], "task": "x"}, "unknown task"),
    ],
)
def test_from_dict_rejects_non_class_maps(bad, message):
    with pytest.raises(ValueError, match=message):
        ClassMap.from_dict(bad)


def test_from_json_rejects_broken_json():
    with pytest.raises(ValueError):
        ClassMap.from_json("{not json")


def test_from_colour_table():
    cm = ClassMap.from_colour_table({0: (0, 0, 0), 1: (255, 0, 0), 3: (0, 255, 0)}, names={3: "stroma"})
    assert cm.task == "multiclass" and cm.ids == [1, 3] and cm.names == ["class_1", "stroma"]
    assert cm.colour_table() == {1: (255, 0, 0), 3: (0, 255, 0)}
    assert ClassMap.from_colour_table({1: (9, 9, 9)}).task == "binary"


def test_napari_colour_dict():
    cm = ClassMap.from_names(["a", "b"], colours=[(255, 0, 0), (0, 51, 255)])
    d = cm.napari_colour_dict()
    assert d[0] == (0.0, 0.0, 0.0, 0.0) and d[None] == (0.0, 0.0, 0.0, 0.0)
    assert d[1] == (1.0, 0.0, 0.0, 1.0)
    assert d[2] == pytest.approx((0.0, 0.2, 1.0, 1.0))
    assert set(d) == {None, 0, 1, 2}
