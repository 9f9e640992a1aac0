"""What an evaluation reads: the data (a dataset folder or a workspace's current labels), the checkpoints'
classes checked against it, and the samples of the split asked for.

Splits come from the checkpoints: ``medseg train`` records the ids it
trained on (``provenance["data"]["ids"]``) and validated on
(``["val_ids"]``). ``"train"`` and ``"val"`` are those samples; ``"test"``
is every sample of the data that no member of the ensemble trained or
validated on (held out from the run entirely). For an ensemble, ``"val"``
keeps the samples every member validated on and none trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.errors import DatasetError, EvaluationError
from medseg.training.workspace_source import is_workspace, open_workspace_dataset  # torch side, as evaluation is

SPLITS = ("train", "val", "test")


def open_source(source: Any, statuses: Sequence[str] | None = None, layout: str | None = None) -> Any:
    """A dataset-like object (``samples``, ``classmap``, ``root``): ``source`` itself when it is one, the
    workspace's current labels (pinned now) for a workspace folder, else the dataset folder indexed."""
    if hasattr(source, "samples") and hasattr(source, "classmap"):
        return source
    path = Path(source)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset or workspace folder")
    if is_workspace(path):
        return open_workspace_dataset(path, statuses)
    if statuses:
        raise EvaluationError(f"{path}: review statuses are a workspace's; this is a dataset folder")
    from medseg.datasets import open_dataset

    try:
        return open_dataset(path, layout)
    except ValueError as e:
        raise DatasetError(f"{path}: {e}") from e


def describe_classes(cm: Any) -> str:
    return f"{cm.task} {dict(zip(cm.ids, cm.names))}"


def check_classes(checkpoints: Sequence[Any], dataset: Any) -> None:
    """EvaluationError naming the checkpoint whose task, class ids or names are not the data's."""
    theirs = (dataset.classmap.task, tuple(dataset.classmap.ids), tuple(dataset.classmap.names))
    for ck in checkpoints:
        cm = ck.classmap
        if (cm.task, tuple(cm.ids), tuple(cm.names)) != theirs:
            raise EvaluationError(
                f"{getattr(ck, 'path', 'the checkpoint')} predicts {describe_classes(cm)} but {dataset.root} has "
                f"{describe_classes(dataset.classmap)}; evaluate a checkpoint trained on these classes"
            )


def _recorded(ck: Any, key: str, split: str) -> set[str]:
    data = (getattr(ck, "provenance", None) or {}).get("data") or {}
    if key not in data or data[key] is None:
        raise EvaluationError(
            f"{getattr(ck, 'path', 'the checkpoint')} records no {split} split (it was not written by medseg "
            "train); evaluate without --split, or name the samples"
        )
    return {str(i) for i in data[key]}


def split_ids(checkpoints: Sequence[Any], split: str) -> set[str]:
    """The ids of ``split`` for "train" and "val"; for "test" the ids to leave out (every id any member
    trained or validated on): see the module docstring and :func:`choose_samples`."""
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    trained = set().union(*(_recorded(ck, "ids", split) for ck in checkpoints))
    if split == "train":
        return trained
    validated = [_recorded(ck, "val_ids", split) for ck in checkpoints]
    if split == "val":
        return set.intersection(*validated) - trained
    return trained.union(*validated)


def choose_samples(
    dataset: Any, checkpoints: Sequence[Any], sample_ids: Sequence[str] | None = None, split: str | None = None
) -> tuple[list[Any], list[str]]:
    """(samples to evaluate, notes for the user). ``sample_ids`` and ``split`` may be combined (both apply)."""
    samples, notes = list(dataset.samples), []
    if sample_ids is not None:
        known = {s.id: s for s in samples}
        missing = [i for i in sample_ids if str(i) not in known]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise EvaluationError(f"{len(missing)} sample id(s) not in {dataset.root}: {shown}")
        samples = [known[str(i)] for i in dict.fromkeys(map(str, sample_ids))]
    if split is not None:
        ids = split_ids(checkpoints, split)
        if split == "test":
            samples = [s for s in samples if s.id not in ids]
        else:
            absent = len(ids - {s.id for s in dataset.samples})
            if absent:
                notes.append(f"{absent} sample(s) of the run's {split} split are not in {dataset.root}")
            samples = [s for s in samples if s.id in ids]
    if not samples:
        why = f" in the {split} split" if split else ""
        if split == "test":
            why = " held out from the run (every sample was trained or validated on)"
        raise EvaluationError(f"{dataset.root}: no sample to evaluate{why}")
    problems = getattr(dataset, "problems", None) or []
    if problems:
        notes.append(
            f"{len(problems)} sample(s) of {dataset.root} left out as unreadable or unpaired (medseg index lists them)"
        )
    return samples, notes
