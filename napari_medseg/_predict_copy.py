"""'Copy prediction into labels': the prediction layer merged into the labels layer (engine: merge_prediction).

The merge goes through ``Labels.data_setitem`` so napari's undo (Ctrl+Z) takes
it back. Drawn regions are the polygons / rectangles / ellipses of a Shapes
layer, rasterised in the labels' pixel grid (the shapes may have another scale
or translate). When the image is a workspace sample, the result is saved as a
revision with origin "model" in a worker (the write is durable, so it fsyncs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels, Shapes

from medseg.errors import InferenceError
from napari_medseg._jobs import call, start_job
from napari_medseg._layer_data import labels_layer
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER, PREDICTION_LAYER

COPY_MODES = {
    "whole image": "whole",
    "current slice": "slice",
    "selected label only": "label",
    "inside drawn shapes": "region",
}


def _in_labels_grid(v: np.ndarray, shapes: Shapes, labels: Labels) -> np.ndarray:
    """Vertices (N, D) in the shapes' data coordinates -> the labels' data coordinates (shared trailing axes)."""
    k = min(v.shape[1], labels.ndim)
    s_scale, s_shift = np.asarray(shapes.scale[-k:], float), np.asarray(shapes.translate[-k:], float)
    l_scale, l_shift = np.asarray(labels.scale[-k:], float), np.asarray(labels.translate[-k:], float)
    return (v[:, -k:] * s_scale + s_shift - l_shift) / l_scale


def region_mask(shapes: Shapes, labels: Labels, plane: tuple[int, ...]) -> np.ndarray:
    """(H, W) mask of the shapes in the labels' grid; on a stack, only the shapes drawn on ``plane``."""
    vertices, types = [], []
    for v, kind in zip(shapes.data, shapes.shape_type):
        grid = _in_labels_grid(np.asarray(v, float), shapes, labels)
        n = min(grid.shape[1] - 2, len(plane))  # a class-plane axis of the labels is not a slice
        if n and tuple(round(x) for x in grid[0, -2 - n : -2]) != tuple(plane[-n:]):
            continue  # drawn on another slice
        vertices.append(grid[:, -2:])
        types.append(kind)
    if not vertices:
        raise InferenceError(
            f"the Shapes layer {shapes.name!r} has no shape on this slice: draw a polygon "
            "or rectangle around the region to copy"
        )
    masks = Shapes(vertices, shape_type=types).to_masks(mask_shape=labels.data.shape[-2:])
    return np.asarray(masks).any(0)


def labels_target(viewer, prediction: Labels) -> Labels:
    """The session's labels layer; created empty (with the prediction's classes) when there is none."""
    if LABELS_LAYER in viewer.layers and isinstance(viewer.layers[LABELS_LAYER], Labels):
        return viewer.layers[LABELS_LAYER]
    meta = (prediction.metadata or {}).get("medseg") or {}
    from medseg.datasets.classmap import ClassMap

    classmap = ClassMap.from_dict(meta["classmap"]) if meta.get("classmap") else None
    data, kwargs, _ = labels_layer(
        np.zeros(prediction.data.shape, prediction.data.dtype),
        LABELS_LAYER,
        "copied from the model prediction",
        tuple(prediction.scale),
        classmap,
    )
    return viewer.add_labels(data, translate=tuple(prediction.translate), **kwargs)


