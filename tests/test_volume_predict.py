"""Predicting volumes: one slice (2-D) or a slice with its neighbours (2.5-D), the whole volume as a job (progress per
slice, cancel, result), lazily read volumes, and `medseg predict` writing NIfTI labels on the image's grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from _inference_nets import Pointwise
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d
from _volume_train_data import real_dataset

from medseg.cli import main
from medseg.datasets.classmap import ClassMap
from medseg.errors import Cancelled
from medseg.inference import Predictor
from medseg.inference.predict_volume import VolumePrediction, iter_predict_volume, predict_volume
from medseg.io import load
from medseg.io.normalise import apply_window
from medseg.io.volume_geometry import Geometry
from medseg.jobs import CancelToken, Progress, Result, Started, drive
from medseg.models.spec import ModelSpec, Preprocessing

CLASSES = ClassMap.from_names(["liver", "spleen", "kidney_left"])


def _predictor(slices=3, classes=CLASSES, batch_size=4, window=(40, 400), scope="volume", channels=None, **kw):
    net = Pointwise(in_channels=channels or slices, classes=classes.num_classes, seed=3)
    spec = ModelSpec(arch="Pointwise", in_channels=channels or slices, classes=classes.num_classes, task=classes.task)
    prep = Preprocessing(
        channels=channels or slices,
        window=window if isinstance(window, str) else list(window),
        divisible_by=1,
        slices=slices,
        scope=scope,
        **kw,
    )
    return Predictor.from_model(net, spec, classes, prep, device="cpu", batch_size=batch_size), net


def _volume(shape=(7, 20, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(40, 150, shape).astype(np.int16)


def _expected_probs(net, stack: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(apply_window(stack, 40, 400))[None]
    with torch.no_grad():
        return torch.softmax(net.conv(x), 1)[0].numpy()


def test_a_25d_slice_sees_its_clamped_neighbours(tmp_path):
    predictor, net = _predictor(slices=3)
    vol = _volume()
    for z, zs in ((0, [0, 0, 1]), (3, [2, 3, 4]), (6, [5, 6, 6])):
        pred = predictor.predict_slice(vol, z)
        np.testing.assert_allclose(pred.probs, _expected_probs(net, vol[zs]), atol=1e-5)
        assert pred.labels.shape == (20, 24) and pred.meta["window"] == "[40, 400]"
    # a 2-D image given to a 2.5-D model is a volume of one slice (its neighbours are itself)
    np.testing.assert_allclose(predictor.predict(vol[2]).probs, _expected_probs(net, vol[[2, 2, 2]]), atol=1e-5)


def test_a_2d_slice_model_and_a_percentile_window_read_once_per_volume():
    predictor, net = _predictor(slices=1, window="percentile")
    vol = _volume(seed=1).astype(np.float32)
    prepared = predictor.volume_input(vol)
    (c, w), described = prepared.window(0)
    lo, hi = np.percentile(vol, [1, 99])
    assert (c, w) == pytest.approx(((lo + hi) / 2, hi - lo)) and "percentile" in described
    pred = predictor.predict_slice(prepared, 4)  # the prepared volume is reused: no second read of its windows
    x = torch.from_numpy(apply_window(vol[4], c, w))[None, None]
    with torch.no_grad():
        np.testing.assert_allclose(pred.probs, torch.softmax(net.conv(x), 1)[0].numpy(), atol=1e-5)


def _drive(job, token=None, stop_after=None):
    events = []
    for event in drive(job, token):
        events.append(event)
        if stop_after is not None and isinstance(event, Progress) and event.done >= stop_after:
            token.set()
    return events


def test_whole_volume_job_runs_to_its_end_with_progress_per_slice():
    predictor, net = _predictor(slices=3, batch_size=2)
    vol = _volume()
    events = _drive(iter_predict_volume(predictor, vol, probabilities=True, uncertainty=True))
    assert isinstance(events[0], Started) and events[0].total == 7 and events[0].job == "predict_volume"
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.done for p in progress] == [2, 4, 6, 7] and {p.total for p in progress} == {7}
    assert {p.stage for p in progress} == {"slices"}
    result = events[-1]
    assert isinstance(result, Result) and isinstance(result.value, VolumePrediction)
    pred = result.value
    assert pred.labels.shape == (7, 20, 24) and pred.probs.shape == (7, 4, 20, 24)
    assert pred.probs.dtype == np.float16 and pred.uncertainty.shape == (7, 20, 24)
    for z in range(7):  # the batched job and one slice at a time agree
        np.testing.assert_array_equal(pred.labels[z], predictor.predict_slice(vol, z).labels)
    assert pred.meta["slices"] == 7 and pred.meta["input_slices"] == [3] and pred.geometry is None


def test_whole_volume_job_cancelled_mid_way():
    predictor, _ = _predictor(slices=3, batch_size=1)
    token = CancelToken()
    events = _drive(iter_predict_volume(predictor, _volume(), cancel=token), token, stop_after=2)
    assert isinstance(events[-1], Cancelled)
    assert events[-1].done is not None and 2 <= events[-1].done < 7 and events[-1].total == 7
    assert not any(isinstance(e, Result) for e in events)
    with pytest.raises(Cancelled):
        predict_volume(predictor, _volume(), cancel=token)


class LazyVolume:
    """A VolumeSource stand-in: slices on demand, counted; the whole array is never asked for."""

    def __init__(self, array):
        self._a, self.shape, self.reads = array, array.shape, []
        self.dtype, self.metadata = array.dtype, {"source": "lazy"}
        self.geometry = Geometry(array.shape, (2.5, 0.8, 0.8), np.diag([2.5, 0.8, 0.8, 1.0]))

    def slice(self, z):
        self.reads.append(z)
        return self._a[z]

    def array(self):
        raise AssertionError("the whole volume was decoded")


def test_a_lazy_volume_is_read_slice_by_slice():
    predictor, _ = _predictor(slices=3, window=(40, 400), batch_size=1)
    vol = _volume(shape=(9, 16, 16))
    lazy = LazyVolume(vol)
    pred = predict_volume(predictor, lazy)
    assert set(lazy.reads) == set(range(9)) and len(lazy.reads) <= 9 * 3
    assert pred.geometry is lazy.geometry and pred.labels.shape == (9, 16, 16)
    np.testing.assert_array_equal(pred.labels, predict_volume(predictor, vol).labels)


@pytest.fixture(scope="module")
def volume_checkpoint(tmp_path_factory):
    """A tiny 2.5-D PlainUNet checkpoint (3 neighbouring slices, CT soft-tissue window) for 3 organs."""
    from medseg.models import create_model, save_checkpoint

    spec = ModelSpec(
        arch="PlainUNet", in_channels=3, classes=4, task="multiclass", kwargs={"depth": 2, "base_channels": 4}
    )
    torch.manual_seed(0)
    prep = Preprocessing(
        channels=3, window=[40, 400], input_size=[32, 32], divisible_by=4, resize=True, slices=3, scope="volume"
    )
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "vol25d", create_model(spec), spec, CLASSES, prep)


def test_cli_predict_writes_nifti_labels_on_the_image_grid(volume_checkpoint, tmp_path):
    data = make_nnunet3d(tmp_path / "ds", n_cases=1)
    image = data / "imagesTr" / "case_000_0000.nii.gz"
    out = tmp_path / "out"
    assert main(["predict", str(volume_checkpoint), str(image), "--out", str(out), "--quiet", "--probs"]) == 0
    written = out / "case_000_0000_mask.nii.gz"
    label, source = nib.load(written), nib.load(image)
    assert label.shape == source.shape == (40, 36, 10)  # the source's own voxel order
    np.testing.assert_allclose(label.affine, source.affine, atol=1e-6)
    assert int(label.header["qform_code"]) == int(source.header["qform_code"])
    ids = np.asarray(label.dataobj)
    assert ids.dtype == np.uint8 and set(np.unique(ids)) <= {0, 1, 2, 3}
    assert Geometry.from_image(load(written)).mismatch(Geometry.from_image(load(image))) is None
    # the same labels as the engine's job, put back in the source's order
    pred = predict_volume(Predictor(str(volume_checkpoint), device="cpu"), load(image))
    np.testing.assert_array_equal(load(written).array, pred.labels)
    probs = tifffile.imread(out / "case_000_0000_probs.tif")
    assert probs.shape == (10, 4, 36, 40) and probs.dtype == np.uint16
    # softmax: each voxel sums to 1, within the float16 the job keeps probabilities in (2**-11 of each channel)
    np.testing.assert_allclose(probs.astype(np.float64).sum(1), 65535, atol=4 * 65535 / 2**11)


def test_cli_predict_on_the_real_ct_and_its_geometry(volume_checkpoint, ct_mr_dir, tmp_path):
    from medseg.models import create_model, save_checkpoint

    ds = real_dataset(ct_mr_dir, tmp_path / "ct", "ct")
    cm = ds.classmap
    spec = ModelSpec(arch="PlainUNet", in_channels=1, classes=cm.num_classes, task="multiclass", kwargs={"depth": 2})
    prep = Preprocessing(channels=1, window=[40, 400], input_size=[32, 32], divisible_by=4, resize=True, scope="volume")
    ck = save_checkpoint(tmp_path / "ct41", create_model(spec), spec, cm, prep)
    image = ds.samples[0].image_path
    assert main(["predict", str(ck), str(image), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    written = tmp_path / "out" / "ct_000_0000_mask.nii.gz"
    assert Geometry.from_image(load(written)).mismatch(ds.samples[0].geometry) is None
    assert set(np.unique(np.asarray(nib.load(written).dataobj))) <= {0, *cm.ids}


def test_cli_predict_on_a_dicom_series_folder_and_a_volume_dataset(volume_checkpoint, tmp_path):
    from _volume_data import make_dicom_series_dataset

    data = make_dicom_series_dataset(tmp_path / "dicom", n_cases=2)
    series = data / "images" / "case0"
    out = tmp_path / "out"
    assert main(["predict", str(volume_checkpoint), str(series), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["case0_mask.nii.gz"]
    label = load(out / "case0_mask.nii.gz")
    assert label.array.shape == (10, 36, 40)
    assert Geometry.from_image(label).mismatch(Geometry.from_image(load(series))) is None
    # the dataset folder: one label volume per case, each on its series' grid
    out2 = tmp_path / "out2"
    assert main(["predict", str(volume_checkpoint), str(data), "--out", str(out2), "--quiet"]) == 0
    for case in ("case0", "case1"):
        got = Geometry.from_image(load(out2 / f"{case}_mask.nii.gz"))
        assert got.mismatch(Geometry.from_image(load(data / "images" / case))) is None


def test_a_volume_source_predicts_as_the_decoded_volume(volume_checkpoint, tmp_path):
    from medseg.inference.volume_outputs import write_volume_prediction
    from medseg.io.volume_source import open_volume
    from medseg.ownership import OutputFolder

    data = make_nnunet3d(tmp_path / "ds", n_cases=1)
    image = data / "imagesTr" / "case_000_0000.nii.gz"
    predictor = Predictor(str(volume_checkpoint), device="cpu")
    lazy = predict_volume(predictor, open_volume(image))
    np.testing.assert_array_equal(lazy.labels, predict_volume(predictor, load(image)).labels)
    assert lazy.source == str(image) and lazy.geometry.mismatch(Geometry.from_image(load(image))) is None
    (written,) = write_volume_prediction(lazy, OutputFolder(tmp_path / "out", purpose="predictions"), "case")
    np.testing.assert_allclose(nib.load(written).affine, nib.load(image).affine, atol=1e-6)
