"""Every sample-data contribution loads through napari, with the engine's spacing and provenance."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._sample_data import synthetic_endoscopy_frame

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"


@pytest.mark.parametrize(
    "key, modality, ndim, shape",
    [
        ("ct", "CT", 2, (128, 128)),
        ("mr", "MR", 2, (64, 64)),
        ("chest_xray", "CR", 2, (1955, 1841)),
        ("brain_mri", None, 3, None),
    ],
)
def test_real_samples(make_napari_viewer, key, modality, ndim, shape):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)
    (layer,) = viewer.layers
    assert layer.data.ndim == ndim
    if shape:
        assert layer.data.shape == shape
    assert layer.metadata["modality"] == modality
    assert layer.metadata["medseg"]["reader"] == PLUGIN
    assert tuple(layer.scale) == pytest.approx(layer.metadata["medseg"]["spacing"])
    lo, hi = layer.contrast_limits
    assert lo < hi


def test_ct_sample_has_dicom_spacing(make_napari_viewer, ct_small):
    import pydicom

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "ct")
    spacing = [float(v) for v in pydicom.dcmread(ct_small, stop_before_pixels=True).PixelSpacing]
    assert list(viewer.layers[0].scale) == pytest.approx(spacing)


def test_chest_xray_is_bone_bright(make_napari_viewer):
    """RG1_UNCI is MONOCHROME1: after the engine's inversion the lung fields are darker than the spine."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "chest_xray")
    layer = viewer.layers[0]
    assert layer.metadata["inverted"] is True
    a = np.asarray(layer.data, dtype=np.float64)
    h, w = a.shape
    spine = a[h // 3 : 2 * h // 3, w // 2 - 60 : w // 2 + 60].mean()
    right_lung = a[h // 3 : 2 * h // 3, w // 4 - 100 : w // 4 + 100].mean()
    assert spine > right_lung


def test_synthetic_endoscopy_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "endoscopy_synthetic")
    image, labels = viewer.layers
    assert "synthetic" in image.name and "synthetic" in labels.name
    assert image.rgb and image.data.shape == (288, 384, 3) and image.metadata["synthetic"] is True
    assert labels._type_string == "labels" and set(np.unique(labels.data)) == {0, 1}
    assert labels.metadata["medseg"]["classmap"]["classes"][0]["name"] == "polyp"
    # the polyp is a bright raised blob: brighter under the mask than the mucosa ring around it
    from scipy.ndimage import binary_dilation

    mask = labels.data.astype(bool)
    ring = binary_dilation(mask, iterations=15) & ~binary_dilation(mask, iterations=3)
    assert image.data[mask].mean() > image.data[ring].mean()


def test_synthetic_frame_is_deterministic():
    a, ma = synthetic_endoscopy_frame(seed=3)
    b, mb = synthetic_endoscopy_frame(seed=3)
    c, _ = synthetic_endoscopy_frame(seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a, c)
    assert 0.01 < ma.mean() < 0.2  # one polyp, a few percent of the frame
    assert a[0, 0].max() == 0  # black optics corners
