"""The summary of an evaluation as text: one row per class (means and medians), then the worst samples."""

from __future__ import annotations

from typing import Any

from medseg.evaluate.result import EvaluationResult


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pair(entry: dict[str, Any], digits: int = 3) -> str:
    """'mean / median' of one metric, with the undefined count when there are any."""
    text = f"{_f(entry['mean'], digits)} / {_f(entry['median'], digits)}"
    return text + (f" ({entry['undefined']} undef.)" if entry["undefined"] else "")


def summary_lines(result: EvaluationResult, worst: int = 3) -> list[str]:
    """The table ``medseg evaluate`` prints: per class Dice, IoU, HD95, ASSD (mean / median), object
    precision and recall (pooled), then each class's ``worst`` samples by Dice with their ids. Classes
    neither labelled nor predicted in any sample are counted, not listed (they score 1 by the empty rule)."""
    meta, summary = result.meta, result.summary
    unit = meta.get("distance_unit", "px")
    shown = {c: v for c, v in summary.items() if v["labelled_samples"] or v["predicted_samples"]}
    header = [
        "class",
        "samples",
        "Dice mean / median",
        "IoU mean / median",
        f"HD95 ({unit})",
        f"ASSD ({unit})",
        "obj. P",
        "obj. R",
    ]
    rows = [
        [
            name,
            f"{v['labelled_samples']}/{v['samples']}",
            _pair(v["dice"]),
            _pair(v["iou"]),
            _pair(v["hd95"], 2),
            _pair(v["assd"], 2),
            _f(v["objects"]["precision"], 2),
            _f(v["objects"]["recall"], 2),
        ]
        for name, v in shown.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(shown) > 1:
        lines.append(f"mean over classes: Dice {_f(result.mean('dice'))}, IoU {_f(result.mean('iou'))}")
    hidden = len(summary) - len(shown)
    if hidden:
        lines.append(f"{hidden} class(es) neither labelled nor predicted in any sample are not listed")
    if worst > 0:
        lines.append("worst samples by Dice (samples: labelled / evaluated):")
        for name, v in shown.items():
            items = ", ".join(f"{sid} {value:.3f}" for sid, value in v["dice"]["worst"][:worst])
            lines.append(f"  {name}: {items}")
    return lines
