"""Predict dock widget: a checkpoint (several = an ensemble) or an untrained architecture, run on the image on
screen, once or live (every slice, frame, sample or pixel change), newest request first; on a CT/MR volume
also every slice at once, as a background job (:mod:`napari_medseg._predict_volume`).

The image is the session's sample image, else the selected Image layer (2-D,
RGB, or the slice on screen of a stack / volume). Results are the prediction
Labels layer and optional probability / uncertainty Image layers, updated in
place. "Copy prediction into labels" merges the prediction into the labels
layer; on a workspace sample that is a revision with origin "model". On a volume the copy
takes the slice or the whole-volume prediction and saves only the slices it changed
(:mod:`napari_medseg._predict_copy_volume`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.layers import Image, Shapes
from qtpy.QtWidgets import QCheckBox, QFileDialog, QLabel, QListWidget, QWidget

from medseg.errors import InferenceError, MedsegError
from napari_medseg._forms import boxed, refresh_choices
from napari_medseg._message_line import MessageLine
from napari_medseg._model_choices import ModelNames, with_model_names
from napari_medseg._notify import report
from napari_medseg._predict_copy import (
    COPY_MODES,
    copy_prediction,
    is_workspace_sample,
    start_revision_save,
)
from napari_medseg._predict_copy_volume import VOLUME_SOURCE, copy_into_volume, start_slices_save
from napari_medseg._predict_form import (
    ARCHITECTURE,
    CHECKPOINTS,
    UNTRAINED_NOTE,
    architecture_form,
    copy_form,
    settings_form,
    source_form,
)
from napari_medseg._predict_layers import Outputs, plane_of, snapshot, target_image
from napari_medseg._predict_model import DEVICES, ModelChoice
from napari_medseg._predict_requests import RequestQueue
from napari_medseg._predict_volume import VolumeRun, is_volume_layer
from napari_medseg._qt_helpers import button, connect_until_destroyed, row
from napari_medseg._scroll import body_layout, pin_footer
from napari_medseg._session import IMAGE_LAYER, session_for
from napari_medseg._viewer_access import real_viewer

if TYPE_CHECKING:
    import napari


class PredictWidget(QWidget):
    """See the module docstring."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        # napari hands plugins a proxy that wraps each layer anew on every access; layer identity
        # (which image is predicted, which outputs belong to it) needs the viewer behind it
        self.viewer = real_viewer(napari_viewer)
        self.session = session_for(napari_viewer)
        self.outputs = Outputs(napari_viewer)
        self.queue = RequestQueue(
            self._show, self._failed, self._set_status, self.session.jobs, self._job_of, owner=self
        )
        self.volume_run = VolumeRun(self.viewer, self.session, self._set_status, owner=self)
        # a whole-volume prediction just shown is what a copy takes next
        self.volume_run.on_shown = lambda: setattr(self.copy_form.source, "value", VOLUME_SOURCE)
        self._image: Image | None = None
        self._versions: dict[int, int] = {}
        self.save_worker = None
        self.last_revision: Any = None

        self.source_form, self.arch_form = source_form(), architecture_form()
        self.settings, self.copy_form = settings_form(), copy_form(self._shape_layers)
        self.checkpoint_list = QListWidget()
        self.checkpoint_list.setMaximumHeight(70)
        self.add_button = button("Add checkpoint...", self._browse_checkpoint)
        self.remove_button = button("Remove", self._remove_checkpoints)
        self.untrained_note = QLabel(UNTRAINED_NOTE)
        self.untrained_note.setWordWrap(True)
        self.predict_button = button("Predict", lambda: self.request(force=True))
        self.cancel_button = button("Cancel", self.cancel)
        self.volume_button = button(
            "Predict whole volume",
            self.predict_volume,
            "Every slice of the CT/MR volume on screen, in the background (progress bar; Cancel stops it)",
        )
        self.live = QCheckBox("Live: predict on every slice, sample or image change")
        self.live.toggled.connect(lambda on: on and self.request())
        self.status = MessageLine()
        self.copy_button = button("Copy prediction into labels", self.copy_into_labels)
        layout = body_layout(self)
        layout.addWidget(
            boxed(
                "Model",
                self.source_form,
                self.checkpoint_list,
                row(self.add_button, self.remove_button),
                self.arch_form,
                self.untrained_note,
            )
        )
        layout.addWidget(boxed("Settings", self.settings))
        layout.addWidget(boxed("Into the labels", self.copy_form, self.copy_button))
        layout.addStretch(1)
        # what a user presses most and what it says stay on screen; the whole-volume button only on a volume
        pin_footer(self, row(self.predict_button, self.volume_button, self.cancel_button), self.live, self.status)

        s, model = self.settings, self.arch_form  # the output layers shown are no model setting
        for field in (
            self.source_form.source,
            model.arch,
            s.device,
            s.precision,
            s.threshold,
            s.tta,
            s.tile,
            s.overlap,
        ):
            field.changed.connect(self._settings_changed)
        # an encoder counts as it is typed (as one chosen from the list), a weights file once it is entered
        model.encoder.native.currentTextChanged.connect(self._settings_changed)
        model.weights.native.editingFinished.connect(self._settings_changed)
        with_model_names(self._offer_model_names)

        s, layers = self.session, self.viewer.layers
        connect_until_destroyed(
            self,
            [
                (s.checkpoints_changed, self._on_checkpoints),
                (s.sample_changed, self._live),
                (s.workspace_changed, self._settings_changed),
                (self.viewer.dims.events.current_step, self._live),
                (layers.events.inserted, self._follow_image),
                (layers.events.removed, self._follow_image),
                (layers.selection.events.active, self._follow_image),
            ],
        )
        self._on_checkpoints(self.session.checkpoints)
        self._follow_image()

    # ----------------------------------------------------------------- model
    def choice(self) -> ModelChoice | None:
        """The model the current settings describe; None when no checkpoint is chosen in checkpoint mode."""
        untrained = self.source_form.source.value == ARCHITECTURE
        if not untrained and not self.session.checkpoints:
            return None
        ws, model, s = self.session.workspace, self.arch_form, self.settings
        return ModelChoice(
            checkpoints=() if untrained else tuple(self.session.checkpoints),
            arch=model.arch.value,
            encoder=model.encoder.native.currentText().strip(),
            weights=model.weights.value.strip() or None,
            classmap_json=ws.classmap.to_json() if untrained and ws is not None else None,
            device=DEVICES[s.device.value],
            precision=s.precision.value,
            threshold=round(s.threshold.value, 4),
            tta=bool(s.tta.value),
            tile=s.tile.value or None,
            overlap=round(s.overlap.value, 4),
        )

    def _offer_model_names(self, names: ModelNames) -> None:
        refresh_choices(self.arch_form.arch)
        encoder = self.arch_form.encoder.native.currentText()  # may be a typed name
        refresh_choices(self.arch_form.encoder)
        self.arch_form.encoder.native.setCurrentText(encoder)
        self.settings.device.tooltip = "auto picks a GPU when there is one; devices here: " + ", ".join(names.devices)

    def set_checkpoints(self, paths: list) -> None:
        """Use these checkpoints (an ensemble if several); shared with the other widgets via the session."""
        self.session.set_checkpoints(paths)

    def _on_checkpoints(self, paths: list) -> None:
        self.checkpoint_list.clear()
        self.checkpoint_list.addItems([str(p) for p in paths])
        if paths:
            self.source_form.source.value = CHECKPOINTS  # e.g. Fine-tune's "Use this model"
        self._settings_changed()

    def _browse_checkpoint(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a .medseg checkpoint folder")
        if path:
            self.set_checkpoints([*self.session.checkpoints, path])

    def _remove_checkpoints(self) -> None:
        drop = {i.text() for i in self.checkpoint_list.selectedItems()}
        self.set_checkpoints([p for p in self.session.checkpoints if p not in drop])

    def _settings_changed(self, *_: Any) -> None:
        untrained = self.source_form.source.value == ARCHITECTURE
        self.arch_form.visible = untrained
        self.untrained_note.setVisible(untrained)
        for w in (self.checkpoint_list, self.add_button, self.remove_button):
            w.setVisible(not untrained)
        self.queue.model_changed()
        self._live()

    # ---------------------------------------------------------------- image
    def _shape_layers(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]

    def _follow_image(self, *_: Any) -> None:
        image = target_image(self.viewer, self._image)
        if self._shape_layers() != list(self.copy_form.shapes.choices):
            refresh_choices(self.copy_form.shapes)
        self._follow_kind(image)
        if image is self._image:
            return
        if self._image is not None:
            self._image.events.data.disconnect(self._image_data_changed)
            self._image.events.metadata.disconnect(self._follow_kind)
        self._image = image
        if image is not None:
            image.events.data.connect(self._image_data_changed)
            # a stack of frames and a volume are both 3-D: the sample's metadata says which (set after its data)
            image.events.metadata.connect(self._follow_kind)
        if self.outputs.source is not None and (image is None or self.outputs.source[0] != id(image)):
            self.outputs.invalidate()  # they show another image's prediction
        self._live()

    def _follow_kind(self, image: Any) -> None:
        """Offer what only a CT/MR volume has (the whole-volume prediction, the copy's source) on a volume."""
        if not (image is None or isinstance(image, Image)):  # the metadata event of the image followed
            image = self._image
        volume = image is not None and is_volume_layer(image)
        self.copy_form.source.visible = volume
        self.volume_button.setVisible(volume)

    def _image_data_changed(self, event: Any = None) -> None:
        if self._image is not None:
            self._versions[id(self._image)] = self._versions.get(id(self._image), 0) + 1
        self.outputs.invalidate()
        self._live()

    # -------------------------------------------------------------- predict
    def _live(self, *_: Any) -> None:
        if self.live.isChecked():
            self.request()

    def request(self, force: bool = False) -> bool:
        """Ask for a prediction of the plane on screen; False when there is nothing (new) to predict."""
        image = self._image = target_image(self.viewer, self._image)
        choice = self.choice()
        if image is None or choice is None:
            self._set_status(
                "Select an image layer."
                if image is None
                else "Add a checkpoint, or choose an architecture to try an untrained model."
            )
            return False
        plane = plane_of(image, self.viewer)
        version = self._versions.get(id(image), 0)
        return self.queue.submit(
            (id(image), version, plane, choice), choice, snapshot(image, plane), (image, version, plane), force=force
        )

    def predict_volume(self) -> bool:
        """Predict every slice of the volume on screen as a background job; False (said why) when it cannot."""
        choice = self.choice()
        image = self._image = target_image(self.viewer, self._image)
        return self.volume_run.start(image, choice, self.queue.predictor_for(choice) if choice else None)

    def cancel(self) -> None:
        """Stop the live or one-shot request and the whole-volume prediction."""
        self.queue.cancel()
        self.volume_run.cancel()

    def _job_of(self, request) -> tuple[str, Any]:
        # a prediction of the workspace sample on screen is a job on that workspace: switching stops it
        image = request.context[0]
        ws = self.session.workspace if image.name == IMAGE_LAYER and self.session.sample_id is not None else None
        return f"Prediction of {image.name!r}", ws

    def _show(self, request, prediction) -> None:
        image, version, plane = request.context
        if image not in self.viewer.layers or version != self._versions.get(id(image), 0):
            self._set_status(f"{image.name} changed while it was predicted: predict again.")
            return
        self.outputs.show(
            image,
            version,
            plane,
            prediction,
            bool(self.settings.show_probability.value),
            bool(self.settings.show_uncertainty.value),
        )
        where = f" slice {', '.join(map(str, plane))}" if plane else ""
        took = prediction.meta.get("time_s")
        self._set_status(
            f"{request.choice.describe()} on {image.name}{where}"
            + (f": {took:.2f} s on {prediction.meta.get('device')}" if took is not None else "")
        )

    def _failed(self, request, exc: BaseException, loading: bool) -> None:
        image = request.context[0]
        what = (
            f"Loading the model ({request.choice.describe()}) failed"
            if loading
            else f"Prediction on {image.name!r} failed"
        )
        self._set_status(*report(what, exc))

    def _set_status(self, text: str, detail: str | None = None) -> None:
        self.status.say(text, detail)

    # ----------------------------------------------------------------- copy
    def copy_into_labels(self) -> bool:
        """Merge the prediction into the labels layer as the copy mode says; a revision on a workspace sample."""
        mode_name = self.copy_form.copy_mode.value
        mode = COPY_MODES[mode_name]
        image = target_image(self.viewer, self._image)
        plane = plane_of(image, self.viewer) if image is not None else ()
        shapes = next((x for x in self.viewer.layers if x.name == self.copy_form.shapes.value), None)
        if image is not None and is_volume_layer(image):
            return self._copy_into_volume(image, mode_name, mode, plane[0], shapes)
        try:
            if self.outputs.predicted is None:
                raise InferenceError(
                    "there is no prediction of the image on screen to copy yet: press Predict (or turn on Live) first"
                )
            labels, result = copy_prediction(self.viewer, mode, plane, self.outputs.predicted, shapes)
        except MedsegError as e:
            self._set_status(*report("Copy prediction into labels", e))
            return False
        self._set_status(f"Copied the prediction ({mode_name}): {result.changed:,} pixels changed")
        if is_workspace_sample(self.viewer, self.session, labels):
            self._save_revision(
                result.labels, {"mode": mode, "changed": result.changed, "checkpoints": list(self.session.checkpoints)}
            )
        return True

    def _copy_into_volume(self, image, mode_name: str, mode: str, z: int, shapes) -> bool:
        """The copy on a CT/MR volume: from the slice or the whole-volume prediction; only its changed slices
        are saved (a revision of a workspace sample)."""
        source = self.copy_form.source.value
        ours = self.outputs.source is not None and self.outputs.source[0] == id(image)
        try:
            done = copy_into_volume(
                self.viewer, image, source, mode, z, self.outputs.predicted if ours else None, shapes
            )
        except MedsegError as e:
            self._set_status(*report("Copy prediction into labels", e))
            return False
        self._set_status(done.describe(source, mode_name))
        if done.slices and is_workspace_sample(self.viewer, self.session, done.labels):
            sample_id = self.session.sample_id
            self.save_worker = start_slices_save(
                self.session,
                sample_id,
                done,
                {"mode": mode, "source": source, "checkpoints": list(self.session.checkpoints)},
                self._revision_saved,
                lambda e: self._set_status(
                    *report(f"Saving the copied prediction as a revision of {sample_id} failed", e)
                ),
                lambda: setattr(self, "save_worker", None),
            )
        return True

    def _save_revision(self, labels, details: dict) -> None:
        sample_id = self.session.sample_id
        self.save_worker = start_revision_save(
            self.session,
            sample_id,
            labels,
            details,
            self._revision_saved,
            lambda e: self._set_status(*report(f"Saving the copied prediction as a revision of {sample_id} failed", e)),
            lambda: setattr(self, "save_worker", None),
        )

    def _revision_saved(self, result) -> None:
        sample_id, revision, new = result
        self.last_revision = revision
        if not new:
            self._set_status(
                self.status.text() + f"; the labels equal revision {revision.id} of {sample_id}: nothing new to save"
            )
            return
        self._set_status(self.status.text() + f"; saved as revision {revision.id} of {sample_id} (origin model)")
        self.session.revision_saved.emit(sample_id, revision.id)
