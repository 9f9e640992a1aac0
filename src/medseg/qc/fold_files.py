"""Out-of-fold ranking one fold at a time, anywhere, then merged: ``medseg rank --fold I`` and ``--merge``.

``iter_rank_fold(workspace, config, folds=K, fold=I)`` trains and scores fold
``I`` of the same group split :func:`medseg.qc.oof.iter_rank_oof` makes, and
writes nothing into the workspace: the fold's scores, the revisions it trained
on and scored, its seed, K and a digest of its training config go into one
fold file, ``<runs>/fold-I-of-K.json`` (written under a temporary name and
renamed), and its predictions into its own run folder. So K jobs of a
scheduler (a Slurm array, a torchrun or Ray launcher, one process per local
GPU: :mod:`medseg.qc.fold_parallel`) only read the workspace, whatever their
number, and a cancelled or failed job leaves no half fold behind.

``iter_merge_folds(workspace, config, folds=K)`` checks that every fold file
is there and that they belong together (same K, fold seed, method and config;
the samples and label revisions they split are the workspace's current ones;
held-out sets disjoint and covering them, each the split's own fold), and
stores the scores, the model runs and the predictions exactly as a single
``iter_rank_oof`` run stores them, then calibrates: the review queue is the
one that run gives. A missing, damaged or mismatched fold file raises
``RankingError`` naming it (``medseg`` exits 2) before anything is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import Cancelled, RankingError
from medseg.folder_swap import fsync_dir, write_atomic, write_text_atomic
from medseg.jobs import CancelToken, Result, Started
from medseg.qc.oof import _fold, base_config, fold_dice, make_folds, preflight
from medseg.qc.prediction_store import prediction_path
from medseg.qc.ranking import FoldScored, RankResult, open_workspace, store
from medseg.qc.reliability_model import calibrate_model
from medseg.training.workspace_source import WorkspaceDataset

FORMAT = "medseg-rank-fold"
VERSION = 1
# what may differ between the jobs of one ranking: where the workspace is mounted and which device ran
_NOT_DIGESTED = (("data", "root"), ("out_dir",), ("device",))


def fold_file(runs: Path, fold: int, folds: int) -> Path:
    return Path(runs) / f"fold-{fold}-of-{folds}.json"


def prediction_root(runs: Path, fold: int) -> Path:
    """Where fold ``fold``'s job puts its predictions (the merge copies them into the workspace)."""
    return Path(runs) / f"fold-{fold}" / "scored"


def config_digest(config) -> str:
    """sha256 of the training config as JSON, without the fields that name a place or a device."""
    d = json.loads(json.dumps(config.to_dict(), default=str))
    for path in _NOT_DIGESTED:
        node = d
        for key in path[:-1]:
            node = node.get(key) or {}
        node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass
class DeferredRecords(WorkspaceDataset):
    """The trainer's dataset view whose run records are kept here for the merge, not written by the job."""

    recorded: list = field(default_factory=list)

    def record_run(self, run_id: str, checkpoint, kind: str = "train") -> None:
        self.recorded.append([run_id, str(checkpoint), kind, self.revisions])


def _prepare(ws, config, folds: int, seed: int, init_from, encoder_weights):
    from medseg.training.workspace_source import open_workspace_dataset

    dataset = open_workspace_dataset(ws.root)
    if not dataset.samples:
        raise RankingError(f"{ws.root}: no sample to rank (all excluded or their sources changed)")
    pairs = make_folds(dataset.samples, folds, seed)
    base = base_config(config, ws.root, init_from, encoder_weights)
    return dataset, pairs, base


