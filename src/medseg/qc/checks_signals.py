"""The model-free label-quality signals (:mod:`medseg.qc.signals`) and the dataset checks that store them.

Importing this module registers every signal in ``SIGNALS``:

* ``outline-fit``: the outline follows the image's edges (:mod:`medseg.qc.outline_fit`; stored by the
  ``outline_fit`` check of :mod:`medseg.qc.checks_outline`, whose scores and findings are unchanged);
* ``neighbour-fit``: agreement with the aligned neighbouring frames' masks (:mod:`medseg.qc.signal_neighbours`);
* ``region-contrast``: the labelled region differs from its surroundings (:mod:`medseg.qc.signal_region`);
* ``shape-prior`` and ``empty-mask``: shapes like the dataset's own, empty masks where they are rare
  (:mod:`medseg.qc.signal_shape`).

Each signal but ``outline-fit`` has a dataset-stage check of its own that finds nothing and stores the
signal's scores (``signal_scores``: percentile in the dataset, 0 = most suspect, with the raw value and the
label revision judged), so that running QC gives every score the queue weighs, and choosing checks by name
(``--checks``) can leave one out.
"""

from __future__ import annotations

from medseg.qc.checks_base import Check
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.signal_neighbours import METHOD as NEIGHBOUR_METHOD
from medseg.qc.signal_neighbours import neighbour_fit
from medseg.qc.signal_region import METHOD as REGION_METHOD
from medseg.qc.signal_region import region_contrast
from medseg.qc.signal_shape import EMPTY_METHOD, SHAPE_METHOD, empty_mask, shape_prior
from medseg.qc.signals import Signal, own_measure, register, signal_scores


def outline_quality(table: dict, ctx, sid: str, own: dict | None) -> float | None:
    """The worst object's outline quality (``OutlineFit.summary()["quality"]``), None when not judged."""
    summary = own_measure(table, sid, own, "outline")
    return None if not summary else summary.get("quality")


OUTLINE = register(
    Signal(
        OUTLINE_METHOD,
        "how well the outline follows the image's edges",
        "the outline does not follow the image's edges",
        ("outline",),
        outline_quality,
    )
)
NEIGHBOUR = register(
    Signal(
        NEIGHBOUR_METHOD,
        "agreement with the neighbouring frames' masks, once aligned",
        "the mask disagrees with the neighbouring frames' masks",
        ("thumbs",),
        neighbour_fit,
    )
)
REGION = register(
    Signal(
        REGION_METHOD,
        "how much the labelled region differs from its surroundings",
        "the labelled region looks like its surroundings",
        ("contrast",),
        region_contrast,
    )
)
SHAPE = register(
    Signal(
        SHAPE_METHOD,
        "how typical the mask's shape is for this dataset",
        "the mask's shape is unusual for this dataset",
        ("shape",),
        shape_prior,
    )
)
EMPTY = register(
    Signal(
        EMPTY_METHOD,
        "an empty mask where nearly every mask has an object",
        "the mask is empty where nearly every mask has an object",
        ("foreground",),
        empty_mask,
    )
)


def _scores_of(signal: Signal):
    def make(table: dict, ctx) -> tuple[dict, dict]:
        return signal_scores(signal, table, ctx)

    return make


def _no_findings(table: dict, ctx, p: dict) -> list:
    return []  # a score only: the queue weighs it by its measured reliability


def _check(name: str, signal: Signal, summary: str) -> Check:
    return Check(
        name,
        "dataset",
        summary,
        needs=(*signal.needs, "revision"),
        decide=_no_findings,
        scores=(signal.method, _scores_of(signal)),
    )


CHECKS = (
    _check("neighbour_fit", NEIGHBOUR, "masks disagreeing with the aligned neighbouring frames' masks (a score)"),
    _check("region_contrast", REGION, "labelled regions that look like their surroundings (a score)"),
    _check("shape_prior", SHAPE, "mask shapes unusual for the dataset (a score)"),
    _check("empty_mask_score", EMPTY, "empty masks scored by how rare empty masks are in the dataset (a score)"),
)
