"""A decoded sample's foreground is labelled once for the checks that need its 8-connected objects."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medseg.datasets.classmap import ClassMap
from medseg.qc.checks_masks import check_border_only, check_specks
from medseg.qc.checks_outline import outline_measure
from medseg.qc.checks_registry import CHECKS, resolve_params
from medseg.qc.signal_region import region_measure
from tests._qc_data import BINARY, view


def _scene(classes=(1,)):
    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.normal(100, 20, (48, 64, 3)), (1.5, 1.5, 0))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:22, 8:24] = classes[0]
    mask[30:44, 36:56] = classes[-1]
    mask[0:3, 60:64] = classes[0]  # a speck on the border
    image[mask > 0] += 50
    return mask, image.clip(0, 255).astype(np.uint8)


def test_binary_foreground_components_are_the_class_components():
    mask, image = _scene()
    v = view(mask, image, BINARY)
    labels, n = v.foreground_components()
    want, count = ndi.label(mask > 0, structure=np.ones((3, 3), bool))
    assert n == count == 3 and np.array_equal(labels, want)
    assert labels is v.components(1)[0]  # one labelling shared


def test_several_classes_label_the_whole_foreground():
    mask, image = _scene((1, 2))
    v = view(mask, image, ClassMap.from_names(["a", "b"]))
    labels, n = v.foreground_components()
    want, count = ndi.label(mask > 0, structure=np.ones((3, 3), bool))
    assert n == count and np.array_equal(labels, want)


def test_checks_on_a_binary_sample_label_its_foreground_once(monkeypatch):
    mask, image = _scene()
    v = view(mask, image, BINARY)
    fg = mask > 0
    calls = []
    plain = ndi.label

    def counting(a, *args, **kw):
        calls.append(np.array_equal(np.asarray(a) > 0, fg))
        return plain(a, *args, **kw)

    monkeypatch.setattr(ndi, "label", counting)
    p = resolve_params([CHECKS["specks"], CHECKS["border_only"]], None)
    found = check_specks(v, p["specks"]) + check_border_only(v, p["border_only"])
    assert outline_measure(v) is not None and region_measure(v) is not None
    assert sum(calls) == 1  # labelled once, not by each of specks, border_only, outline_fit and region_contrast
    assert [f.check for f in found] == ["specks"]