def iter_rank_fold(
    workspace,
    config: Any,
    *,
    folds: int,
    fold: int,
    seed: int = 0,
    method: str | None = None,
    cancel: CancelToken | None = None,
    runs_dir: str | Path | None = None,
    predictor_options: dict | None = None,
    init_from: str | Path | None = None,
    encoder_weights: str | Path | None = None,
) -> Iterator[Any]:
    """Fold ``fold`` of ``folds`` into its fold file (module docstring); last ``Result(path of the file)``."""
    cancel = cancel or CancelToken()
    method = method or f"oof-k{folds}"
    if not 0 <= fold < folds:
        raise RankingError(f"--fold {fold}: folds are numbered 0 to {folds - 1} with --folds {folds}")
    ws, opened = open_workspace(workspace)
    try:
        dataset, pairs, base = _prepare(ws, config, folds, seed, init_from, encoder_weights)
        runs = Path(runs_dir) if runs_dir is not None else ws.root / "runs" / method
        preflight(ws, dataset, pairs, base, init_from, encoder_weights)
        yield Started("rank", None, {"method": method, "folds": folds, "fold": fold, "biased": False})
        deferred = DeferredRecords(**{f.name: getattr(dataset, f.name) for f in dataclasses.fields(dataset)})
        train, held = pairs[fold]
        scored: dict[str, tuple[float, dict]] = {}
        done = None
        for event in _fold(
            ws,
            deferred,
            base,
            runs,
            method,
            fold,
            folds,
            train,
            held,
            cancel,
            predictor_options,
            scored,
            prediction_root=prediction_root(runs, fold),
        ):
            if isinstance(event, FoldScored):
                done = event
            yield event
        record = {
            "format": FORMAT,
            "version": VERSION,
            "method": method,
            "fold": fold,
            "folds": folds,
            "fold_seed": seed,
            "config_digest": config_digest(base),
            "samples": {s.id: s.revision for s in dataset.samples},
            "held_out": {s.id: s.revision for s in held},
            "train": [s.id for s in train],
            "checkpoint": done.checkpoint,
            "val_dice": done.val_dice,
            "seconds": done.seconds,
            "device": base.device,
            "training_runs": deferred.recorded,
            "scores": {sid: {"score": v[0], "details": v[1]} for sid, v in scored.items()},
        }
        path = fold_file(runs, fold, folds)
        write_text_atomic(path, json.dumps(record, default=str, allow_nan=True))
        yield Result(path)
    except Cancelled as c:
        raise Cancelled(f"fold {fold + 1} of {folds} cancelled: no fold file written", 0, 1) from c
    finally:
        if opened:
            ws.close()


def read_fold_files(runs: Path, folds: int, command: str = "") -> list[dict]:
    """Every fold file of a K-fold ranking, read; missing or damaged ones raise RankingError naming them."""
    paths = [fold_file(runs, k, folds) for k in range(folds)]
    missing = [k for k, p in enumerate(paths) if not p.is_file()]
    if missing:
        names = ", ".join(f"fold {k} ({paths[k]})" for k in missing)
        run = f": run {command} --fold {missing[0]} first" if command else ""
        raise RankingError(f"--merge: {len(missing)} of {folds} fold file(s) missing: {names}{run}")
    records = []
    for k, p in enumerate(paths):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RankingError(f"{p}: fold file cannot be read ({type(e).__name__}: {e}); run fold {k} again") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("scores"), dict):
            raise RankingError(f"{p}: not a medseg fold file (format {FORMAT!r} expected); run fold {k} again")
        if d.get("version") != VERSION:
            raise RankingError(f"{p}: fold file version {d.get('version')!r}, this medseg reads {VERSION}")
        d["_path"] = p
        records.append(d)
    return records


