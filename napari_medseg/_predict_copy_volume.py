"""'Copy prediction into labels' on a CT/MR volume: one undoable edit, and only the slices it changed are saved.

The prediction comes from the slice prediction (``PREDICTION_LAYER``: the
slices predicted so far, live or with Predict) or from Predict whole volume
(``VOLUME_PREDICTION_LAYER``: every slice, of the image it was made from). The
copy modes are the 2-D ones (``medseg.inference.merge.merge_prediction``), slice
by slice: "whole image" copies every slice the prediction holds; "current
slice", "selected label only" and "inside drawn shapes" the slice on screen.

The changes go into the labels through ``Labels.data_setitem`` inside one
``block_history``: Ctrl+Z takes the whole copy back, and its paint event names
each changed voxel's slice, which is how the autosave
(:mod:`napari_medseg._volume_edits`) marks exactly those slices. A slice is
written only where the copy changes it, never as a whole new array, which would
mark every slice. On a workspace sample the changed slices are saved at once as
a revision with origin "model" (``Workspace.save_slices``, in a worker): that
revision changes those slices and no other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Labels

from medseg.errors import InferenceError
from napari_medseg._predict_copy import labels_target, region_mask, saved_as_model, start_save
from napari_medseg._session import PREDICTION_LAYER, VOLUME_PREDICTION_LAYER

SLICE_SOURCE, VOLUME_SOURCE = "slice prediction", "whole-volume prediction"
SOURCES = (SLICE_SOURCE, VOLUME_SOURCE)


@dataclass
class VolumeCopy:
    """A copy done: the labels layer written, the slices it changed (ascending) and their voxels changed."""

    labels: Labels
    slices: list[int] = field(default_factory=list)
    changed: int = 0

    def describe(self, source: str, mode_name: str) -> str:
        if not self.slices:
            return f"Copied the {source} ({mode_name}): the labels already hold it, nothing changed"
        shown = ", ".join(map(str, self.slices[:8])) + (", ..." if len(self.slices) > 8 else "")
        n = len(self.slices)
        return (
            f"Copied the {source} ({mode_name}): {self.changed:,} voxels changed on {n} slice"
            f"{'s' if n != 1 else ''} ({shown})"
        )

    def slice_masks(self) -> dict[int, np.ndarray]:
        """{z: a copy of the labels of slice z} of the changed slices: what a save stores."""
        return {z: np.array(self.labels.data[z], copy=True) for z in self.slices}


def _source_of(image: Any) -> str:
    return str((image.metadata or {}).get("medseg", {}).get("source", image.name))


def prediction_of(viewer: Any, image: Any, source: str, predicted: np.ndarray | None) -> tuple[Any, np.ndarray]:
    """(the prediction layer, which of its slices hold a prediction) for the volume ``image``; InferenceError
    when ``source`` has none of this volume. ``predicted``: the slices of the slice prediction made of it."""
    depth = int(image.data.shape[0])
    if source == VOLUME_SOURCE:
        layer = viewer.layers[VOLUME_PREDICTION_LAYER] if VOLUME_PREDICTION_LAYER in viewer.layers else None
        if not isinstance(layer, Labels):
            raise InferenceError("there is no whole-volume prediction yet: press 'Predict whole volume' first")
        if layer.data.ndim != 3:
            raise InferenceError(
                f"the whole-volume prediction has shape {layer.data.shape}: volume labels hold one class id per "
                "voxel, not one plane per class"
            )
        theirs, ours = _source_of(layer), _source_of(image)
        if theirs != ours or tuple(layer.data.shape) != tuple(image.data.shape):
            raise InferenceError(
                f"the whole-volume prediction is of {theirs} {tuple(layer.data.shape)}, not of the volume on screen "
                f"({ours} {tuple(image.data.shape)}): press 'Predict whole volume' again"
            )
        return layer, np.ones(depth, bool)
    if PREDICTION_LAYER not in viewer.layers or predicted is None or not predicted.any():
        raise InferenceError(
            "there is no slice prediction of the volume on screen to copy yet: press Predict (or turn on Live) first"
        )
    return viewer.layers[PREDICTION_LAYER], np.asarray(predicted, bool)


def copy_into_volume(
    viewer: Any,
    image: Any,
    source: str,
    mode: str,
    z: int,
    predicted: np.ndarray | None,
    shapes: Any = None,
) -> VolumeCopy:
    """Merge the ``source`` prediction of the volume ``image`` into the labels (see the module docstring);
    ``z`` is the slice on screen."""
    from napari_medseg._torch_guard import load_torch

    load_torch()  # medseg.inference (loaded by the prediction's worker already)
    from medseg.inference.merge import merge_prediction

    prediction, has = prediction_of(viewer, image, source, predicted)
    labels = labels_target(viewer, prediction)
    if tuple(labels.data.shape) != tuple(prediction.data.shape):
        raise InferenceError(
            f"the labels layer {labels.name!r} has shape {tuple(labels.data.shape)} but the prediction has "
            f"{tuple(prediction.data.shape)}: they belong to different volumes"
        )
    if mode == "whole":
        zs = [int(k) for k in np.flatnonzero(has)]
    elif not has[z]:
        raise InferenceError(f"there is no prediction of slice {z} yet: predict it (or turn on Live) first")
    else:
        zs = [int(z)]
    region = region_mask(shapes, labels, (z,)) if mode == "region" and shapes is not None else None
    if mode == "region" and region is None:
        raise InferenceError("choose the Shapes layer whose polygons / rectangles mark the region to copy")
    merged = {}
    for k in zs:
        result = merge_prediction(
            np.asarray(labels.data[k]),
            np.asarray(prediction.data[k]),
            "whole" if mode in ("whole", "slice") else mode,
            label=labels.selected_label if mode == "label" else None,
            region=region,
        )
        if result.changed:
            merged[k] = result.labels
    return write_slices(labels, merged)


def write_slices(labels: Labels, merged: dict[int, np.ndarray]) -> VolumeCopy:
    """Write the new labels of some slices into ``labels`` as one undoable edit (only the voxels that differ)."""
    done = VolumeCopy(labels)
    if not merged:
        return done
    data = labels.data
    if any(not np.can_cast(np.min_scalar_type(int(m.max())), data.dtype) for m in merged.values()):
        # ids the layer's type cannot hold: a new array (which marks every slice; a save stores the changed ones)
        top = max(int(m.max()) for m in merged.values())
        full = np.array(data, dtype=np.promote_types(data.dtype, np.min_scalar_type(top)))
        for k, m in merged.items():
            done.changed += int(np.count_nonzero(full[k] != m))
            full[k] = m
        done.slices = sorted(merged)
        labels.data = full
        return done
    # napari's undo history keeps the indices of every changed voxel: the smallest type that holds them
    # (uint16 for a 512x512x300 CT: 6 bytes per changed voxel instead of 24)
    index = np.min_scalar_type(max(data.shape) - 1)
    with labels.block_history():  # one history item: one Ctrl+Z, one paint event naming every slice
        for k in sorted(merged):
            rows, cols = np.nonzero(np.asarray(data[k]) != merged[k])
            where = (np.full(rows.size, k, index), rows.astype(index), cols.astype(index))
            labels.data_setitem(where, merged[k][rows, cols].astype(data.dtype, copy=False), refresh=False)
            done.slices.append(k)
            done.changed += int(rows.size)
    labels.refresh()
    return done


def save_slices_job(workspace: Any, sample_id: str, slices: dict[int, np.ndarray], details: dict[str, Any]):
    """Worker body: the changed slices as the sample's new head revision, origin "model"; returns (sample id,
    revision, whether it is new: slices equal to the head's are no change)."""
    note = f"copied the model prediction ({details.get('source')}, {details.get('mode')})"
    return saved_as_model(workspace.save_slices, workspace, sample_id, slices, note, details)


def start_slices_save(
    session: Any, sample_id: str, done: VolumeCopy, details: dict[str, Any], on_saved, on_failed, on_finished
):
    """Run ``save_slices_job`` on the slices the copy ``done`` changed (copied now, as they are on screen) in a
    thread worker (:func:`napari_medseg._predict_copy.start_save`); returns the started worker."""
    details = {**details, "changed": done.changed}
    return start_save(
        session, save_slices_job, sample_id, done.slice_masks(), details, on_saved, on_failed, on_finished
    )
