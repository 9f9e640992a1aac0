"""Predicting a volume in the Predict dock: the slice on screen live, and the whole volume as a background job.

A volume layer (made by :mod:`napari_medseg._volume_layers`, ``metadata["medseg"]["volume"]``)
is predicted as a volume, not as a stack of unrelated 2-D images: a slice goes
through ``Predictor.iter_predict_slice``, so a 2.5-D model sees its neighbours
and every slice of the scan gets the checkpoint's one intensity mapping. That
mapping's statistics are read once per volume and predictor
(:class:`VolumeInputs` keeps the last ``VolumeInput``), not at each slice change.

"Predict whole volume" runs ``medseg.inference.predict_volume.iter_predict_volume``
through :func:`napari_medseg._jobs.start_job`: a napari progress bar counts the
slices, the dock's Cancel (or closing the workspace or the dock) stops it after
the slices being predicted, and the result becomes the ``VOLUME_PREDICTION_LAYER``
Labels layer on the image's grid (scale and translate), drawn and locked as the
slice prediction is (:mod:`napari_medseg._layer_roles`). The engine's work
(building the model, every slice) stays in the job.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from napari_medseg._jobs import start_job
from napari_medseg._session import VOLUME_PREDICTION_LAYER


def is_volume_layer(layer: Any) -> bool:
    """A CT/MR volume opened by this plugin (a stack of frames is predicted frame by frame instead)."""
    ours = (getattr(layer, "metadata", None) or {}).get("medseg") or {}
    return bool(ours.get("volume")) and not getattr(layer, "rgb", False) and layer.ndim == 3


class VolumeInputs:
    """The last volume prepared for the last predictor (its intensity window read once): a live prediction
    of the next slice reuses it. Used from job threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[Any, Any, Any] | None = None  # (predictor, volume data, VolumeInput)

    def get(self, predictor: Any, data: Any) -> Any:
        with self._lock:
            last = self._last
            if last is not None and last[0] is predictor and last[1] is data:
                return last[2]
        prepared = predictor.volume_input(data)  # reads the window's slices: outside the lock
        with self._lock:
            self._last = (predictor, data, prepared)
        return prepared

    def clear(self) -> None:
        with self._lock:
            self._last = None


INPUTS = VolumeInputs()


def slice_job(predictor: Any, data: Any, z: int, cancel: Any):
    """The Predictor's job on slice ``z`` of a volume (the job thread)."""
    yield from predictor.iter_predict_slice(INPUTS.get(predictor, data), int(z), cancel)


def volume_job(choice: Any, predictor: Any, data: Any, token: Any):
    """Build the Predictor if none is given, then predict every slice of ``data`` (the job thread)."""
    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.inference.predict_volume import iter_predict_volume

    if predictor is None:
        from napari_medseg._predict_model import build_predictor

        predictor = build_predictor(choice)

    yield from iter_predict_volume(predictor, INPUTS.get(predictor, data), cancel=token)


def label_values_volume(prediction: Any) -> Any:
    """What the whole-volume layer shows: ids (Z, Y, X); multilabel one volume per class (C, Z, Y, X)."""
    cm = prediction.classmap
    if cm.task != "multilabel":
        return prediction.labels
    ids = np.asarray(cm.ids, dtype=np.min_scalar_type(max(cm.ids)))
    return np.moveaxis(prediction.labels, -1, 0).astype(ids.dtype) * ids.reshape(-1, 1, 1, 1)


