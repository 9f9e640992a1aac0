"""The fuzz campaign: every corpus file through every stage a user puts files through, bounded in time and memory.

Stages, per file: ``reader`` (napari's contract: ``napari_get_reader`` returns None or
a callable and never raises; the callable returns layer data or raises an error naming
the file) and ``load`` (``medseg.io.load``). Per dataset of the corpus, attributed to
each file in it: ``index`` (``medseg index --json`` and ``open_dataset``), ``qc``
(``medseg qc --json``), ``workspace`` (``medseg workspace create``), ``predict``
(``medseg predict`` on every file, a tiny checkpoint), ``train-data`` (each sample
through the training input pipeline, resized and at its own size) and ``train`` (a
tiny Trainer run on the dataset; its rows are per dataset).

Outcome of a file at a stage:
  ok      it was used, or declined without fuss (a reader that is not ours)
  clean   a MedsegError naming the file, or a dataset problem / QC finding naming it
  crash   any other exception, an error that does not name the file, a QC check that
          "could not run", or a file a dataset stage neither used nor reported
  hang    the worker passed the time bound (it is killed and a fresh one started)

Everything runs in a worker process (spawned, one at a time) whose address space is
capped with ``RLIMIT_AS``, so a decompression bomb fails there and not on the machine;
a stage that fails for a whole dataset is run again file by file to say which file did it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import time
import traceback
from collections import defaultdict
from pathlib import Path

import _fuzz_stages
from _fuzz_stages import CLEAN, CRASH, DATASET_STAGES, FILE_STAGES, HANG, OK, STAGES, Outcome


def _serve(conn, mem_mb: int) -> None:
    """The worker loop: (task, args) in, ("ok", result, seconds) or ("exc", text, seconds) out."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import resource

    import torch

    import medseg.cli  # noqa: F401 - imported before the limit: the limit is for the work, not the imports
    import medseg.training.trainer  # noqa: F401
    import napari_medseg._reader  # noqa: F401

    torch.set_num_threads(1)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    limit = vm + mem_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    tasks = {name: fn for name, fn in vars(_fuzz_stages).items() if name.startswith("t_")}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        name, args = msg
        t = time.perf_counter()
        try:
            result = tasks[name](*args)
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent decides
            conn.send(
                (
                    "exc",
                    f"{type(e).__name__}: {e}\n{''.join(traceback.format_exception(e)[-4:])}",
                    time.perf_counter() - t,
                )
            )
        else:
            conn.send(("ok", result, time.perf_counter() - t))


# ================================================================== parent side


class Worker:
    """One spawned worker at a time; a call past its time bound kills it and the next call starts a new one."""

    def __init__(self, mem_mb: int = 3072):
        self.mem_mb = mem_mb
        self.proc = None
        self.conn = None
        self.warm = False  # a new worker's first call waits for its imports too

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.mem_mb), daemon=True)
        self.proc.start()
        child.close()

    def call(self, task: str, args: tuple, timeout: float) -> tuple[str, object, float]:
        """("ok", result, s), ("exc", text, s), ("hang", text, s) or ("died", text, s)."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        t = time.perf_counter()
        self.conn.send((task, args))
        if self.conn.poll(timeout if self.warm else timeout + 120):
            self.warm = True
            try:
                return self.conn.recv()
            except EOFError:
                pass
        alive = self.proc.is_alive()
        code = self.proc.exitcode
        self.stop(kill=True)
        seconds = time.perf_counter() - t
        if alive:
            return "hang", f"no answer after {timeout:.0f} s (killed)", seconds
        return "died", f"the worker died (exit code {code}): a segfault, abort or the memory limit", seconds

    def stop(self, kill: bool = False) -> None:
        self.warm = False
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            with contextlib.suppress(Exception):
                self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.proc = None


def _file_dict(f) -> dict:
    return {"path": str(f.path), "partner": str(f.partner) if f.partner else None}


def run_campaign(
    corpus, work: Path, *, timeout: float = 60.0, mem_mb: int = 3072, stages=STAGES, log=None
) -> list[Outcome]:
    """Every corpus file through ``stages``; ``work`` (created) holds workspaces, predictions and runs."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    worker = Worker(mem_mb)
    info = {str(f.path): f for f in corpus.files}
    outcomes: list[Outcome] = []

    def record(stage: str, path: str, result: str, seconds: float, message: str) -> None:
        f = info.get(path)
        outcomes.append(
            Outcome(stage, path, f.kind if f else "dataset", f.case if f else Path(path).name, result, seconds, message)
        )

    def reply_result(status: str, value, seconds: float) -> tuple[str, str]:
        if status == "ok":
            return value
        return (HANG if status == "hang" else CRASH), str(value)

    try:
        for stage in (s for s in FILE_STAGES if s in stages):
            task = "t_reader" if stage == "reader" else "t_load"
            for f in corpus.files:
                status, value, seconds = worker.call(task, (str(f.path),), timeout)
                record(stage, str(f.path), *_swap(reply_result(status, value, seconds), seconds))
            if log:
                log(f"{stage}: {len(corpus.files)} files")
        checkpoint = None
        if "predict" in stages:
            status, value, _ = worker.call("t_checkpoint", (str(work / "checkpoint"),), timeout)
            if status != "ok":
                raise RuntimeError(f"cannot make the tiny checkpoint: {value}")
            checkpoint = value
        for root, files in corpus.by_dataset().items():
            dicts = [_file_dict(f) for f in files]
            for stage in (s for s in DATASET_STAGES if s in stages):
                _dataset_stage(worker, stage, root, dicts, work, checkpoint, timeout, record)
            if "train" in stages:
                _train_stage(worker, root, files, outcomes, work, timeout, record)
            if log:
                log(f"{root.name}: {len(files)} files")
    finally:
        worker.stop()
    return outcomes


