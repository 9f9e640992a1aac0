"""The review queue's words: why a sample stands where it does, as one reason line and as signals.

``QueueItem.reason`` is one line (score, then findings); ``QueueItem.signals`` are the same facts as short
separate phrases, most telling first: the QC findings that moved the sample up (errors, then warnings),
then the signals' verdicts, the one that ranks the sample worse first: the model's and the outline's
always, every other signal's where it put the sample in the dataset's worst fifth (its ``suspect_words``);
each, when a calibration (:mod:`medseg.qc.reliability`) measured it, with its reliability on this dataset
("a signal that finds 91 % of planted errors here": the share of planted errors it put in its worst fifth;
one that did not separate them is said to count nothing); then the findings that did not move it (info,
image quality).
"""

from __future__ import annotations

from collections.abc import Callable

from medseg.qc.checks_base import plural
from medseg.qc.findings import Finding
from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
from medseg.qc.outline_fit import advice_phrase, standing_phrase
from medseg.qc.queue_index import PAIR_CHECK
from medseg.qc.volume_slices import slice_words

WORST_SHARE = 0.2  # a signal is named when it put the sample in the dataset's worst fifth


def reliability_words(method: str | None, calibration) -> str:
    """E.g. " (a signal that finds 91 % of planted errors here)", or why it counts nothing; "" if unmeasured."""
    if calibration is None or method is None or method not in calibration.auroc:
        return ""
    found = calibration.found.get(method, 0.0)
    if calibration.weights.get(method, 0.0) <= 0.0:
        return (
            f" (not counted: it told planted errors from the labels here at AUROC {calibration.auroc[method]:.2f}, "
            f"finding {found:.0%})"
        )
    return f" (a signal that finds {found:.0%} of planted errors here)"


def signal_verdicts(standings: dict, calibration=None) -> list[tuple[float, str]]:
    """(standing, phrase) of each model-free signal that put the sample in the dataset's worst fifth."""
    from medseg.qc.signals import SIGNALS

    out = []
    for method, v in standings.items():
        signal = SIGNALS.get(method)
        if signal is None or v is None or v > WORST_SHARE:
            continue
        if calibration is not None and calibration.weights.get(method, 0.0) <= 0.0:
            continue  # a signal that counts nothing did not put it there
        out.append((float(v), signal.suspect_words + reliability_words(method, calibration)))
    return out


def reason_line(
    score: float | None,
    details: dict,
    method: str | None,
    found: tuple[Finding, ...],
    outline: dict | None = None,
    stale: tuple[int, int] | None = None,
) -> str:
    parts = []
    if score is not None:
        parts.append(score_phrase(score, details, method))
        if outline:
            parts.append(outline_phrase(outline))
    elif stale:
        parts.append(
            f"{method} scored an earlier label (revision {stale[0]}; now {stale[1]}): not ranked until scored again"
        )
    elif method:
        parts.append(f"no {method} score")
    else:
        parts.append("not scored by a model yet")
    if found:
        shown = ", ".join(finding_phrase(f) for f in found[:4])
        more = f" and {len(found) - 4} more" if len(found) > 4 else ""
        parts.append(f"{len(found)} QC finding{'s' if len(found) != 1 else ''}: {shown}{more}")
    else:
        parts.append("no QC findings")
    return "; ".join(parts)


def outline_phrase(d: dict) -> str:
    """E.g. "outline 5th worst of the 612 judged: moved 6 px up it would follow the image's edges 35% better"."""
    advice = advice_phrase(d)
    return f"{standing_phrase(d)}: {advice}" if advice else standing_phrase(d)


