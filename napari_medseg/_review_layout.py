"""The Review dock's controls and where they sit.

The verdicts (Accept, Exclude with its reason, Save correction), the queue's
Previous / Next, the list of keys and the message line are pinned below the
scrolling body (:func:`napari_medseg._scroll.pin_footer`): a reviewer reaches
them without scrolling whatever the dock's height, while the queue, the
sample's details, its flagged slices, the label helpers and the history scroll
above them.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, SpinBox
from qtpy.QtWidgets import QCheckBox, QGridLayout, QLabel

from napari_medseg._forms import TypedChoice, form, placeholder
from napari_medseg._message_line import MessageLine
from napari_medseg._qt_helpers import button
from napari_medseg._review_keys import keys_text
from napari_medseg._scroll import ShortList, body_layout, pin_footer

EXCLUDE_REASONS = ("", "image unusable", "label ambiguous", "duplicate of another sample", "wrong class map")


def verdict_form() -> Container:
    """Why a sample is excluded: a common reason, or typed."""
    reason = TypedChoice(
        name="reason", label="Reason", choices=EXCLUDE_REASONS, tooltip="Why the sample is excluded (required)"
    )
    placeholder(reason, "reason to exclude")
    return form(reason)


def helper_form() -> Container:
    """The label helpers' setting: the size below which "Remove specks" removes a piece."""
    # magicgui's spin box (superqt's large-int one) has no suffix: the unit is in the label
    return form(SpinBox(name="speck_size", label="Speck size (px)", value=20, min=1, max=1_000_000))


def add_controls(w: Any, help_text: str) -> None:
    """The verdict and helper buttons, the history, the keys and the message line of the Review widget ``w``,
    as its attributes, wired to its methods."""
    w.accept_button = button("Accept", w.accept, "The label is right (pending edits are saved)")
    w.exclude_button = button("Exclude", w.exclude, "Leave the sample out of training and export")
    w.verdict_form, w.helper_form = verdict_form(), helper_form()
    w.advance = QCheckBox("then go to the next sample")
    w.advance.setChecked(True)
    w.advance.setToolTip("After Accept, Save correction or Exclude, show the next unreviewed sample in the queue")
    w.save_button = button(
        "Save correction",
        w.submit_correction,
        "Save the labels on screen as a new revision now: the sample is corrected",
    )
    w.only_selected = QCheckBox("only the selected label")
    w.fill_button = button("Fill holes", lambda: w.helper("fill_holes"))
    w.specks_button = button(
        "Remove specks below", lambda: w.helper("remove_specks", min_pixels=w.helper_form.speck_size.value)
    )
    w.smooth_button = button("Smooth", lambda: w.helper("smooth"), "Majority of each 3x3 neighbourhood")
    w.dilate_button = button("Dilate 1 px", lambda: w.helper("dilate"))
    w.erode_button = button("Erode 1 px", lambda: w.helper("erode"))
    w.autofix_button = button(
        "Apply auto-fix", w.apply_autofix, "Save the fixes QC offers for this sample as 'auto-fix' revisions"
    )
    w.history = ShortList(4)
    w.revert_button = button("Revert to selected", w.revert, "A new revision with the selected revision's labels")
    w.keys = QLabel(keys_text())
    w.keys.setWordWrap(True)
    w.keys.setToolTip(help_text)
    w.message = MessageLine()


def lay_out(w: Any) -> None:
    """Place the Review widget ``w``'s controls: the body scrolls, the verdicts and messages are pinned."""
    layout = body_layout(w)
    layout.addWidget(w.panel, 2)
    layout.addWidget(w.details)
    layout.addWidget(w.partner)
    layout.addWidget(w.slices, 1)
    layout.addWidget(w.show_suspicion)
    layout.addWidget(w.suspicion_note)
    helpers = QGridLayout()
    for k, control in enumerate(
        (w.fill_button, w.specks_button, w.helper_form.native, w.smooth_button, w.dilate_button, w.erode_button)
    ):
        helpers.addWidget(control, k // 3, k % 3)
    helpers.addWidget(w.only_selected, 2, 0, 1, 2)
    helpers.addWidget(w.autofix_button, 2, 2)
    layout.addLayout(helpers)
    layout.addWidget(QLabel("History (newest first)"))
    layout.addWidget(w.history, 1)
    layout.addWidget(w.revert_button)

    verdict = QGridLayout()
    verdict.addWidget(w.accept_button, 0, 0)
    verdict.addWidget(w.exclude_button, 0, 1)
    verdict.addWidget(w.verdict_form.native, 0, 2)
    verdict.addWidget(w.advance, 1, 0, 1, 2)
    verdict.addWidget(w.save_button, 1, 2)
    pin_footer(w, w.panel.nav_bar, verdict, w.keys, w.message)