def _swap(pair: tuple[str, str], seconds: float) -> tuple[str, float, str]:
    return pair[0], seconds, pair[1]


def _stage_call(stage: str, root: str, dicts: list[dict], work: Path, checkpoint, tag: str):
    out = work / stage / tag
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if stage == "index":
        return "t_index", (root, dicts)
    if stage == "qc":
        return "t_qc", (root, dicts, str(out) + ".json")
    if stage == "workspace":
        return "t_workspace", (root, dicts, str(out))
    if stage == "predict":
        return "t_predict", (checkpoint, dicts, str(out))
    return "t_train_data", (root, dicts)


def _dataset_stage(worker, stage, root: Path, dicts, work, checkpoint, timeout, record) -> None:
    """One run over the whole dataset; if it fails as a whole, one run per file (with the anchors) to say which."""
    bound = timeout + 2.0 * len(dicts)
    task, args = _stage_call(stage, str(root), dicts, work, checkpoint, root.name)
    status, value, seconds = worker.call(task, args, bound)
    if status == "ok":
        for path, result, message in value:
            record(stage, path, result, seconds, message)
        return
    whole = f"the {stage} run over {root.name} failed ({status}): {value}"
    for d in dicts:
        mini = _mini_dataset(root, d, work / "bisect" / stage)
        md = {"path": str(mini[0]), "partner": str(mini[1]) if mini[1] else None}
        task, args = _stage_call(
            stage, str(mini[0].parent.parent), [md], work, checkpoint, f"{root.name}-{mini[0].stem}"
        )
        status, value, seconds = worker.call(task, args, timeout)
        if status == "ok":
            ((_, result, message),) = value
        else:
            result, message = (HANG if status == "hang" else CRASH), f"{value} [{whole[:300]}]"
        record(stage, d["path"], result, seconds, message)


def _mini_dataset(root: Path, d: dict, base: Path) -> tuple[Path, Path | None]:
    """A dataset of one corpus file, its partner and the anchors (same names, so messages still name the file)."""
    src = Path(d["path"])
    mini = base / f"{root.name}-{src.name}"
    if mini.exists():
        shutil.rmtree(mini)
    for sub in ("images", "masks"):
        (mini / sub).mkdir(parents=True)
        for anchor in (root / sub).glob("anchor*"):
            shutil.copy2(anchor, mini / sub / anchor.name)
    copy = mini / src.parent.name / src.name
    shutil.copy2(src, copy)
    partner = None
    if d["partner"]:
        partner = mini / Path(d["partner"]).parent.name / Path(d["partner"]).name
        shutil.copy2(d["partner"], partner)
    return copy, partner


def _train_stage(worker, root: Path, files, outcomes, work, timeout, record) -> None:
    """Per dataset: a run over every sample (fails cleanly on the first bad one, or finishes), a run over the
    samples the training pipeline took (must finish), and at their own size for the shape and bit-depth sets."""
    names = [f.path.name for f in files]
    good = {
        Path(o.file).name
        for o in outcomes
        if o.stage == "train-data"
        and o.result == OK
        and o.message != "not a sample (reported by index)"
        and Path(o.file).parent.parent == root
    }
    ids = sorted({n.rsplit(".", 1)[0] for n in good if not n.startswith("anchor")} | {"anchor1", "anchor2"})
    runs = [("all samples", [32, 32], None, 2), ("samples that decode", [32, 32], ids, 2)]
    if root.name in ("shapes", "bit-depths"):
        runs.append(("own size", None, ids, 1))
    for label, size, sample_ids, batch in runs:
        out = work / "train" / f"{root.name}-{label.replace(' ', '-')}"
        shutil.rmtree(out, ignore_errors=True)
        status, value, seconds = worker.call(
            "t_train", (str(root), str(out), names, size, sample_ids, batch), timeout + 2.0 * len(files)
        )
        result, message = value if status == "ok" else ((HANG if status == "hang" else CRASH), str(value))
        if label != "all samples" and result == CLEAN:
            result, message = CRASH, f"a run over samples that decode failed: {message}"
        record("train", f"{root}/{label}", result, seconds, message)


# ================================================================== the table


def table(outcomes: list[Outcome]) -> str:
    """Rows per stage and file kind: files, ok, clean errors, crashes, hangs, slowest (name, seconds)."""
    rows: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        rows[(o.stage, o.kind)].append(o)
        rows[(o.stage, "all")].append(o)
        rows[("TOTAL", "all")].append(o)
    order = {s: i for i, s in enumerate((*STAGES, "TOTAL"))}
    head = f"{'stage':<11}{'kind':<8}{'files':>6}{'ok':>6}{'clean':>7}{'crash':>7}{'hang':>6}  slowest"
    lines = [head, "-" * len(head)]
    for (stage, kind), group in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] == "all", kv[0][1])):
        count = defaultdict(int)
        for o in group:
            count[o.result] += 1
        slow = max(group, key=lambda o: o.seconds)
        where = Path(slow.file).name if slow.kind != "dataset" else "/".join(Path(slow.file).parts[-2:])
        if slow.stage in DATASET_STAGES:  # timed per dataset run
            where = f"{slow.stage} of {Path(slow.file).parent.parent.name}/"
        lines.append(
            f"{stage:<11}{kind:<8}{len(group):>6}{count[OK]:>6}{count[CLEAN]:>7}{count[CRASH]:>7}"
            f"{count[HANG]:>6}  {where} {slow.seconds:.2f} s"
        )
        if kind == "all":
            lines.append("")
    return "\n".join(lines)


def problems(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.result in (CRASH, HANG)]