def score_phrase(score: float, details: dict, method: str | None) -> str:
    """E.g. "Dice 0.31 between out-of-fold prediction and label (label quality 0.28)"."""
    if method == OUTLINE_METHOD and details.get("quality") is not None:
        return outline_phrase(details)
    who = "out-of-fold prediction" if details.get("out_of_fold") else "prediction"
    if details.get("biased"):
        who = "prediction of a model that may have seen this label"
    if details.get("score_field") == "fit":  # medseg.qc.fit_all: it learnt every label on purpose
        who = "the prediction of the model fitted to every label"
    if details.get("worst_slices"):  # a volume: its score is its worst slices'
        k = details.get("worst_k") or len(details["worst_slices"])
        dice = f"Dice {details['dice']:.2f}" if details.get("dice") is not None else "agreement"
        return (
            f"{dice} between {who} and label on its {plural(k, 'worst slice')} of {details.get('n_judged', '?')} "
            f"(label quality {score:.2f})"
        )
    if details.get("dice") is not None:
        text = f"Dice {details['dice']:.2f} between {who} and label"
        if details.get("hd95") is not None:
            text += f", HD95 {details['hd95']:.1f} px"
        return f"{text} (label quality {score:.2f})"
    return f"label quality {score:.2f} ({method})"


_PHRASES = {
    "mask_values": lambda f: (
        f"grey noise ({f.value:g} levels)" if f.severity != "error" else "mask ids outside the class map"
    ),
    "specks": lambda f: f"{f.value:g} speck{'s' if f.value != 1 else ''}" if f.value else "specks",
    "holes": lambda f: f"{f.value:g} hole{'s' if f.value != 1 else ''}" if f.value else "holes",
    "empty_mask": lambda f: "empty mask",
    "full_mask": lambda f: "all-foreground mask",
    "object_count": lambda f: (
        (
            f"{f.value:g} object{'s' if f.value != 1 else ''}, unlike the rest of its group"
            if f.value is not None
            else "object count unlike the rest of its group"
        )
        + (
            f", like neighbouring sample {f.details['same_scene_as']} of the same scene"
            if f.details.get("same_scene_as")
            else ""
        )
    ),
    "border_only": lambda f: "objects only at the border",
    "duplicate_mask_disagreement": lambda f: (
        f"duplicate image's mask disagrees (IoU {f.value:.2f})"
        if f.value is not None
        else "duplicate image's mask disagrees"
    ),
    "slice_gap": lambda f: f"class missing on {slice_words(f.details.get('slices') or [])}",
    "stray_island": lambda f: (
        f"{plural(int(f.value), 'stray island')}" if f.severity != "info" else "a class of a few voxels"
    ),
    "slice_jump": lambda f: f"{slice_words(f.details.get('slices') or [])} unlike both neighbours",
    "grid_mismatch": lambda f: "label off the image's voxel grid",
    "missing_pair": lambda f: "missing image or mask",
    "size_mismatch": lambda f: "image/mask size mismatch",
    "too_dark": lambda f: "image too dark",
    "over_exposed": lambda f: "image over-exposed",
    "blurred": lambda f: "image blurred",
}


def finding_phrase(f: Finding) -> str:
    """A few plain words for one finding ("grey noise (42 levels)", "3 specks")."""
    phrase = _PHRASES.get(f.check)
    if phrase is not None:
        try:
            return phrase(f)
        except (TypeError, ValueError):  # a finding stored without a value
            pass
    return f.check.replace("_", " ")


def pair_partners(f: Finding) -> list[str]:
    """The samples a disagreeing duplicate's error names (its partners in the pair), [] otherwise."""
    if f.check != PAIR_CHECK or f.severity != "error":
        return []
    return [str(o["id"]) for o in f.details.get("others") or () if o.get("severity", "error") == "error"]


def _finding_signal(f: Finding) -> str:
    text = f"QC {f.severity}: {finding_phrase(f)}"
    partners = pair_partners(f)
    odd_of, wrong = f.details.get("odd_one_out_of"), f.details.get("likely_wrong")
    if partners and odd_of:  # medseg.qc.duplicates_odd: copies that tell which label is wrong
        text += (
            f" with {_samples(odd_of)} (copies of the same image that do not disagree with one "
            "another): the odd one out, most likely the wrong label"
        )
    elif partners and f.details.get("trusted_partner"):  # medseg.qc.queue_state.told_pairs
        text += (
            f" with {_samples(partners)} (the same image): the other signals trust that label more, so this one "
            "is the likely error"
        )
    elif partners:
        text += f" with {_samples(partners)} (the same image): one of them is wrong, queued together"
    elif f.check == PAIR_CHECK and f.details.get("trusted_over"):  # medseg.qc.queue_state.told_pairs
        text += (
            f" with {_samples(f.details['trusted_over'])} (the same image): the other signals trust this label "
            "more, so that label is the likely error, not this one"
        )
    elif f.check == PAIR_CHECK and wrong:
        text += (
            f" with {_samples(wrong)} (the same image), the odd one out among the image's copies: "
            "that label is the likely error, not this one"
            if len(wrong) == 1
            else f" with {_samples(wrong)} (the same image), the odd ones out among the image's copies: "
            "those labels are the likely errors, not this one"
        )
    return text


