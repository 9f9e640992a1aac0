"""Review's disagreeing duplicate: the same picture's other sample beside the one on screen, and a way to open it.

QC's ``duplicate_mask_disagreement`` error (:mod:`medseg.qc.duplicates`) says
the sample is the same picture as another whose mask disagrees beyond
anti-aliasing: one of the two labels is wrong, and which one is seen only when
both are in view. While such a sample is on screen, :class:`PartnerView` puts
the partner's image and its current label (head revision) to the right of the
sample, moved by the sample's width plus a gap (:data:`GAP` of it, at least
:data:`MIN_GAP` pixels), both locked (:func:`~napari_medseg._layer_roles.lock_layer`)
with the label being edited staying the active layer; its line says "Same
picture as 7: masks agree at IoU 0.74; one of them is wrong", and its button
and :data:`~napari_medseg._review_keys.OPEN_PARTNER_KEY` open the partner as the
sample under review, through the queue panel like any other move (the partner
then shows the first sample beside it). The finding and the partner are read in
a thread worker through the load the sample itself goes through
(:func:`napari_medseg._sample_layers.load_sample`); a result that arrives after
the user moved on is dropped, and the layers go as soon as another sample is
shown. The partner of a volume gets its line and button, not its layers (QC
compares 2-D pictures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QWidget

from napari_medseg._jobs import read_job
from napari_medseg._layer_roles import PARTNER_IMAGE_LAYER, PARTNER_LABELS_LAYER, label_stays_active, lock_layer
from napari_medseg._notify import report_error
from napari_medseg._qt_helpers import button
from napari_medseg._review_keys import OPEN_PARTNER_KEY, shown_key
from napari_medseg._session import IMAGE_LAYER

GAP, MIN_GAP = 0.05, 4  # the space between the sample and its partner: a share of the sample's width, in pixels
PARTNER_LAYERS = (PARTNER_IMAGE_LAYER, PARTNER_LABELS_LAYER)


@dataclass
class Partner:
    """What the worker read: the sample on screen's disagreeing duplicate and its decoded picture and label."""

    sample_id: str  # the sample on screen
    partner: str
    iou: float | None
    more: tuple[str, ...]  # further partners the finding names as errors
    loaded: Any = None  # napari_medseg._sample_layers.LoadedSample, None for a volume
    # "odd": this label is the odd one out of its copies; "right": the partner is it; "trusted" / "distrusted":
    # the other signals trust this label / the partner more (medseg.qc.queue_state.told_pairs)
    verdict: str = "either"


def read_partner(workspace: Any, sample_id: str, findings: Any = None) -> Partner | None:
    """Worker body: the first partner QC's disagreement error names for ``sample_id``, loaded; None without one.
    ``findings``: the sample's findings as its queue item reads them (a pair the other signals tell apart,
    :func:`medseg.qc.queue_state.told_pairs`), else the stored ones."""
    from medseg.qc.queue_words import PAIR_CHECK, pair_partners
    from napari_medseg._sample_layers import is_volume_record, load_sample

    if findings is None:
        findings = workspace.findings(sample_id=sample_id, check=PAIR_CHECK)
    for finding in (f for f in findings if f.check == PAIR_CHECK):
        partners = pair_partners(finding)  # the worst-agreeing first, as the finding orders them
        verdict = "odd" if partners and finding.details.get("odd_one_out_of") else "either"
        if partners and finding.details.get("trusted_partner"):
            verdict = "distrusted"
        if not partners and finding.details.get("likely_wrong"):  # medseg.qc.duplicates_odd: the odd one
            partners, verdict = [str(s) for s in finding.details["likely_wrong"]], "right"
        if not partners and finding.details.get("trusted_over"):
            partners, verdict = [str(s) for s in finding.details["trusted_over"]], "trusted"
        if not partners:
            continue
        first = partners[0]
        iou = next((o.get("iou") for o in finding.details.get("others") or () if str(o.get("id")) == first), None)
        if iou is None:
            iou = finding.value
        record = workspace.sample(first)  # a partner gone from the workspace fails here, and is reported
        loaded = None if is_volume_record(record) else load_sample(workspace, first)
        return Partner(sample_id, first, None if iou is None else float(iou), tuple(partners[1:]), loaded, verdict)
    return None


