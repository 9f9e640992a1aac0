"""Training runs side by side: what each run folder says about itself, as a table.

A run folder (what ``medseg train``, the Fine-tune dock and ``medseg rank``'s folds write) is read
without torch: ``metrics.csv`` (:mod:`medseg.runs.files`), ``config.yaml``, the ``config.json`` of its
``best.medseg`` (else ``last.medseg``) checkpoint for the model, the data it trained on and the
validation metrics of its best epoch, ``evaluation/summary.json`` (the final evaluation of the best
checkpoint on the validation split) and the last line of ``events.jsonl`` for how the run ended.

A damaged record file (``metrics.csv`` cut off, ``evaluation/summary.json`` or ``config.yaml`` not
readable) is noted in the run's ``damaged`` and the rest of the run is read: its whole metrics rows, its
checkpoint, which stays usable. Only a damaged checkpoint ``config.json`` makes the run unreadable
(RunFolderError): its model cannot be used.

"Best" is the best checkpoint's epoch (by the run's ``monitor``): the per-class values are those of that
one model, not each class's own maximum over epochs, so a row describes a model one can use.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import RunFolderError
from medseg.runs.files import (
    BEST,
    CHECKPOINT_CONFIG,
    CONFIG_YAML,
    EVALUATION_DIR,
    EVALUATION_SUMMARY,
    LAST,
    METRICS_CSV,
    read_metrics,
)

EVENTS = "events.jsonl"
ENDINGS = {"result": "finished", "cancelled": "cancelled", "error": "failed"}  # medseg.jobs event kinds


@dataclass
class RunSummary:
    """One run folder, as the table shows it."""

    name: str
    path: Path
    model: str = "?"
    data: str = "?"  # the dataset or workspace and the label revision it trained on
    n_train: int | None = None
    n_val: int | None = None
    epochs_done: int = 0
    epochs_planned: int | None = None
    monitor: str | None = None
    best_epoch: int | None = None  # 1-based
    best: dict[str, float | None] = field(default_factory=dict)  # "dice/<class>", "dice", ... at the best epoch
    evaluation: dict[str, Any] | None = None  # evaluation/summary.json
    seconds: float = 0.0
    state: str = "?"  # finished, cancelled, failed, unfinished (running, or killed: no end in events.jsonl)
    checkpoint: Path | None = None  # the model to use: best, else last
    rows: list[dict] = field(default_factory=list)
    # the record files that cannot be read (all or part), by part: "metrics", "evaluation", "config"; the
    # message names the file, what is wrong and what is still read
    damaged: dict[str, str] = field(default_factory=dict)

    def classes(self) -> list[str]:
        return [k[5:] for k in self.best if k.startswith("dice/")]

    def best_dice(self, cls: str | None = None) -> float | None:
        """Validation Dice of the best epoch: of ``cls``, or the mean over classes."""
        return self.best.get("dice" if cls is None else f"dice/{cls}")


def is_run_folder(path: Path) -> bool:
    # other jobs log to an events.jsonl too (a folder of them is no run); the trainer writes its config.yaml
    # before its first event, so the pair marks a training run that has not finished an epoch yet
    if not path.is_dir():
        return False
    if any((path / n).exists() for n in (METRICS_CSV, BEST, LAST)):
        return True
    return (path / EVENTS).is_file() and (path / CONFIG_YAML).is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Each path that is a run folder, else the run folders directly inside it (sorted by name);
    RunFolderError names a path that is missing or holds no run."""
    found: list[Path] = []
    for given in paths:
        p = Path(given)
        if not p.is_dir():
            raise RunFolderError(f"{p}: {'not a folder' if p.exists() else 'no such folder'}")
        if is_run_folder(p):
            runs = [p]
        else:
            runs = sorted((c for c in p.iterdir() if is_run_folder(c)), key=lambda c: c.name)
        if not runs:
            raise RunFolderError(
                f"{p}: holds no training run (a run folder has {METRICS_CSV}, {BEST}, {LAST} or {CONFIG_YAML} with "
                f"{EVENTS}; "
                "give a run folder or the folder of run folders)"
            )
        found += [r for r in runs if r.resolve() not in {f.resolve() for f in found}]
    return found


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(d, dict):
        raise RunFolderError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunFolderError(f"{path}: not readable YAML ({e})") from None
    return d if isinstance(d, dict) else {}