def copy_prediction(
    viewer, mode: str, plane: tuple[int, ...], predicted: np.ndarray | None, shapes: Shapes | None = None
):
    """Merge the prediction layer into the labels layer; returns (labels layer, MergeResult)."""
    from napari_medseg._torch_guard import load_torch

    load_torch()  # medseg.inference (loaded by the prediction's worker already)
    from medseg.inference.merge import merge_prediction

    if PREDICTION_LAYER not in viewer.layers:
        raise InferenceError("there is no prediction to copy yet: press Predict (or turn on Live) first")
    prediction = viewer.layers[PREDICTION_LAYER]
    labels = labels_target(viewer, prediction)
    current = np.asarray(labels.data)
    if current.shape != prediction.data.shape:
        raise InferenceError(
            f"the labels layer {labels.name!r} has shape {current.shape} but the prediction "
            f"has {prediction.data.shape}: they belong to different images"
        )
    region = None
    if mode == "region":
        if shapes is None:
            raise InferenceError("choose the Shapes layer whose polygons / rectangles mark the region to copy")
        region = region_mask(shapes, labels, plane)
    lead = current.shape[:-2]
    scope = np.ones(lead, bool) if predicted is None else np.broadcast_to(predicted, lead)
    where: tuple | None = tuple(plane) if lead else None
    if len(lead) > len(plane):  # class planes (overlapping classes): a slice is every class's plane on it
        only = np.zeros(lead, bool)
        only[(slice(None),) * (len(lead) - len(plane)) + tuple(plane)] = True
        scope, where = scope & (only if mode != "whole" else True), None
        mode = "whole" if mode == "slice" else mode
    result = merge_prediction(
        current,
        np.asarray(prediction.data),
        mode,
        plane=where,
        predicted=scope,
        label=labels.selected_label if mode == "label" else None,
        region=region,
    )
    if isinstance(labels.data, np.ndarray) and result.labels.dtype == labels.data.dtype:
        indices = np.nonzero(result.labels != current)
        labels.data_setitem(indices, result.labels[indices])  # undoable with Ctrl+Z
    else:
        labels.data = result.labels
    return labels, result


def is_workspace_sample(viewer, session, labels: Labels) -> bool:
    """True when the labels on screen are the session's workspace sample (so a copy is a revision)."""
    return (
        session.workspace is not None
        and session.sample_id is not None
        and labels.name == LABELS_LAYER
        and IMAGE_LAYER in viewer.layers
    )


def save_revision_job(workspace, sample_id: str, labels: np.ndarray, details: dict[str, Any]):
    """Worker body: the labels (layer form) as the sample's new head revision, origin "model";
    returns (sample id, revision, whether it is new: a mask equal to the head is not saved again)."""
    from napari_medseg._layer_data import labels_to_mask

    mask = labels_to_mask(labels, workspace.classmap)
    note = f"copied the model prediction ({details.get('mode')})"
    return saved_as_model(workspace.save_revision, workspace, sample_id, mask, note, details)


def saved_as_model(save, workspace, sample_id: str, content: Any, note: str, details: dict[str, Any]):
    """``save(sample_id, content, ...)`` (a workspace's save_revision or save_slices) with origin "model";
    (sample id, revision, whether it is new: content equal to the head is no new revision)."""
    from medseg.workspace.records import MODEL

    head = workspace.sample(sample_id).head_revision
    revision = save(sample_id, content, origin=MODEL, note=note, details=details)
    return sample_id, revision, revision.id != head


def start_revision_save(
    session, sample_id: str, labels: np.ndarray, details: dict[str, Any], on_saved, on_failed, on_finished
):
    """Run ``save_revision_job`` into the session's workspace on a copy of ``labels`` in a thread worker;
    returns the started worker."""
    return start_save(
        session, save_revision_job, sample_id, np.array(labels, copy=True), details, on_saved, on_failed, on_finished
    )


def start_save(session, job, sample_id: str, content: Any, details: dict[str, Any], on_saved, on_failed, on_finished):
    """Run ``job(workspace, sample_id, content, details)`` (a save of the copied prediction) in a thread worker;
    returns the started worker. A job the workspace waits for before it closes, never stopped: an edit is
    never dropped."""
    workspace = session.workspace
    return start_job(
        session.jobs,
        lambda token: call(job, workspace, sample_id, content, details),
        f"Saving the copied prediction of {sample_id}",
        workspace=workspace,
        stoppable=False,
        progress=False,
        on_result=on_saved,
        on_error=on_failed,
        on_finished=on_finished,
    ).worker
