"""Review dock widget: the queue worst label first, verdicts, label helpers, revision history.

The queue is :func:`medseg.qc.queue.review_queue` (QC findings and model
scores; filter by status and finding), shown by :class:`~napari_medseg._review_queue.QueuePanel`.
Moving along it shows each sample through :func:`napari_medseg._sample_layers.show_sample`;
edits on the Labels layer are autosaved as revisions when the user moves on or
the viewer closes, and kept in a crash-safe draft meanwhile
(:mod:`napari_medseg._review_autosave`). The buttons' work is in
:mod:`napari_medseg._review_actions`; the exclusion reason and the speck size are its forms
(:mod:`napari_medseg._forms`); the controls and where they sit (the verdicts pinned below
the scrolling body) are :mod:`napari_medseg._review_layout`'s.

After a verdict or a saved correction the widget shows the next unreviewed
sample after the sample's place in the queue (the queue panel's doc); the
keys for verdicts are :mod:`napari_medseg._review_keys`'s, listed in the
panel. What a move did (the verdict, the autosave of the sample left, a draft
recovered) is said once the next sample is on screen.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QLabel, QListWidgetItem, QWidget

from napari_medseg import _review_actions as actions
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import connect_until_destroyed
from napari_medseg._review_autosave import autosave_for, changed_text
from napari_medseg._review_keys import bind_review_keys
from napari_medseg._review_layout import add_controls, lay_out
from napari_medseg._review_partner import PartnerView
from napari_medseg._review_queue import NEXT_KEY, PREVIOUS_KEY, QueuePanel, chosen
from napari_medseg._review_slices import NEXT_SLICE_KEY, PREVIOUS_SLICE_KEY, SliceNavigator
from napari_medseg._review_suspicion import TIP as SUSPICION_TIP
from napari_medseg._review_suspicion import SuspicionOverlay
from napari_medseg._session import session_for

if TYPE_CHECKING:
    import napari

HELP = (
    f"Review the labels most likely wrong first. Keys in the viewer: '{NEXT_KEY}' next sample, "
    f"'{PREVIOUS_KEY}' previous sample; on a volume '{NEXT_SLICE_KEY}' / '{PREVIOUS_SLICE_KEY}' its next / "
    "previous flagged slice; Shift+A accept, Shift+S save correction, Shift+X exclude (each then goes to the "
    "next unreviewed sample when 'then go to the next sample' is ticked); Shift+D opens the same picture's other "
    "sample when QC found that their masks disagree (it is shown to the right). Edit with napari's brush, fill and "
    "eraser on the 'medseg labels' layer; edits are saved as a revision when you move on or close napari, and "
    "kept in a crash-safe draft meanwhile."
)
_FAILED = object()


class ReviewWidget(QWidget):
    """Queue, verdicts, helpers and history of the sample on screen."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.autosave = autosave_for(napari_viewer)
        self.setToolTip(HELP)
        self.panel = QueuePanel(napari_viewer, self.autosave, self.session)
        # the queue's controls, reachable from the widget (scripts, tests)
        self.status_filter, self.check_filter = self.panel.status_filter, self.panel.check_filter
        self.method, self.queue, self.position = self.panel.method, self.panel.queue, self.panel.position
        self.sample_pending: Any = None  # the worker reading the sample's facts, while one runs
        self._carry = ""  # what a verdict said, shown with the next sample's message when it moved on
        self._record: Any = None
        self._facts_request = 0
        self.suspicion = SuspicionOverlay(napari_viewer, lambda text: self.suspicion_note.setText(text))
        self.show_suspicion = QCheckBox("Show where the model disagrees")
        self.show_suspicion.setChecked(True)
        self.show_suspicion.setToolTip(SUSPICION_TIP)
        self.show_suspicion.toggled.connect(self._suspicion_toggled)
        self.method.currentIndexChanged.connect(lambda _=None: self._update_suspicion())
        self.suspicion_note = QLabel()
        self.suspicion_note.setWordWrap(True)
        self.details = QLabel("<i>No sample on screen.</i>")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.slices = SliceNavigator(napari_viewer, self.session, self.autosave, self.panel)
        self.partner = PartnerView(napari_viewer, self.session, self.panel.show)

        add_controls(self, HELP)
        lay_out(self)

        self.panel.said.connect(self._said)
        self.panel.refreshed.connect(self._on_queue_refreshed)
        s = self.session
        connect_until_destroyed(
            self,
            [
                (s.workspace_changed, self.refresh_all),
                (s.sample_changed, self._on_sample_changed),
                (s.status_changed, self._on_status_changed),
                (s.scores_changed, self.refresh_all),
                (s.findings_changed, self.refresh_all),
                (s.revision_saved, self._on_revision_saved),
            ],
        )
        bind_review_keys(napari_viewer, self)
        self.refresh_all()

    # ----------------------------------------------------------------- queue
    def refresh_all(self, *_: Any) -> None:
        """Filters, queue and the sample's panel (after a workspace, score or findings change)."""
        self.panel.refill_choices()
        self.panel.refresh()
        self.refresh_sample()

    def _on_queue_refreshed(self) -> None:
        rec = self._record
        if rec is not None and rec.id == self.autosave.sample_id and self.sample_pending is None:
            self.details.setText(self._details_html(rec))

    def _details_html(self, record: Any) -> str:
        from napari_medseg._review_text import item_html

        filtered = chosen(self.status_filter) is not None or chosen(self.check_filter) is not None
        return item_html(self.panel.item_of(record.id), record, self.panel.place(record.id), filtered)

    def _said(self, text: str) -> None:
        self.message.setText(" ".join(t for t in (self._carry, text) if t))

    def queue_ids(self) -> list[str]:
        return self.panel.queue_ids()

    def next_sample(self) -> None:
        self.panel.step(+1)

    def previous_sample(self) -> None:
        self.panel.step(-1)

    def show(self, sample_id: str) -> None:
        self.panel.show(sample_id)

    def open_partner(self) -> None:
        """Review the disagreeing duplicate shown beside the sample (its button and key)."""
        if not self.partner.open():
            self.message.setText("No duplicate of this sample disagrees with its label.")

    # -------------------------------------------------------------- the sample
    def refresh_sample(self) -> None:
        """The sample's details, history and auto-fixes, read from the workspace in a thread worker (a
        query on the GUI thread waits for the interpreter lock while a prediction runs); newest wins."""
        from napari_medseg._jobs import read_job

        ws, sid = self.session.workspace, self.autosave.sample_id
        self._update_suspicion()
        self.partner.follow(ws, sid, self.panel.item_of(sid))
        self._facts_request += 1
        if ws is None or sid is None:
            self.sample_pending = self._record = None
            self.history.clear()
            self.details.setText("<i>No sample on screen.</i>")
            self._enable(False)
            return
        self._enable(True)
        if self._record is None or self._record.id != sid:  # never the previous sample's facts
            self.details.setText(f"<b>{escape(str(sid))}</b> · reading…")
            self.history.clear()
        request = self._facts_request
        self.sample_pending = read_job(  # a job on the workspace: it closes after it
            self.session.jobs,
            f"Reading sample {sid}",
            ws,
            lambda: _sample_facts(ws, sid),
            lambda facts: self._show_facts(request, facts),
            lambda e: self._facts_failed(request, sid, e),
        )

    def _show_facts(self, request: int, facts: tuple) -> None:
        from napari_medseg._review_text import revision_line

        if request != self._facts_request:
            return  # the user moved on
        self.sample_pending = None
        self._record, revisions, fixes = facts
        self.details.setText(self._details_html(self._record))
        self.history.clear()
        for rev in reversed(revisions):
            row = QListWidgetItem(revision_line(rev))
            row.setToolTip(row.text())
            row.setData(Qt.ItemDataRole.UserRole, rev.id)
            self.history.addItem(row)
        self.autofix_button.setEnabled(bool(fixes))
        self.autofix_button.setText("Apply auto-fix" + (f" ({', '.join(fixes)})" if fixes else ""))

    def _facts_failed(self, request: int, sample_id: str, exc: BaseException) -> None:
        if request == self._facts_request:
            self.sample_pending = None
        report_error(f"Reading sample {sample_id} from the workspace failed", exc)

    def _update_suspicion(self) -> None:
        self.suspicion.update(self.session.workspace, self.autosave.sample_id, self.panel.method_name())

    def _suspicion_toggled(self, on: bool) -> None:
        self.suspicion.enabled = bool(on)
        self.suspicion_note.setText("")
        self._update_suspicion()

    def _enable(self, on: bool) -> None:
        for b in (
            self.accept_button,
            self.exclude_button,
            self.save_button,
            self.fill_button,
            self.specks_button,
            self.smooth_button,
            self.dilate_button,
            self.erode_button,
            self.revert_button,
            self.autofix_button,
        ):
            b.setEnabled(on)

    def _on_sample_changed(self, sample_id: str | None) -> None:
        self.panel.mark_current()
        self.refresh_sample()
        # composed here, after the layers are up (putting them up clears the autosave's last message): what
        # the verdict that moved on said, the save of the sample left, a draft recovered on this one
        note, last = self.autosave.take_save_note(), self.autosave.last_message
        parts = [self._carry, note, last if last != note else ""]
        self._carry = ""
        self.message.setText(" ".join(p for p in parts if p))

    def _on_status_changed(self, sample_id: str, status: str) -> None:
        self.panel.refresh(hold=sample_id)  # the sample keeps its place for Next (the queue panel's doc)

    def _on_revision_saved(self, sample_id: str, revision_id: int) -> None:
        if sample_id == self.autosave.sample_id:
            self.refresh_sample()

    # ----------------------------------------------------------------- actions
    def _run(self, what: str, action, *args, **kwargs) -> Any:
        """The action's result, or ``_FAILED`` once the failure was shown to the user."""
        try:
            return action(self.viewer, *args, **kwargs)
        except actions.EditsNotSaved as e:  # the autosave already reported why
            self.message.setText(str(e))
        except Exception as e:  # noqa: BLE001 - every failure reaches the user
            self.message.setText(f"{what} failed: {e}")
            report_error(f"{what} failed", e)
        return _FAILED

    def _saved_words(self) -> str:
        note = self.autosave.take_save_note()  # pending edits the verdict saved first
        return f" {note}" if note else ""

    def accept(self) -> None:
        sid = self.autosave.sample_id
        status = self._run("Accept", actions.accept)
        if status is not _FAILED:
            self._after_verdict(f"{sid}: {status}.{self._saved_words()}")

    def exclude(self) -> None:
        sid = self.autosave.sample_id
        reason = self._run("Exclude", actions.exclude, self.verdict_form.reason.value)
        if reason is not _FAILED:
            self._after_verdict(f"{sid}: excluded ({reason}).{self._saved_words()}")

    def _after_verdict(self, text: str, advance: bool | None = None) -> None:
        """Say ``text``; then, when asked (the check box by default), show the next unreviewed sample after this
        one's place in the queue, ``text`` staying on screen with what the move says."""
        self.message.setText(text)
        self.refresh_sample()
        if self.advance.isChecked() if advance is None else advance:
            self._carry = text
            if not self.panel.step_unreviewed():
                self._carry = ""  # the panel said why it stays, after text

    def save_correction(self, advance: bool = False) -> None:
        """Save the labels on screen as a "manual" revision (the sample is then corrected); with ``advance``,
        go on to the next unreviewed sample, as the button and its key do when the check box is ticked."""
        sid = self.autosave.sample_id
        rev = self._run("Saving the correction", actions.save_correction)
        if rev is _FAILED:
            return
        self.autosave.take_save_note()  # said below
        if rev is None:
            self.message.setText(f"{sid}: no changes to save.")
        else:
            self._after_verdict(f"{sid}: saved revision {rev.id} ({changed_text(rev)}); corrected.", advance)

    def submit_correction(self) -> None:
        """The Save correction button and key: save, then move on as the check box says."""
        self.save_correction(advance=self.advance.isChecked())

    def helper(self, name: str, **params) -> None:
        layer = self.autosave.layer
        only = int(layer.selected_label) if self.only_selected.isChecked() and layer is not None else None
        n = self._run(name.replace("_", " ").capitalize(), actions.apply_helper, name, only_label=only, **params)
        if n is not _FAILED:
            self.message.setText(f"{name.replace('_', ' ')}: {n:,} pixels changed (undo with Ctrl+Z).")

    def apply_autofix(self) -> None:
        saved = self._run("Auto-fix", actions.apply_autofix)
        if saved is not _FAILED:
            self.message.setText("; ".join(r.note for r in saved) if saved else "The auto-fix changes nothing now.")

    def revert(self) -> None:
        row = self.history.currentItem()
        if row is None:
            self.message.setText("Select a revision in the history first.")
            return
        rev = self._run("Revert", actions.revert_to, row.data(Qt.ItemDataRole.UserRole))
        if rev is not _FAILED:
            self.message.setText(f"{rev.sample_id}: {rev.note} (revision {rev.id}).")


def _sample_facts(ws: Any, sample_id: str) -> tuple:
    """Worker body: (record, revisions, names of the offered fixes) of the sample on screen."""
    return (
        ws.sample(sample_id),
        ws.revisions(sample_id),
        sorted({f.fix for f in ws.findings(sample_id=sample_id) if f.fix}),
    )