def _last_event_kind(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 65536))  # the end of a long log is enough for its last event
        lines = f.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        try:
            return json.loads(line).get("event")
        except (json.JSONDecodeError, AttributeError):
            continue
    return None


def data_label(data: dict[str, Any]) -> str:
    """What a checkpoint's data provenance says the run trained on, in a few words: the workspace with
    the newest label revision and a digest of the revisions used, or the folder's source labels."""
    root = Path(str(data.get("root") or "?")).name
    labels = data.get("labels") or {}
    if labels.get("kind") == "workspace":
        return f"{root} r{labels.get('max_revision')} {str(labels.get('revisions_sha256', ''))[:8]}".rstrip()
    digest = str(data.get("hash", "")).removeprefix("sha256:")[:8]
    return f"{root} (source labels{', ' + digest if digest else ''})"


def _model_label(ckpt: dict[str, Any], config: dict[str, Any]) -> str:
    described = ((ckpt.get("provenance") or {}).get("training") or {}).get("model")
    if described:
        return str(described)
    spec = ckpt.get("spec") or config.get("model") or {}
    arch, encoder = spec.get("arch", "?"), spec.get("encoder")
    return f"{arch}({encoder})" if encoder else str(arch)


def _saved_epochs(ckpt_dir: Path) -> int:
    """The epochs done when ``ckpt_dir`` was saved (0 when it cannot be read)."""
    try:
        epoch = (((_json(ckpt_dir / CHECKPOINT_CONFIG) or {}).get("provenance") or {}).get("training") or {})["epoch"]
        return int(epoch) + 1
    except (RunFolderError, KeyError, TypeError, ValueError):
        return 0


def read_run(path: str | Path) -> RunSummary:
    """The :class:`RunSummary` of one run folder: RunFolderError names a damaged checkpoint config; a
    damaged record file is in its ``damaged`` (see the module docstring)."""
    p = Path(path)
    run = RunSummary(name=p.name, path=p)
    if (p / METRICS_CSV).is_file():
        try:
            run.rows = read_metrics(p)
        except RunFolderError as e:
            run.rows = getattr(e, "rows", [])  # MetricsDamaged: its whole rows
            run.damaged["metrics"] = str(e)
    try:
        config = _yaml(p / CONFIG_YAML)
    except RunFolderError as e:
        config = {}
        run.damaged["config"] = f"{e}; the checkpoint's copy of the config is read"
    ckpt_dir = next((p / n for n in (BEST, LAST) if (p / n / CHECKPOINT_CONFIG).is_file()), None)
    ckpt = _json(ckpt_dir / CHECKPOINT_CONFIG) if ckpt_dir else None
    ckpt = ckpt or {}
    prov = ckpt.get("provenance") or {}
    config = config or prov.get("config") or {}
    run.checkpoint = ckpt_dir
    run.model = _model_label(ckpt, config)
    data = prov.get("data") or {}
    if data:
        run.data = data_label(data)
        run.n_train, run.n_val = len(data.get("ids") or []), len(data.get("val_ids") or [])
    elif (config.get("data") or {}).get("root"):
        run.data = Path(config["data"]["root"]).name
    run.epochs_planned = config.get("epochs")
    run.monitor = config.get("monitor")
    ckpt_epoch = (prov.get("training") or {}).get("epoch")  # 0-based: the epoch it was saved in
    ckpt_epochs = int(ckpt_epoch) + 1 if isinstance(ckpt_epoch, (int, float)) else 0
    run.epochs_done = len(run.rows) or ckpt_epochs
    if "metrics" in run.damaged:  # its rows are missing epochs: the last checkpoint knows how many were done
        run.epochs_done = max(run.epochs_done, _saved_epochs(p / LAST))
    run.seconds = sum(float(r.get("seconds") or 0.0) for r in run.rows)
    metrics = prov.get("metrics") or {}
    if ckpt_dir is not None and ckpt_dir.name == BEST and "epoch" in metrics:
        run.best_epoch = int(metrics["epoch"]) + 1
        run.best = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in metrics.items()
            if k.split("/")[0] in ("dice", "iou", "hd95", "assd") and isinstance(v, (int, float))
        }
    try:
        run.evaluation = _json(p / EVALUATION_DIR / EVALUATION_SUMMARY)
    except RunFolderError as e:
        run.damaged["evaluation"] = f"{e}; the final evaluation cannot be shown (medseg evaluate measures it again)"
    kind = _last_event_kind(p / EVENTS)
    run.state = ENDINGS.get(kind, "unfinished" if kind else "?")
    return run


