"""Fine-tune dock widget: train on the workspace's current labels (or a dataset folder) in a child process.

"Train on" picks whose labels (reviewed, corrected or all current ones), each choice with the samples and
groups it holds (:mod:`napari_medseg._finetune_labels`). The runs go beside the workspace and follow it when
another opens, until the user picks a folder.

Start writes the form's TrainConfig into a new run folder and launches
``medseg train --events jsonl`` (``TrainingProcess``); following it is a job
like any other (:func:`follow_training` through ``start_job``), and the main
thread moves a napari progress bar and the live plot while the user keeps
reviewing. Cancel sets the job's token, which asks the child to stop after its
step (it writes ``last.medseg``); the job relays the child's events until it
ends, so the run's end is the child's own Cancelled naming that checkpoint.
Resume continues that run. A failed run is
a notification naming the error, and its last checkpoint stays. Afterwards
"Use this model" puts the best checkpoint into the session (Predict follows, on a CT/MR
volume slice by slice with the checkpoint's slices and window)
and "Re-score the queue" scores every sample with it (the button cancels it
while it runs; the previous scores are kept). A run on the workspace and a
re-score are jobs on it (:mod:`napari_medseg._jobs`): switching or closing the
workspace cancels them. On a volume workspace the form offers 2-D or 2.5-D and
the intensity window (:mod:`napari_medseg._finetune_config`); a split the chosen
cases cannot make (one case, with validation) is said before any process starts
(:mod:`napari_medseg._finetune_start`). The jobs' bodies are in
:mod:`napari_medseg._finetune_jobs`. Below the live plot, the past runs of the
output folder with their Dice and learning curves; "Use for Predict" picks one
(:mod:`napari_medseg._finetune_runs`).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QWidget

from medseg.cli.exits import EXIT_INPUT
from medseg.jobs import Result
from napari_medseg._finetune_config import (
    VOLUME_FIELDS,
    build_form,
    default_output,
    is_volume_workspace,
    run_folder,
    started_text,
)
from napari_medseg._finetune_jobs import follow_training, score_queue
from napari_medseg._finetune_labels import LabelChoices
from napari_medseg._finetune_runs import RunList
from napari_medseg._finetune_start import checked_config, screen_modality
from napari_medseg._forms import refresh_choices
from napari_medseg._jobs import start_job
from napari_medseg._message_line import MessageLine
from napari_medseg._model_choices import ModelNames, with_model_names
from napari_medseg._notify import report
from napari_medseg._plot import TrainingPlot
from napari_medseg._progress import Bar
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._scroll import body_layout, pin_footer
from napari_medseg._session import session_for
from napari_medseg._threads import child_thread_env
from napari_medseg._viewer_access import real_viewer, when_viewer_closes

if TYPE_CHECKING:
    import napari


class FinetuneWidget(QWidget):
    """See the module docstring."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = real_viewer(napari_viewer)
        self.session = session_for(napari_viewer)
        self.form = build_form()
        with_model_names(self._offer_model_names)
        self.plot = TrainingPlot()
        self.status = MessageLine("Set up a run and press Start.")
        self.message = self.status  # the name the other docks' message lines have
        self.start_button, self.cancel_button = QPushButton("Start"), QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.use_button, self.rescore_button = QPushButton("Use this model"), QPushButton("Re-score the queue")
        # extra environment of the training process: by default it leaves one core to the viewer
        self.child_env: dict[str, str] = child_thread_env()
        self.worker = self.score_worker = self.pbar = None
        self.job = self.score_job = None
        self.run_dir: Path | None = None
        self.events: list = []  # this run's events, in order
        self.outcome: Any = None  # how the run ended: its Result, Cancelled or Failed event
        self.checkpoint: str | None = None  # the model to use: best of a finished run, else the last written
        self.score_token = None
        self._last_bar: Bar | None = None
        self._volumes: tuple[Any, bool] = (None, False)  # (workspace, whether it holds volumes)
        self._auto_out: str | None = None  # the output folder the dock chose; one the user picks stays

        layout = body_layout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.plot)
        self.past_runs = RunList(self.session, lambda: Path(str(self.form.out.value)), self.status.setText)
        layout.addWidget(self.past_runs)
        lines = []
        for row in (
            (self.start_button, self.cancel_button, self.resume_button),
            (self.use_button, self.rescore_button),
        ):
            line = QHBoxLayout()
            for b in row:
                line.addWidget(b)
            lines.append(line)
        pin_footer(self, *lines, self.status)  # the run's actions and what it says stay on screen
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.use_button.clicked.connect(self.use_model)
        self.rescore_button.clicked.connect(lambda: self.cancel_rescore() or self.rescore())
        self.form.data.changed.connect(self._sync)
        self.form.start.changed.connect(self._sync)
        self.form.out.changed.connect(self.past_runs.refresh)
        connect_until_destroyed(
            self, [(self.session.workspace_changed, self._sync), (self.session.checkpoints_changed, self._sync)]
        )
        self.labels = LabelChoices(self, self.session, self.form.statuses, lambda: self.volumes)
        me = weakref.ref(self)
        # no training child outlives the viewer: it is asked to stop (and writes its checkpoint)
        when_viewer_closes(napari_viewer, lambda: me() is not None and me().cancel_training())
        self._sync()

    def _offer_model_names(self, names: ModelNames) -> None:
        refresh_choices(self.form.arch)
        refresh_choices(self.form.encoder)

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def volumes(self) -> bool:
        """True when the session's workspace holds CT/MR volumes (asked once per workspace)."""
        ws = self.session.workspace
        if self._volumes[0] is not ws:
            self._volumes = (ws, is_volume_workspace(ws))
        return self._volumes[1]

    def volume_modality(self) -> str | None:
        """The modality of the workspace's volume on screen ("CT", "MR"), which the "auto" window follows."""
        return screen_modality(self.viewer, self.session)

    def _sync(self, *_: Any) -> None:
        from napari_medseg._finetune_config import FOLDER, NEW_MODEL

        folder = self.form.data.value == FOLDER
        self.form.dataset.visible = folder
        self.form.statuses.visible = not folder
        new = self.form.start.value == NEW_MODEL
        for name in ("arch", "encoder"):
            getattr(self.form, name).visible = new
        for name in VOLUME_FIELDS:  # a dataset folder may hold volumes: it is indexed by the run
            getattr(self.form, name).visible = new and (folder or self.volumes)
        out = str(self.form.out.value)
        if out in ("", ".") or out == self._auto_out:  # the user has not picked a folder: it follows the workspace
            self.form.out.value = default_output(self.session.workspace)
            self._auto_out = str(self.form.out.value)
        busy = self.running
        self.start_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        resumable = self.run_dir is not None and self.outcome is not None and self.outcome.kind != "result"
        self.resume_button.setEnabled(not busy and resumable and self.checkpoint is not None)
        self.use_button.setEnabled(not busy and self.checkpoint is not None)
        scoring = self.score_worker is not None
        # while a re-score runs its button cancels it
        self.rescore_button.setText("Cancel re-scoring" if scoring else "Re-score the queue")
        self.rescore_button.setEnabled(
            scoring or (not busy and self.checkpoint is not None and self.session.workspace is not None)
        )

    # ------------------------------------------------------------------ runs
    def start(self) -> bool:
        """Start a new run from the form; False (with a notification) when the config is invalid."""
        if self.running:
            return False
        run_dir = run_folder(Path(str(self.form.out.value)).expanduser())
        refused, config, workspace = checked_config(
            self.form, self.session, run_dir, self.volumes, self.volume_modality
        )
        if refused is not None:
            self.status.say(*report("Fine-tuning not started", refused))
            return False
        self._launch(run_dir, config, None, workspace)
        return True

    def resume(self) -> bool:
        """Continue the last (cancelled or failed) run from its last checkpoint."""
        if self.running or self.run_dir is None:
            return False
        from napari_medseg._torch_guard import load_torch

        load_torch()  # done by the run being resumed; cheap again
        from medseg.training.runner import LAUNCH_CONFIG

        # the child reads the workspace by its path: the object the session holds may be closed meanwhile
        self._launch(self.run_dir, self.run_dir / LAUNCH_CONFIG, self.run_dir, None)
        return True

    def cancel(self) -> None:
        """Ask the training process to stop after its current step; it writes a checkpoint first."""
        if self.cancel_training():
            self.status.setText("Cancelling: the trainer stops after this step and saves a checkpoint...")

    def cancel_training(self) -> bool:
        # no widget is touched here: it also runs when the viewer is closing
        return self.job is not None and self.job.cancel()

    def _launch(self, run_dir: Path, config: Any, resume: Path | None, workspace: Any) -> None:
        self.run_dir, self.outcome, self.events = run_dir, None, []
        if resume is None:
            self.plot.clear()
            self.checkpoint = None
        env = dict(self.child_env)
        # the bar is the dock's own: it follows the run's global step across a resume's new Started
        running = start_job(
            self.session.jobs,
            lambda token: follow_training(config, resume, env, cancel=token),
            f"Fine-tuning in {run_dir}",
            workspace=workspace,
            owner=self,
            progress=False,
            on_event=self._on_event,
            on_result=lambda summary: self._on_outcome(Result(summary)),
            on_cancelled=self._on_outcome,
            on_error=lambda e: self._failed(run_dir, e),
            on_finished=self._on_finished,
        )
        self.worker, self.job = running.worker, running.job
        self.status.setText(f"{'Resuming' if resume else 'Starting'} the training process in {run_dir}...")
        self._sync()

    def _failed(self, run_dir: Path, e: BaseException) -> None:
        from medseg.errors import TrainingFailed

        if isinstance(e, TrainingFailed):
            self._on_outcome(e.failed)
        else:
            self.status.say(*report(f"Fine-tuning in {run_dir} failed to run", e))

    def _on_event(self, event: Any) -> None:
        kind = event.kind
        self.events.append(event)
        if kind == "started":
            self._close_bar()
            d = event.detail
            self.pbar = Bar("Fine-tuning", event.total or 0)
            self.status.setText(started_text(d))
        elif kind == "step":
            self.plot.add_step(event.global_step, event.loss)
            if self.pbar is not None and event.global_step > self.pbar.n:
                self.pbar.to(event.global_step)
        elif kind == "epoch":
            self.plot.add_epoch(event.epoch, event.val)
            dice = event.val.get("dice")
            self.status.setText(
                f"Epoch {event.epoch + 1}: train loss {event.train_loss:.4g}"
                + (f", validation Dice {dice:.3f}" if dice is not None else "")
            )
        elif kind == "checkpoint":
            if event.tag == "last" or self.checkpoint is None:
                self.checkpoint = event.path
        elif kind == "oom":
            show_warning(
                f"Fine-tuning: out of memory; continuing with micro-batch {event.micro_batch} x {event.accumulate}"
            )

    def _on_outcome(self, event: Any) -> None:
        """The run's end, as the child reported it: a Result, a Cancelled or a Failed."""
        self.events.append(event)
        self.outcome = event
        if event.kind == "result":
            summary = event.value
            self.checkpoint = summary.checkpoint or self.checkpoint
            best = f" (best validation {summary.best_metric:.3f})" if summary.best_metric is not None else ""
            text = f"Fine-tuning finished after {summary.epochs_run} epoch(s){best}: {self.checkpoint}"
            show_info(text)
        elif event.kind == "cancelled":
            kept = event.partial if isinstance(event.partial, dict) else {}
            self.checkpoint = kept.get("checkpoint") or self.checkpoint
            text = (
                f"Fine-tuning cancelled at epoch {kept.get('epoch', 0) + 1}, step {event.done}; "
                f"checkpoint kept: {self.checkpoint}. Resume continues from it."
            )
        else:
            kept = f" The last good checkpoint stays: {self.checkpoint}" if self.checkpoint else ""
            text, _ = report("Fine-tuning failed", f"{event.message}{kept}")
            bug = event.exit_code != EXIT_INPUT  # a user's mistake (bad data, config) shows no traceback
            self.status.say(text, (event.traceback if bug else "") or None)
            return
        self.status.setText(text)

    def _on_finished(self) -> None:
        self._close_bar()
        self.past_runs.refresh()  # the run that ended, with its curves and final evaluation
        self.worker = self.job = None
        self._sync()

    def _close_bar(self) -> None:
        if self.pbar is not None:
            self._last_bar, self.pbar = self.pbar, None
            self._last_bar.close()

    @property
    def last_progress(self) -> tuple[int, int] | None:
        """(steps, total) the last progress bar showed when it closed."""
        return self._last_bar.last if self._last_bar is not None else None

    # --------------------------------------------------------------- results
    def use_model(self) -> None:
        """Swap the run's checkpoint into the session: Predict uses it from now on."""
        if self.checkpoint is not None:
            self.session.set_checkpoints([self.checkpoint])
            self.status.setText(f"Predict now uses {self.checkpoint}")

    def rescore(self) -> bool:
        """Score every workspace sample's labels with the run's checkpoint, in a worker."""
        from napari_medseg._predict_model import DEVICES

        ws = self.session.workspace
        if ws is None or self.checkpoint is None or self.score_worker is not None:
            return False
        checkpoint, device = self.checkpoint, DEVICES[self.form.device.value]
        name = Path(checkpoint).name

        def scored(result: Any) -> None:
            from napari_medseg._torch_guard import load_torch

            load_torch()  # loaded by the re-score already; the guard is what keeps triton out of the viewer
            from medseg.qc.ranking import describe_fold_dice

            quality = describe_fold_dice(result)
            self.status.setText(
                f"Re-scored {len(result.scores)} samples with {name} (method {result.method!r}"
                + (f"; {quality}" if quality else "")
                + "); the review queue follows."
            )
            self.session.scores_changed.emit(result.method)

        def done() -> None:
            self.score_worker = self.score_job = None
            self._sync()

        running = start_job(
            self.session.jobs,
            lambda token: score_queue(ws, checkpoint, device, token),
            f"Re-scoring the queue with {name}",
            workspace=ws,
            owner=self,
            on_result=scored,
            on_cancelled=lambda _: self.status.setText(
                f"Re-scoring with {name} cancelled: the queue keeps its previous scores."
            ),
            on_error=lambda e: self.status.say(*report(f"Re-scoring the queue with {name} failed", e)),
            on_finished=done,
        )
        self.score_worker, self.score_job, self.score_token = running.worker, running.job, running.token
        self._sync()
        self.status.setText(f"Re-scoring every sample with {name}...")
        return True

    def cancel_rescore(self) -> bool:
        """Stop a running re-score at its next sample; False when none runs."""
        if self.score_job is None or not self.score_job.cancel():
            return False
        self.status.setText("Cancelling the re-score...")
        return True
