"""Out-of-fold ranking with the folds in parallel, one process per device, then merged.

``iter_rank_parallel(workspace, config, folds=K, devices=["cuda:0", "cuda:1"])``
runs each fold as its own ``medseg rank --fold I`` process (the very command a
Slurm array job runs, :mod:`medseg.qc.fold_files`), at most one per device at
a time, the next fold starting on whichever device comes free; each child's
output goes to ``<runs>/fold-I.log``. When all are done it merges them
(:func:`~medseg.qc.fold_files.iter_merge_folds`): the queue is the one a single
run gives. Several ``cpu`` entries run that many CPU processes, each with its
share of the cores (``OMP_NUM_THREADS``, unless the caller set it).

Events: ``Started``, ``FoldStarted`` when a fold's process starts,
``FoldScored`` when its fold file is written, then the merge's. A cancel
(Ctrl-C) asks every child to stop (SIGTERM: after its current step) and raises
``Cancelled``; the fold files already written stay for a later ``--merge``. A
child that fails stops the others and raises ``RankingError`` naming the fold,
its device, its log and the log's last line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from medseg.errors import Cancelled, RankingError
from medseg.folder_swap import write_text_atomic
from medseg.jobs import CancelToken, Started
from medseg.qc.fold_files import _prepare, fold_file, iter_merge_folds
from medseg.qc.oof import preflight
from medseg.qc.ranking import FoldScored, FoldStarted, open_workspace

CONFIG_FILE = "folds-config.yaml"
POLL_S = 0.2


def check_devices(devices: list[str]) -> list[str]:
    """The devices, each one this machine has; RankingError naming the one it lacks."""
    import torch

    if not devices:
        raise RankingError("--devices: give at least one device, e.g. cuda:0,cuda:1 or cpu,cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out = []
    for d in devices:
        d = d.strip()
        if d == "cpu":
            out.append(d)
            continue
        if d == "cuda":
            d = "cuda:0"
        if d.startswith("cuda:") and d[5:].isdigit():
            if int(d[5:]) >= count:
                raise RankingError(f"--devices {d}: this machine has {count} CUDA device(s)")
            out.append(d)
            continue
        raise RankingError(f"--devices {d!r}: expected cpu, cuda or cuda:N")
    return out


def local_gpus() -> list[str]:
    """One entry per local CUDA device (empty without CUDA)."""
    import torch

    return [f"cuda:{k}" for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def fold_command(
    workspace_root: Path,
    config_path: Path,
    runs: Path | None,
    fold: int,
    folds: int,
    seed: int,
    method: str,
    device: str,
    init_from=None,
    encoder_weights=None,
) -> list[str]:
    cmd = [sys.executable, "-m", "medseg.cli", "rank", str(workspace_root), "--folds", str(folds), "--fold", str(fold)]
    cmd += ["--config", str(config_path), "--fold-seed", str(seed), "--method", method]
    if runs is not None:  # the default (WORKSPACE/runs/METHOD) is the child's default too
        cmd += ["--runs", str(runs)]
    cmd += ["--device", device, "--quiet"]
    if init_from is not None:
        cmd += ["--init-from", str(init_from)]
    if encoder_weights is not None:
        cmd += ["--encoder-weights", str(encoder_weights)]
    return cmd


def iter_rank_parallel(
    workspace,
    config: Any,
    *,
    folds: int,
    devices: list[str],
    seed: int = 0,
    method: str | None = None,
    cancel: CancelToken | None = None,
    runs_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    encoder_weights: str | Path | None = None,
) -> Iterator[Any]:
    """See the module docstring; ``config`` is the folds' TrainConfig (its device is replaced per fold)."""
    cancel = cancel or CancelToken()
    method = method or f"oof-k{folds}"
    devices = check_devices(devices)
    ws, opened = open_workspace(workspace)
    try:
        dataset, pairs, base = _prepare(ws, config, folds, seed, init_from, encoder_weights)
        preflight(ws, dataset, pairs, base, init_from, encoder_weights)
        root = ws.root
    finally:
        if opened:
            ws.close()
    runs = Path(runs_dir) if runs_dir is not None else root / "runs" / method
    d = config.to_dict()
    d.pop("out_dir", None)
    d.get("data", {}).pop("root", None)
    config_path = runs / CONFIG_FILE
    write_text_atomic(config_path, yaml.safe_dump(d, sort_keys=False))
    env = dict(os.environ)
    cpus = devices.count("cpu")
    if cpus and "OMP_NUM_THREADS" not in env:  # the cores shared out, not each child taking them all
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpus))
    yield Started("rank", folds, {"method": method, "folds": folds, "devices": devices, "biased": False})
    todo = list(range(folds))
    running: dict[str, tuple[int, subprocess.Popen, Any, float]] = {}  # device -> fold, process, log, start
    slots = list(enumerate(devices))  # the same device named twice runs two processes
    try:
        while todo or running:
            for k, device in slots:
                slot = f"{k}:{device}"
                if slot in running or not todo:
                    continue
                fold = todo.pop(0)
                fold_file(runs, fold, folds).unlink(missing_ok=True)  # the merge must see this run's file
                log = open(runs / f"fold-{fold}.log", "w")  # noqa: SIM115 - closed when the child ends
                cmd = fold_command(
                    root, config_path, runs_dir, fold, folds, seed, method, device, init_from, encoder_weights
                )
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[slot] = (fold, proc, log, time.perf_counter())
                train, held = pairs[fold]
                yield FoldStarted(fold, folds, len(train), len(held))
            if cancel.is_set():
                raise Cancelled("ranking cancelled", folds - len(todo) - len(running), folds)
            for slot, (fold, proc, log, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del running[slot]
                if code != 0:
                    raise RankingError(_failure(runs, fold, folds, slot.split(":", 1)[1], code))
                d = read_fold_files_one(runs, fold, folds)
                yield FoldScored(
                    fold, folds, len(d["scores"]), str(d["checkpoint"]), time.perf_counter() - t0, d.get("val_dice")
                )
            time.sleep(POLL_S)
    except BaseException as e:
        _stop(running)
        if isinstance(e, Cancelled):
            done = [k for k in range(folds) if fold_file(runs, k, folds).is_file()]
            raise Cancelled(
                f"ranking cancelled: the fold files of folds {done or 'none'} are kept in {runs}; run the others "
                "with --fold I, then --merge",
                len(done),
                folds,
            ) from e
        raise
    yield from iter_merge_folds(
        root,
        config,
        folds=folds,
        seed=seed,
        method=method,
        runs_dir=runs,
        init_from=init_from,
        encoder_weights=encoder_weights,
    )


def read_fold_files_one(runs: Path, fold: int, folds: int) -> dict:
    path = fold_file(runs, fold, folds)
    if not path.is_file():
        raise RankingError(f"fold {fold}: its process ended without writing {path} (log {runs / f'fold-{fold}.log'})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RankingError(
            f"{path}: fold file cannot be read ({type(e).__name__}: {e}); run fold {fold} again"
        ) from None


def _failure(runs: Path, fold: int, folds: int, device: str, code: int) -> str:
    log = runs / f"fold-{fold}.log"
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    last = lines[-1].strip() if lines else "no output"
    return f"fold {fold} of {folds} on {device} failed (exit {code}): {last} (its log: {log})"


def _stop(running: dict) -> None:
    """SIGTERM every child (each stops after its current step), then wait; kill what outlives a minute."""
    for _, proc, _, _ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    for _, proc, log, _ in running.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    running.clear()
