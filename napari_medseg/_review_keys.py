"""The Review widget's keys: verdicts and the correction on the viewer's keymap, and the list the panel shows.

Accept, save correction and exclude take Shift with a letter: napari 0.9's
Labels layer keymap (which napari consults before the viewer's) binds the
bare letters a reviewer uses while painting (e erase, p paint, f fill, l pick,
x swap labels, b preserve labels, m new label, z pan) and Ctrl+Z / Ctrl+Shift+Z,
but no Shift+letter; nor does the viewer's (Shift+V, Shift+arrows only) or the
Image layer's. Shift+D ("duplicate") opens the disagreeing duplicate shown
beside the sample (:mod:`napari_medseg._review_partner`). The queue's
'.' / ',' (:mod:`napari_medseg._review_queue`), the flagged slices' 'j' / 'k'
(:mod:`napari_medseg._review_slices`) and the
prediction toggle (:mod:`napari_medseg._layer_roles`) are bound by their
modules; :func:`keys_text` lists them all.
"""

from __future__ import annotations

import weakref
from typing import Any

from napari_medseg._layer_roles import TOGGLE_PREDICTION_KEY
from napari_medseg._review_queue import NEXT_KEY, PREVIOUS_KEY
from napari_medseg._review_slices import NEXT_SLICE_KEY, PREVIOUS_SLICE_KEY

ACCEPT_KEY, SAVE_KEY, EXCLUDE_KEY = "Shift-A", "Shift-S", "Shift-X"
OPEN_PARTNER_KEY = "Shift-D"
# (key, what it does) in the order the panel lists them
KEYS = (
    (f"{NEXT_KEY} {PREVIOUS_KEY}", "next / previous sample"),
    (ACCEPT_KEY, "accept"),
    (SAVE_KEY, "save correction"),
    (EXCLUDE_KEY, "exclude"),
    (OPEN_PARTNER_KEY, "open the duplicate beside"),
    (TOGGLE_PREDICTION_KEY, "prediction on / off"),
    (f"{NEXT_SLICE_KEY} {PREVIOUS_SLICE_KEY}", "next / previous flagged slice"),
)


def shown_key(key: str) -> str:
    """A key as the panel writes it ("Shift-A" -> "Shift+A", "h" -> "H"; '.' and ',' stay)."""
    return " ".join(k.replace("-", "+") if "-" in k else k.upper() for k in key.split())


def keys_text() -> str:
    """The one-paragraph list of the Review keys the panel shows."""
    return "Keys: " + " · ".join(f"{shown_key(k)} {what}" for k, what in KEYS)


def bind_review_keys(viewer: Any, widget: Any) -> None:
    """Bind accept, save correction, exclude and opening the duplicate beside on ``viewer`` to ``widget``'s
    actions (held weakly: a key pressed after the dock is gone does nothing); unbound when the widget is destroyed."""
    ref = weakref.ref(widget)

    def calling(name: str):
        def bound(_viewer: Any) -> None:
            w = ref()
            if w is not None:
                getattr(w, name)()

        bound.__name__ = f"medseg_review_{name}"
        return bound

    keys = {
        ACCEPT_KEY: "accept",
        SAVE_KEY: "submit_correction",
        EXCLUDE_KEY: "exclude",
        OPEN_PARTNER_KEY: "open_partner",
    }
    for key, name in keys.items():
        viewer.bind_key(key, calling(name), overwrite=True)

    def unbind(*_: Any) -> None:
        for key in keys:
            viewer.bind_key(key, None)

    widget.destroyed.connect(unbind)