def read_runs(paths: list[str | Path]) -> list[RunSummary]:
    return [read_run(p) for p in find_runs(paths)]


# ---------------------------------------------------------------- the table
def all_classes(runs: list[RunSummary]) -> list[str]:
    out: list[str] = []
    for r in runs:
        out += [c for c in r.classes() if c not in out]
    return out


def _eval_dice(run: RunSummary, cls: str) -> float | None:
    entry = ((run.evaluation or {}).get("classes") or {}).get(cls)  # medseg.evaluate's summary.json
    dice = entry.get("dice") if isinstance(entry, dict) else None
    value = dice.get("mean") if isinstance(dice, dict) else dice
    return float(value) if isinstance(value, (int, float)) else None


def table_rows(runs: list[RunSummary]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the comparison: one row per run; a Dice column per class at the best epoch, and
    the final evaluation's mean Dice per class where the run has one."""
    classes = all_classes(runs)
    with_eval = any(r.evaluation for r in runs)
    header = ["run", "model", "data", "train/val", "epochs", "best epoch", "state", "seconds"]
    header += [f"val Dice {c}" for c in classes]
    if len(classes) > 1:
        header.append("val Dice mean")
    if with_eval:
        header += [f"eval Dice {c}" for c in classes]
    rows = []
    for r in runs:
        epochs = f"{r.epochs_done}/{r.epochs_planned}" if r.epochs_planned else str(r.epochs_done)
        split = f"{r.n_train}/{r.n_val}" if r.n_train is not None else "?"
        row: list[Any] = [r.name, r.model, r.data, split, epochs, r.best_epoch, r.state, r.seconds]
        row += [r.best_dice(c) for c in classes]
        if len(classes) > 1:
            row.append(r.best_dice())
        if with_eval:
            row += [_eval_dice(r, c) for c in classes]
        rows.append(row)
    return header, rows


def _text(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if column == "seconds":
            return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"
        return f"{value:.3f}"
    return str(value)


def format_table(runs: list[RunSummary]) -> str:
    """The comparison as aligned text columns; a run with a damaged record file is marked ``*`` and a note
    below the table says which file, what is wrong and what was still read."""
    header, rows = table_rows(runs)
    cells = [["time" if h == "seconds" else h for h in header]] + [
        [_text(v, h) for v, h in zip(row, header)] for row in rows
    ]
    for run, row in zip(runs, cells[1:]):
        if run.damaged:
            row[0] += " *"
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and k else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"* {r.name}: {text}" for r in runs for text in r.damaged.values()]
    return "\n".join(lines + ([""] + notes if notes else []))


def _is_number(v: Any) -> bool:
    return v is None or isinstance(v, (int, float))


def write_table_csv(runs: list[RunSummary], path: str | Path) -> Path:
    """The comparison as CSV (full precision, empty cells for missing values, the run folder's path)."""
    header, rows = table_rows(runs)
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*header, "path", "checkpoint", "damaged"])
        for r, row in zip(runs, rows):
            cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row]
            w.writerow([*cells, str(r.path), str(r.checkpoint or ""), "; ".join(r.damaged.values())])
    return path