def _samples(ids: list[str]) -> str:
    """ "sample 7", "samples 7, 9, 12" (at most three named, "..." after)."""
    more = ", ..." if len(ids) > 3 else ""
    return f"sample{'s' if len(ids) > 1 else ''} {', '.join(ids[:3])}{more}"


def model_signal(score: float, details: dict, method: str | None) -> str:
    """E.g. "out-of-fold prediction disagrees with the label: Dice 0.31"."""
    if method == OUTLINE_METHOD:
        return outline_phrase(details) if details.get("quality") is not None else f"outline fit {score:.2f}"
    who = "out-of-fold prediction" if details.get("out_of_fold") else "prediction"
    if details.get("biased"):
        who = "prediction (of a model that may have seen this label)"
    dice = details.get("dice")
    if dice is None:
        return f"label quality {score:.2f} ({method})"
    verdict = "disagrees with" if dice < 0.7 else "partly agrees with" if dice < 0.9 else "agrees with"
    if details.get("score_field") == "fit":  # medseg.qc.fit_all: it learnt every label on purpose
        who = "the model fitted to every label"
        verdict = "could not fit" if dice < 0.7 else "only partly fits" if dice < 0.9 else "fits"
    where = (
        f" on its {plural(details.get('worst_k') or len(details['worst_slices']), 'worst slice')}"
        if (details.get("worst_slices"))
        else ""
    )
    return f"{who} {verdict} the label{where}: Dice {dice:.2f}"


def signals(
    found: tuple[Finding, ...],
    penalty: Callable[[Finding], float],
    score: float | None,
    details: dict,
    method: str | None,
    *,
    outline: dict | None = None,
    model_percentile: float | None = None,
    stale: tuple[int, int] | None = None,
    verdicts: list[tuple[float, str]] | None = None,
    reliability=None,
) -> tuple[str, ...]:
    """What put a sample where it is, plainly and most telling first (module doc).

    ``penalty``: the queue's penalty of a finding (those with one moved the sample up); ``outline``: its
    outline-fit details when they count in its standing; ``model_percentile``: its model score's rank among
    the scored (0 = worst), which decides whether the model or the outline is named first; ``verdicts``:
    (standing, phrase) of the other signals (:func:`signal_verdicts`); ``reliability``: the queue's
    :class:`~medseg.qc.reliability.Calibration`, whose measures each verdict quotes."""
    moved = sorted((f for f in found if penalty(f) > 0), key=lambda f: -penalty(f))
    out = [_finding_signal(f) for f in moved]
    verdicts = list(verdicts or ())
    if score is not None:
        verdicts.append(
            (
                model_percentile if model_percentile is not None else 1.0,
                model_signal(score, details, method) + reliability_words(method, reliability),
            )
        )
    if outline:
        fit = outline_phrase(outline) + reliability_words(OUTLINE_METHOD, reliability)
        verdicts.append((float(outline.get("percentile", 1.0)), fit))
    if score is not None:
        pass  # its verdict is in
    elif stale:
        verdicts.append(
            (0.0, f"{method} scored an earlier label (revision {stale[0]}; now {stale[1]}): not ranked by it")
        )
    elif method:
        verdicts.append((0.0, f"no {method} score yet"))
    else:
        verdicts.append((0.0, "not scored by a model yet"))
    out += [text for _, text in sorted(verdicts, key=lambda v: v[0])]
    out += [_finding_signal(f) for f in found if penalty(f) <= 0]
    if not found:
        out.append("no QC findings")
    return tuple(out)