def partner_line(p: Partner) -> str:
    """E.g. "Same picture as 7: masks agree at IoU 0.74; one of them is wrong"; where three or more copies
    tell which (:mod:`medseg.qc.duplicates_odd`), which one."""
    agree = f"masks agree at IoU {p.iou:.2f}" if p.iou is not None else "masks disagree"
    more = f" (also the same picture as {', '.join(p.more)})" if p.more else ""
    if p.verdict == "odd":
        return f"Same picture as {p.partner}: {agree}; this label is the odd one out of its copies, likely wrong{more}"
    if p.verdict == "right":
        return f"Same picture as {p.partner}: {agree}; {p.partner} is the odd one out of its copies, likely wrong{more}"
    head = f"Same picture as {p.partner}: {agree}; the other signals trust"
    if p.verdict == "trusted":
        return f"{head} this label more: {p.partner} is likely wrong"
    if p.verdict == "distrusted":
        return f"{head} {p.partner} more: this label is likely wrong"
    return f"Same picture as {p.partner}: {agree}; one of them is wrong{more}"


class PartnerView(QWidget):
    """The line and the open button in the Review panel, and the partner's layers in the viewer (module doc).
    ``open_sample(sample_id)`` shows a sample (the queue panel's ``show``)."""

    def __init__(self, viewer: Any, session: Any, open_sample: Callable[[str], None], parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.session, self.open_sample = viewer, session, open_sample
        self.owner: str | None = None  # the sample on screen the line and the layers are about
        self.partner: Partner | None = None
        self.pending: Any = None  # the worker reading the partner, while one runs
        self._shown: tuple | None = None  # (owner, partner, its head revision) the layers hold
        self._request = 0
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.open_button = button(
            f"Open it ({shown_key(OPEN_PARTNER_KEY)})",
            self.open,
            "Review the same picture's other sample (shown to the right of this one)",
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note, 1)
        layout.addWidget(self.open_button)
        self.hide()

    def follow(self, workspace: Any, sample_id: str | None, item: Any = None) -> None:
        """Read the partner of ``sample_id`` in a worker; the layers of another sample's partner go at once.
        ``item``: the sample's queue item, whose findings say what the queue makes of a pair."""
        self._request += 1
        if sample_id != self.owner:
            self._clear()
            self.owner = sample_id
        if workspace is None or sample_id is None:
            self.pending = None
            return
        request = self._request
        self.pending = read_job(  # a job on the workspace: it closes after it
            self.session.jobs,
            f"Reading the duplicate of {sample_id}",
            workspace,
            lambda: read_partner(workspace, sample_id, None if item is None else item.findings),
            lambda found: self._arrived(request, sample_id, found),
            lambda e: self._failed(request, sample_id, e),
        )

    def open(self) -> bool:
        """Show the partner as the sample under review (read in the sample display's worker); False without one."""
        if self.partner is None or self.partner.sample_id != self.owner:
            return False
        self.open_sample(self.partner.partner)
        return True

    # ------------------------------------------------------------------ results
    def _arrived(self, request: int, sample_id: str, found: Partner | None) -> None:
        if request != self._request:
            return  # the user moved on, or QC ran again: a newer read owns the panel
        self.pending = None
        if found is None:
            self._clear()
            return
        self.partner = found
        self.note.setText(partner_line(found))
        self.open_button.setText(f"Open {found.partner} ({shown_key(OPEN_PARTNER_KEY)})")
        self.open_button.setToolTip(f"Review sample {found.partner} (shown to the right of this one)")
        self.show()
        try:
            self._put(found)
        except Exception as e:  # noqa: BLE001 - a slot's error would only reach the console
            report_error(f"Cannot show sample {found.partner} beside {sample_id}", e)

    def _failed(self, request: int, sample_id: str, exc: BaseException) -> None:
        if request == self._request:
            self.pending = None
            self._clear()
        report_error(f"Reading the duplicate of sample {sample_id} failed", exc)

    # ------------------------------------------------------------------- layers
    def _put(self, p: Partner) -> None:
        loaded = p.loaded
        shown = (p.sample_id, p.partner, None if loaded is None else loaded.head_revision)
        if shown == self._shown and all(name in self.viewer.layers for name in PARTNER_LAYERS):
            return  # the same label is beside the sample already: the user's view stays as it is
        self._remove_layers()
        if loaded is None or IMAGE_LAYER not in self.viewer.layers:
            return
        from napari_medseg._layer_data import image_layer, labels_layer, mask_to_labels

        ws, image = loaded.workspace, loaded.image
        dx = _right_of(self.viewer.layers[IMAGE_LAYER])
        data, kwargs, _ = image_layer(
            image, name=PARTNER_IMAGE_LAYER, sample_id=p.partner, workspace=str(ws.root), beside=p.sample_id
        )
        cm = ws.classmap
        ids = mask_to_labels(loaded.mask, cm)
        scale = (1.0, *image.spacing) if cm.task == "multilabel" else tuple(image.spacing)
        ids, label_kwargs, _ = labels_layer(
            ids,
            name=PARTNER_LABELS_LAYER,
            source=ws.root,
            scale=scale,
            classmap=cm,
            sample_id=p.partner,
            workspace=str(ws.root),
            beside=p.sample_id,
        )
        layers = self.viewer.layers
        with label_stays_active(self.viewer):  # napari selects each layer it adds: the brush stays on the label
            for name, layer_data, layer_kwargs, ndim, add in (
                (PARTNER_IMAGE_LAYER, data, kwargs, image.spatial_ndim, self.viewer.add_image),
                (PARTNER_LABELS_LAYER, ids, label_kwargs, np.ndim(ids), self.viewer.add_labels),
            ):
                if name in layers:
                    # reused, never removed: removing a Labels layer while napari redrew the sample's new
                    # layers crashed the canvas in the real window ("Could not find texture with id ...")
                    layer = layers[name]
                    layer.data = layer_data
                    layer.metadata = layer_kwargs.get("metadata", {})
                    layer.translate = _shifted(ndim, dx)
                    if add is self.viewer.add_image:
                        layer.reset_contrast_limits()
                    layer.visible = True
                else:
                    layer = add(layer_data, translate=_shifted(ndim, dx), **layer_kwargs)
                lock_layer(layer)
            # beneath the sample's own layers: they never overlap, and the sample's stay on top of the list
            layers.move(layers.index(layers[PARTNER_IMAGE_LAYER]), 0)
            layers.move(layers.index(layers[PARTNER_LABELS_LAYER]), 1)
        self._shown = shown
        self.viewer.reset_view()  # both pictures in view

    def _clear(self) -> None:
        self.partner = None
        self.note.setText("")
        self.hide()
        if self._remove_layers():
            self.viewer.reset_view()  # the sample alone fills the view again

    def _remove_layers(self) -> bool:
        """Hide the partner's layers (kept for the next pair: see ``_put``); whether any was showing."""
        self._shown = None
        layers = self.viewer.layers
        ours = [layers[name] for name in PARTNER_LAYERS if name in layers and layers[name].visible]
        for layer in ours:
            layer.visible = False
        return bool(ours)


def _right_of(layer: Any) -> float:
    """Where, along the last world axis, a picture placed right of ``layer`` starts: its width plus the gap."""
    shape = np.shape(layer.data[0] if layer.multiscale else layer.data)
    width = shape[-2] if layer.rgb else shape[-1]
    step = float(layer.scale[-1])
    return float(layer.translate[-1]) + step * (width + max(MIN_GAP, GAP * width))


def _shifted(ndim: int, dx: float) -> tuple[float, ...]:
    return (0.0,) * (ndim - 1) + (dx,)
