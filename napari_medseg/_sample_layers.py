"""One workspace sample on screen: its image as ``IMAGE_LAYER``, its current label revision as ``LABELS_LAYER``.

``show_sample(viewer, sample_id)`` is how every widget moves between samples:
the image and mask are decoded in a thread worker; when they arrive (on the
main thread) the edits of the sample on screen are saved first (see
:mod:`napari_medseg._review_autosave`), then the two layers are updated in
place (same layer objects, new data, so other widgets' references and the
user's display settings survive), then ``session.set_sample`` announces it.
Only the newest request is shown; an older one that finishes late is dropped.

Labels hold class ids with the class map's colours and names. A multilabel
class map (overlapping classes) cannot share one id image: its labels are one
plane per class (axis 0, value = the class id), so the brush edits one class
at a time.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_medseg._dataset_jobs import SHOWING_SAMPLE
from napari_medseg._jobs import call, start_job
from napari_medseg._layer_data import mask_to_labels
from napari_medseg._layer_roles import label_stays_active
from napari_medseg._notify import report_error
from napari_medseg._review_autosave import autosave_for
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER, session_for
from napari_medseg._viewer_access import layer_named, per_viewer


@dataclass
class LoadedSample:
    """What the worker decoded for one sample."""

    workspace: Any
    sample_id: str
    image: Any  # medseg.io.types.ImageData
    mask: np.ndarray
    head_revision: int | None
    draft: Any = None  # medseg.workspace.drafts.Draft with edits the head lacks, or None


@dataclass(frozen=True)
class OnScreen:
    """The volume on screen when another request starts: what the worker may reuse instead of decoding it
    again (showing the same sample again otherwise held both copies, 4.4x the CT at its peak)."""

    view: Any  # the VolumeView of the image layer
    sample_id: str | None = None
    labels: np.ndarray | None = None  # the Labels layer's array, given only while it holds revision ``revision``
    revision: int | None = None


def load_sample(workspace: Any, sample_id: str, on_screen: OnScreen | None = None) -> LoadedSample:
    """Decode a sample's image, current mask and pending draft (runs in the worker; no Qt). ``on_screen``: the
    volume shown now; its image is reused when it is the same unchanged file, its labels when they hold the
    sample's head revision unedited."""
    from medseg.workspace.drafts import pending_draft

    record = workspace.sample(sample_id)
    if not is_volume_record(record):
        image = workspace.image(sample_id)
        mask = workspace.mask_at(record.head_revision)
        draft = pending_draft(workspace, record.id)
        return LoadedSample(workspace, record.id, image, mask, record.head_revision, draft)
    from concurrent.futures import ThreadPoolExecutor

    from napari_medseg._volume_layers import open_volume_view

    # the image decodes (gzip) while the label slices are read (zlib, sha256): both release the GIL, so the
    # CT's worker takes about the longer of the two rather than their sum
    shown = on_screen if on_screen is not None and on_screen.sample_id == record.id else None
    with ThreadPoolExecutor(1, thread_name_prefix="medseg-volume-image") as pool:
        reuse = on_screen.view if on_screen is not None else None
        image = pool.submit(open_volume_view, record.image_path, _dataset_modality(workspace, record.id), reuse)
        if shown is not None and shown.labels is not None and shown.revision == record.head_revision:
            mask = shown.labels
        else:
            mask = workspace.mask_at(record.head_revision)
        draft = pending_draft(workspace, record.id)
        image = image.result()
    return LoadedSample(workspace, record.id, image, mask, record.head_revision, draft)


def is_volume_record(record: Any) -> bool:
    from medseg.datasets.dataset import MASK_VOLUME

    return record.mask_kind == MASK_VOLUME


def _dataset_modality(workspace: Any, sample_id: str) -> str | None:
    """The modality the dataset names for the sample (e.g. nnU-Net's channel name "CT"), when it names one."""
    extra = workspace.source_sample(sample_id).extra or {}
    value = extra.get("modality")
    return str(value) if value else None