def check_fold_files(records: list[dict], *, folds: int, seed: int, method: str, digest: str, samples: dict, pairs):
    """That the fold files make one ranking of the workspace as it is now: RankingError naming the file."""
    for k, d in enumerate(records):
        p = d["_path"]
        for key, want, what in (
            ("folds", folds, "--folds"),
            ("fold", k, "fold number"),
            ("fold_seed", seed, "--fold-seed"),
            ("method", method, "--method"),
        ):
            if d.get(key) != want:
                raise RankingError(f"{p}: {what} {d.get(key)!r} in the fold file, {want!r} in this merge")
        if d.get("config_digest") != digest:
            raise RankingError(
                f"{p}: fold {k} was trained with another training config (digest {str(d.get('config_digest'))[:12]}, "
                f"this merge's {digest[:12]}): give --merge the --config, --set and training flags of the fold jobs"
            )
        theirs = {str(s): int(r) for s, r in (d.get("samples") or {}).items()}
        if theirs != samples:
            changed = sorted(s for s in set(theirs) | set(samples) if theirs.get(s) != samples.get(s))
            raise RankingError(
                f"{p}: the workspace's trainable samples or labels changed since fold {k} ran "
                f"({len(changed)}: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}): run the folds again"
            )
        held = set(d.get("held_out") or {})
        if held != {s.id for s in pairs[k][1]} or set(d["scores"]) != held:
            raise RankingError(f"{p}: fold {k}'s held-out samples are not fold {k} of this split: run it again")
    seen: dict[str, int] = {}
    for k, d in enumerate(records):
        for sid in d["held_out"]:
            if sid in seen:
                raise RankingError(f"{d['_path']}: sample {sid} is held out by folds {seen[sid]} and {k}")
            seen[sid] = k
    left = sorted(set(samples) - set(seen))
    if left:
        raise RankingError(f"--merge: no fold scored {len(left)} sample(s): {', '.join(left[:5])}")


def iter_merge_folds(
    workspace,
    config: Any,
    *,
    folds: int,
    seed: int = 0,
    method: str | None = None,
    runs_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    encoder_weights: str | Path | None = None,
    command: str = "",
) -> Iterator[Any]:
    """Check and store the K fold files (module docstring); last ``Result(RankResult)``. ``command``: the
    fold jobs' command line, for the message that names a missing fold."""
    method = method or f"oof-k{folds}"
    ws, opened = open_workspace(workspace)
    try:
        dataset, pairs, base = _prepare(ws, config, folds, seed, init_from, encoder_weights)
        runs = Path(runs_dir) if runs_dir is not None else ws.root / "runs" / method
        records = read_fold_files(runs, folds, command)
        samples = {s.id: s.revision for s in dataset.samples}
        check_fold_files(
            records, folds=folds, seed=seed, method=method, digest=config_digest(base), samples=samples, pairs=pairs
        )
        yield Started("rank", folds, {"method": method, "folds": folds, "merge": True, "biased": False})
        scored: dict[str, tuple[float, dict]] = {}
        known = {r.run_id for r in ws.model_runs()}  # a merge run again records nothing twice
        for k, d in enumerate(records):
            fold_scores = {sid: (float(v["score"]), v["details"]) for sid, v in d["scores"].items()}
            for sid in fold_scores:
                src = prediction_path(prediction_root(runs, k), method, sid)
                if src.is_file():  # a volume stores none
                    write_atomic(prediction_path(ws.root, method, sid), lambda g, src=src: g.write(src.read_bytes()))
            runs_of = {v["details"].get("run") for v in d["scores"].values()} - {None}
            todo = [
                *(d.get("training_runs") or ()),
                *([r, str(d["checkpoint"]), "rank", d["held_out"]] for r in runs_of),
            ]
            for run_id, checkpoint, kind, revisions in todo:
                if run_id not in known:
                    ws.record_model_run(run_id, checkpoint, kind, revisions)
            scored.update(fold_scores)
            yield FoldScored(k, folds, len(fold_scores), str(d["checkpoint"]), float(d["seconds"]), d.get("val_dice"))
        if prediction_path(ws.root, method, "x").parent.is_dir():
            fsync_dir(prediction_path(ws.root, method, "x").parent)
        store(ws, method, scored)
        calibrate_model(ws, method)
        yield Result(RankResult(method, {s: v[0] for s, v in scored.items()}, False, folds, fold_dice(scored)))
    finally:
        if opened:
            ws.close()