class VolumeRun:
    """The Predict dock's whole-volume prediction: one at a time; ``on_status(text)`` says how it goes."""

    def __init__(self, viewer: Any, session: Any, on_status, owner: Any = None):
        self.viewer, self.session, self.on_status, self.owner = viewer, session, on_status, owner
        self.running: Any = None  # the RunningJob while one runs
        self.last: Any = None  # the VolumePrediction shown last
        self.on_shown: Any = None  # called once a prediction is on screen (the dock's copy takes it next)

    @property
    def busy(self) -> bool:
        return self.running is not None

    def start(self, image: Any, choice: Any, predictor: Any = None) -> bool:
        """Predict every slice of the volume layer ``image``; False (said why) when it cannot start."""
        from napari_medseg._session import IMAGE_LAYER

        if self.running is not None:
            self.on_status("A whole-volume prediction is running: cancel it first.")
            return False
        if image is None or not is_volume_layer(image):
            self.on_status("Open a CT or MR volume first: the whole-volume prediction needs a volume layer.")
            return False
        if choice is None:
            self.on_status("Add a checkpoint, or choose an architecture to try an untrained model.")
            return False
        data = image.data
        ws = self.session.workspace if image.name == IMAGE_LAYER and self.session.sample_id is not None else None
        geometry = {"scale": tuple(image.scale), "translate": tuple(image.translate)}
        name = f"Predicting the volume {image.name!r}"
        self.on_status(f"{name} with {choice.describe()}...")
        self.running = start_job(
            self.session.jobs,
            lambda token: volume_job(choice, predictor, data, token),
            name,
            workspace=ws,
            owner=self.owner,
            on_result=lambda prediction: self._show(image, geometry, prediction, choice),
            on_cancelled=lambda cancelled: self.on_status(f"Whole-volume prediction cancelled: {cancelled}"),
            on_error=self._failed,
            on_finished=self._finished,
        )
        return True

    def cancel(self) -> bool:
        return self.running.cancel() if self.running is not None else False

    def _finished(self) -> None:
        from napari_medseg._memory import trim_when_idle

        self.running = None
        trim_when_idle()

    def _failed(self, exc: BaseException) -> None:
        from napari_medseg._notify import report_error

        self.on_status(report_error("The whole-volume prediction failed", exc))

    def _show(self, image: Any, geometry: dict, prediction: Any, choice: Any) -> None:
        from napari.layers import Labels

        from napari_medseg._layer_data import labels_layer
        from napari_medseg._layer_roles import (
            PREDICTION_OPACITY,
            label_stays_active,
            lock_layer,
            prediction_colours,
            prediction_style,
        )
        from napari_medseg._viewer_access import layer_named

        self.last = prediction
        values = label_values_volume(prediction)
        lead = (1.0,) * (values.ndim - 3)
        _, kwargs, _ = labels_layer(
            None,
            VOLUME_PREDICTION_LAYER,
            str(image.metadata.get("medseg", {}).get("source", image.name)),
            lead + geometry["scale"],
            prediction.classmap,
            model=choice.describe(),
            meta={k: v for k, v in prediction.meta.items() if isinstance(v, (int, float, str))},
        )
        kwargs["translate"] = (0.0,) * len(lead) + geometry["translate"]
        colours = prediction_colours(prediction.classmap)
        if colours is not None:
            kwargs["colormap"] = colours
        layer = layer_named(self.viewer, VOLUME_PREDICTION_LAYER, Labels)
        with label_stays_active(self.viewer):  # napari selects each layer it adds
            if layer is not None and layer.data.shape == values.shape:
                layer.data = values
                for key in ("scale", "translate", "metadata", "colormap"):
                    setattr(layer, key, kwargs[key])
            else:
                if VOLUME_PREDICTION_LAYER in self.viewer.layers:
                    self.viewer.layers.remove(VOLUME_PREDICTION_LAYER)
                layer = self.viewer.add_labels(values, opacity=PREDICTION_OPACITY, **kwargs)
                prediction_style(layer, self.viewer)
            lock_layer(layer)
        took = prediction.meta.get("time_s")
        self.on_status(
            f"{choice.describe()} on all {values.shape[-3]} slices of {image.name}"
            + (f": {took:.2f} s on {prediction.meta.get('device')}" if took is not None else "")
        )
        if self.on_shown is not None:
            self.on_shown()
