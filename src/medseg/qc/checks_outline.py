"""``outline_fit``: labelled outlines that do not follow the image's edges (see :mod:`medseg.qc.outline_fit`).

Per sample, the worst object's measures are kept during the decoding pass;
once the whole dataset is measured, every judged sample gets the score
method ``outline-fit`` (its percentile rank in the dataset, 0 = worst), which
the review queue folds in, and samples whose worst outline has a better
alternative by more than ``1 / ratio_below - 1`` get an info finding that says
which way the outline should go and offers that correction as the
``outline_correction`` fix (applied only when a person asks, in Review). Info, not a warning: the score already moves
the sample up the queue, and one measure should not count twice.
"""

from __future__ import annotations

from medseg.qc.checks_base import Check, SampleView
from medseg.qc.findings import Finding
from medseg.qc.outline_fit import METHOD, advice_phrase, dataset_scores, outline_fit, standing_phrase


def outline_measure(v: SampleView) -> dict | None:
    """The worst object's outline measures (``OutlineFit.summary``), None when nothing can be judged."""
    from medseg.qc.checks_images import field_of_view, grey

    if v.image is None or len(v.spatial_shape) != 2:
        return None
    field = field_of_view(v)
    if field is not None and not field.all() and grey(v)[0][~field].std() > 0.03:
        # dark and textured: a dark scene (an object on a black background), not a device's flat frame,
        # and its edges are the picture's own
        field = None
    summary = outline_fit(
        v.image, v.class_masks(), channels_last=v.rgb or v.image.ndim == 3, field=field, components=v.components
    ).summary()
    if summary is not None and v.revision is not None:
        summary["revision"] = int(v.revision)  # the queue drops the score once the label changes
    return summary


def decide_outline_fit(table: dict, ctx, p: dict) -> list[Finding]:
    _, details = outline_scores(table, ctx)
    out = []
    for sid in ctx.sample_ids:
        d = details.get(sid)
        if d is None or d["best_ratio"] >= p["ratio_below"]:
            continue
        y, x = d["centre"]
        advice = advice_phrase(d).replace("the image's edges", "them")
        out.append(
            Finding(
                sid,
                "outline_fit",
                "info",
                f"the outline of the class {d['class_id']} object at row {y}, column {x} does not follow the "
                f"image's edges: {advice} ({standing_phrase(d)})",
                value=d["best_ratio"],
                path=ctx.paths.get(sid),
                fix="outline_correction",
                details={
                    **d,
                    "fix_params": {"class_id": d["class_id"], "centre": d["centre"], "correction": d["correction"]},
                },
            )
        )
    return out


def outline_scores(table: dict, ctx) -> tuple[dict[str, float], dict[str, dict]]:
    """The dataset's outline-fit scores, ranked once for both the findings and the stored scores."""
    if "outline-scores" not in ctx.cache:
        ctx.cache["outline-scores"] = dataset_scores(table.get("outline", {}))
    return ctx.cache["outline-scores"]


CHECKS = (
    Check(
        "outline_fit",
        "dataset",
        "label outlines that do not follow the image's edges (a score for the "
        "review queue, and a note where a moved, grown or shrunk outline fits much better)",
        {"ratio_below": 0.6},
        needs=("outline",),
        decide=decide_outline_fit,
        scores=(METHOD, outline_scores),
    ),
)
