"""Where the ranking model disagrees with the label on screen: Review's "label suspicion" layer.

The queue says *which* labels are likely wrong; this layer says *where*: at
each pixel, 1 - the probability the ranking run's model gave the label's
class (:func:`medseg.qc.suspicion.suspicion_map`, from the predictions the
ranking stored, so no model runs here). Bright = the model confidently
disagrees: an outline drawn too far out glows as a rim outside the object, a
missed object as a blob where the label has none. The colour scale starts
at 0.5, where the model's answer turns against the label: an unsure model
(probabilities near 0.5 everywhere) would otherwise tint the whole image.
The map is read in a thread worker whenever the sample, the score method or
the stored scores change; a result that arrives after the user moved on is
dropped. A sample the method stored no prediction for (or whose label no
longer matches it in size) hides the layer and says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_medseg._jobs import call, start_job
from napari_medseg._layer_roles import SUSPICION_LAYER, label_stays_active, lock_layer
from napari_medseg._notify import report_error
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER, session_for

CONTRAST = (0.5, 1.0)  # dark until the model's answer differs from the label (module doc)
TIP = (
    "Show where the ranking model disagrees with the label: 1 - the probability it gave the label's "
    "class at each pixel (bright = confident disagreement), from the predictions `medseg rank` stored"
)


def overlay_method(workspace: Any, chosen: str | None) -> str | None:
    """The score method whose stored predictions are shown: the queue's, else the default model method."""
    from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
    from medseg.qc.queue import default_method

    if chosen is not None:
        return chosen
    return default_method([m for m in workspace.score_methods() if m != OUTLINE_METHOD])


def _read(workspace: Any, sample_id: str, chosen_method: str | None) -> tuple[str | None, np.ndarray | None]:
    """Worker body: (the method shown, its suspicion map or None); (None, None) without model scores."""
    from medseg.qc.prediction_store import prediction_path

    method = overlay_method(workspace, chosen_method)
    # torch (seconds to import, holding the interpreter lock the GUI thread needs) only for a sample the
    # method stored a prediction for: a workspace with QC's model-free scores alone never loads it
    if method is None or not prediction_path(workspace.root, method, sample_id).is_file():
        return method, None
    from napari_medseg._torch_guard import load_torch

    load_torch()  # the label scores use the training package's metrics
    from medseg.qc.suspicion import suspicion_map

    return method, suspicion_map(workspace, sample_id, method)


class SuspicionOverlay:
    """Keeps the suspicion layer in step with the sample on screen; ``said(text)`` reports what it shows."""

    def __init__(self, viewer: Any, said) -> None:
        self.viewer, self.said = viewer, said
        self.enabled = True
        self.shown: tuple[str, str] | None = None  # (sample id, method) on screen
        self._request = 0

    def update(self, workspace: Any, sample_id: str | None, chosen_method: str | None) -> None:
        self._request += 1
        if not self.enabled or sample_id is None or workspace is None:
            self._hide(None)
            return
        request = self._request
        # the workspace is read in the worker: a query on the GUI thread waits for the interpreter lock
        # while a prediction runs (measured: 50-800 ms gaps per move in bench_gui_responsiveness.py)
        start_job(
            session_for(self.viewer).jobs,
            lambda token: call(_read, workspace, sample_id, chosen_method),
            f"Reading the label suspicion of {sample_id}",
            workspace=workspace,
            stoppable=False,
            progress=False,
            on_result=lambda result: self._arrived(request, sample_id, *result),
            on_error=lambda e: self._failed(request, sample_id, e),
        )

    def _arrived(self, request: int, sample_id: str, method: str | None, suspicion: np.ndarray | None) -> None:
        if request != self._request:
            return  # the user moved on: this map belongs to another sample
        if method is None:
            self._hide("no model scores to show")
            return
        if suspicion is None:
            self._hide(f"no stored {method} prediction for {sample_id} (rank again to see where the model disagrees)")
            return
        self._put(suspicion)
        self.shown = (sample_id, method)
        self.said(
            f"'{SUSPICION_LAYER}': where the {method} model disagrees with the saved label "
            f"(max {float(suspicion.max()):.2f})"
        )

    def _failed(self, request: int, sample_id: str, exc: BaseException) -> None:
        if request == self._request:
            self._hide(None)
        report_error(f"Reading the label suspicion of {sample_id} failed", exc)

    def _put(self, suspicion: np.ndarray) -> None:
        from napari.layers import Image

        layers = self.viewer.layers
        geometry = {}
        if LABELS_LAYER in layers:
            ref = layers[LABELS_LAYER]
            n = suspicion.ndim
            geometry = {"scale": tuple(ref.scale)[-n:], "translate": tuple(ref.translate)[-n:]}
        layer = layers[SUSPICION_LAYER] if SUSPICION_LAYER in layers else None
        if layer is not None and not isinstance(layer, Image):
            layers.remove(layer)  # a user's layer of another kind under our name
            layer = None
        if layer is None:
            with label_stays_active(self.viewer):  # napari selects the layer it adds: the brush stays on the label
                layer = self.viewer.add_image(
                    suspicion,
                    name=SUSPICION_LAYER,
                    colormap="inferno",
                    contrast_limits=CONTRAST,
                    blending="additive",
                    opacity=0.6,
                    **geometry,
                )
                lock_layer(layer)
                anchor = LABELS_LAYER if LABELS_LAYER in layers else IMAGE_LAYER if IMAGE_LAYER in layers else None
                if anchor is not None:  # above the image, below the labels being edited
                    layers.move(layers.index(layer), layers.index(anchor))
            return
        layer.data = suspicion
        for key, value in geometry.items():
            if tuple(getattr(layer, key)) != value:
                setattr(layer, key, value)
        layer.visible = True

    def _hide(self, why: str | None) -> None:
        self.shown = None
        if SUSPICION_LAYER in self.viewer.layers:
            self.viewer.layers[SUSPICION_LAYER].visible = False
        if why:
            self.said(why)