def show_sample(viewer: Any, sample_id: str, z: int | None = None):
    """Show ``sample_id`` of the session's workspace; returns the started worker (``returned`` fires when the
    layers are updated, ``errored`` after the error was reported). ``z``: the slice a volume opens on (the
    review queue's first flagged slice), set once its layers exist; its middle slice when None or off it."""
    return _display_for(viewer).show(sample_id, z)


def reload_labels(viewer: Any) -> None:
    """Put the current revision of the sample on screen into the Labels layer (after a revert or an auto-fix
    saved a revision); pending edits must have been saved first."""
    _display_for(viewer).reload_labels()


def current_sample(viewer: Any) -> str | None:
    """The sample whose labels are on screen (None while none is)."""
    return autosave_for(viewer).sample_id


# ---------------------------------------------------------------- per viewer
class _SampleDisplay:
    def __init__(self, viewer: Any):
        self._viewer = weakref.ref(viewer)
        self.session = session_for(viewer)
        self.autosave = autosave_for(viewer)
        self._request = 0
        self._view = None  # the VolumeView on screen

    def show(self, sample_id: str, z: int | None = None):
        from medseg.errors import WorkspaceError

        ws = self.session.workspace
        if ws is None:
            raise WorkspaceError("no workspace is open: open a dataset or workspace in the Dataset widget first")
        self._request += 1
        request = self._request
        sid = str(sample_id)
        viewer = self._viewer()
        if viewer is not None and IMAGE_LAYER not in viewer.layers:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, warm_up_layers)
        on_screen = self._on_screen(ws)
        return start_job(  # a job on the workspace: it closes after it
            self.session.jobs,
            lambda token: call(load_sample, ws, sid, on_screen),
            f"{SHOWING_SAMPLE}{sample_id}",  # the review queue's build waits for it (napari_medseg._review_queue)
            workspace=ws,
            stoppable=False,
            progress=False,
            on_result=lambda loaded: self._apply_reported(loaded, request, z),
            on_error=lambda e: report_error(f"Cannot show sample {sample_id}", e),
        ).worker

    def _on_screen(self, ws: Any) -> OnScreen | None:
        """The volume shown now, its labels only while they are the head revision loaded, unedited."""
        from napari.layers import Image

        viewer, view = self._viewer(), self._view
        image = layer_named(viewer, IMAGE_LAYER, Image) if viewer is not None and view is not None else None
        if image is None or image.data is not view.data:
            return None
        if not self._labels_clean(ws):
            return OnScreen(view)
        return OnScreen(view, self.autosave.sample_id, self.autosave.layer.data, self.autosave.base_revision)

    def _labels_clean(self, ws: Any) -> bool:
        a = self.autosave
        return bool(
            a.volume and a.layer is not None and a.workspace is ws and not a.edited and not a._drafted
        ) and not (a.slices is not None and a.slices.dirty)

    def _apply_reported(self, loaded: LoadedSample, request: int, z: int | None = None) -> None:
        try:
            self._apply(loaded, request, z)
        except Exception as e:  # noqa: BLE001 - a slot's error would only reach the console
            report_error(f"Cannot show sample {loaded.sample_id}", e)

    def _apply(self, loaded: LoadedSample, request: int, z: int | None = None) -> None:
        viewer = self._viewer()
        if viewer is None or request != self._request or loaded.workspace is not self.session.workspace:
            return  # a newer request, or another workspace, owns the screen now
        a = self.autosave
        same = a.volume and a.layer is not None and a.workspace is loaded.workspace and a.sample_id == loaded.sample_id
        on_screen = a.layer.data if same else None
        if not self.autosave.flush():
            return
        ws = loaded.workspace
        if same and ws.sample(loaded.sample_id).head_revision != loaded.head_revision:
            # the flush saved the labels on screen as the new head: the worker's read (and draft) predate them
            loaded.mask, loaded.head_revision, loaded.draft = on_screen, ws.sample(loaded.sample_id).head_revision, None
        volume = is_volume_view(loaded.image)
        with label_stays_active(viewer):  # a layer napari adds is selected: the brush goes back to the labels
            if volume:
                from napari_medseg._volume_layers import put_volume_image

                _move_below_labels(
                    viewer,
                    put_volume_image(
                        viewer, loaded.image, IMAGE_LAYER, sample_id=loaded.sample_id, workspace=str(ws.root)
                    ),
                )
            else:
                _put_image(viewer, loaded.image, ws, loaded.sample_id)
            self._view = loaded.image if volume else None
            layer = _put_labels(viewer, loaded.mask, loaded.image, ws, loaded.sample_id, self.autosave)
        self.autosave.attach(layer, ws, loaded.sample_id, loaded.head_revision, volume=volume)
        if volume:
            from napari_medseg._volume_layers import go_to_slice

            n = loaded.mask.shape[0]
            go_to_slice(viewer, int(z) if z is not None and 0 <= int(z) < n else n // 2)
        self.autosave.last_message = ""
        if loaded.draft is not None:
            self.autosave.recover(loaded.draft)
        self.session.set_sample(loaded.sample_id)

    def reload_labels(self) -> None:
        autosave = self.autosave
        if autosave.sample_id is None or autosave.layer is None:
            return
        ws, sid = autosave.workspace, autosave.sample_id
        record = ws.sample(sid)
        with autosave.loading():
            autosave.layer.data = mask_to_labels(ws.mask_at(record.head_revision), ws.classmap)
            _reset_undo(autosave.layer)
        autosave.attach(autosave.layer, ws, sid, record.head_revision, volume=autosave.volume)


_DISPLAYS: weakref.WeakKeyDictionary[Any, _SampleDisplay] = weakref.WeakKeyDictionary()
_WARM = False


WARM_UP_LAYER = "medseg warm-up"


def warm_up_layers(viewer: Any = None) -> None:
    """napari's first Image and Labels layer of a process pay its one-off costs (imports, the units registry:
    0.5 s on an idle 2-core machine, 3 s on a loaded one); paid here, on the GUI thread when the Dataset dock
    opens or, at the latest, while the worker reads the first sample (a .nii.gz CT decodes for a second), the
    sample's layers appear that much sooner. In a ``viewer`` without layers, a hidden 2-D Image and Labels
    layer are also added and removed at once: the first layers added to a viewer paid as much again (their
    visuals, controls and the status line's first type checks: 2.5 s of a 20,000-sample open on 2 loaded
    cores); a viewer that holds layers has paid it."""
    global _WARM
    if _WARM:
        return
    _WARM = True
    from napari.layers import Image, Labels

    Image(np.zeros((2, 2, 2), np.int16), scale=(2.0, 1.0, 1.0), contrast_limits=(0.0, 1.0))
    Labels(np.zeros((2, 2, 2), np.uint8), scale=(2.0, 1.0, 1.0))
    if viewer is None or len(viewer.layers):
        return
    plane = np.zeros((2, 2), np.uint8)
    added = [
        viewer.add_image(plane, name=WARM_UP_LAYER, visible=False, contrast_limits=(0.0, 255.0)),
        viewer.add_labels(plane, name=WARM_UP_LAYER, visible=False),
    ]
    for layer in added:
        viewer.layers.remove(layer)


def _display_for(viewer: Any) -> _SampleDisplay:
    return per_viewer(_DISPLAYS, viewer, _SampleDisplay)


# ---------------------------------------------------------------- layers
def is_volume_view(image: Any) -> bool:
    from napari_medseg._volume_layers import VolumeView

    return isinstance(image, VolumeView)


def _put_image(viewer: Any, image: Any, ws: Any, sample_id: str) -> Any:
    from napari.layers import Image

    from napari_medseg._layer_data import image_layer

    data, kwargs, _ = image_layer(image, name=IMAGE_LAYER, sample_id=sample_id, workspace=str(ws.root))
    layer = layer_named(viewer, IMAGE_LAYER, Image)
    if layer is not None and (bool(layer.rgb) != bool(kwargs["rgb"]) or layer.ndim != image.spatial_ndim):
        # napari cannot switch a layer between grey and RGB or 2-D and 3-D: this one is replaced, at its place
        index = viewer.layers.index(layer)
        viewer.layers.remove(layer)
        layer = viewer.add_image(data, **kwargs)
        viewer.layers.move(viewer.layers.index(layer), index)
        return layer
    if layer is None:
        if IMAGE_LAYER in viewer.layers:
            viewer.layers.remove(IMAGE_LAYER)  # a layer of another kind took the name
        layer = viewer.add_image(data, **kwargs)
        _move_below_labels(viewer, layer)
        return layer
    # each assignment below makes napari refresh the layer: only what changed is assigned
    layer.data = data
    _set_if_changed(layer, "scale", tuple(kwargs["scale"]))
    layer.metadata = kwargs["metadata"]
    limits = kwargs.get("contrast_limits")
    if limits is None and np.dtype(data.dtype) == np.uint8:
        limits = (0.0, 255.0)
    if limits is None:
        layer.reset_contrast_limits()
    else:
        _set_if_changed(layer, "contrast_limits_range", tuple(limits))
        _set_if_changed(layer, "contrast_limits", tuple(limits))
    return layer


def _set_if_changed(layer: Any, name: str, value: tuple) -> None:
    if not np.allclose(np.asarray(getattr(layer, name), float), np.asarray(value, float)):
        setattr(layer, name, value)


def _put_labels(viewer: Any, mask: np.ndarray, image: Any, ws: Any, sample_id: str, autosave: Any) -> Any:
    affine = (getattr(image, "metadata", None) or {}).get("affine") if np.ndim(mask) == 3 else None
    return put_labels(viewer, mask, image.spacing, ws.classmap, ws.root, sample_id, autosave, affine=affine)


def put_labels(
    viewer: Any,
    mask: np.ndarray,
    spacing,
    cm: Any,
    root: Any,
    sample_id: str | None,
    autosave: Any,
    *,
    affine: Any = None,
) -> Any:
    """Show a mask (2-D, or a label volume) as ``LABELS_LAYER``: the class map's colours, names as features
    (napari's status bar names the label under the cursor), an edit history of its own."""
    from napari.layers import Labels

    from napari_medseg._layer_data import labels_layer

    ids = mask_to_labels(mask, cm)
    scale = (1.0, *spacing) if cm.task == "multilabel" else tuple(spacing)
    data, kwargs, _ = labels_layer(
        ids,
        name=LABELS_LAYER,
        source=root,
        scale=scale,
        classmap=cm,
        sample_id=sample_id,
        workspace=str(root),
        mask_task=cm.task,
        # a label volume saved from napari (File > Save Selected Layers) lands on its image's grid
        metadata={"affine": affine} if affine is not None else None,
        **({"class_axis": 0} if cm.task == "multilabel" else {}),
    )
    features = {"index": [0, *cm.ids], "class": [cm.background, *cm.names]}
    layer = layer_named(viewer, LABELS_LAYER, Labels)
    if layer is not None and layer.ndim != np.ndim(data):
        with autosave.loading():
            viewer.layers.remove(layer)  # a 2-D layer cannot hold a volume (its edits were saved before)
        layer = None
    if layer is None:
        if LABELS_LAYER in viewer.layers:
            viewer.layers.remove(LABELS_LAYER)
        with autosave.loading():
            layer = viewer.add_labels(data, **kwargs)
        layer.features = features
        layer.selected_label = cm.ids[0]
        return layer
    with autosave.loading():
        same_classes = layer.metadata.get("medseg", {}).get("classmap") == kwargs["metadata"]["medseg"].get("classmap")
        layer.data = data
        _set_if_changed(layer, "scale", tuple(kwargs["scale"]))
        layer.metadata = kwargs["metadata"]
        if not same_classes:  # colours and class names only change with the class map
            layer.colormap = kwargs["colormap"]
            layer.features = features
        layer.editable = True
        _reset_undo(layer)
    return layer


def _reset_undo(layer: Any) -> None:
    # undo must not replay the previous sample's strokes into this one (napari keeps no per-data history)
    reset = getattr(layer, "_reset_history", None)
    if reset is not None:
        reset()


def _move_below_labels(viewer: Any, layer: Any) -> None:
    if LABELS_LAYER in viewer.layers:
        viewer.layers.move(viewer.layers.index(layer), viewer.layers.index(LABELS_LAYER))
