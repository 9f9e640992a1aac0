"""The fuzz campaign's stages: what the worker process does with one corpus file or dataset.

Each ``t_<task>`` is called in the worker (see :mod:`_fuzz_campaign`) and returns outcomes as plain
tuples; the outcome vocabulary and the stage names are here too.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

OK, CLEAN, CRASH, HANG = "ok", "clean", "crash", "hang"
FILE_STAGES = ("reader", "load")
DATASET_STAGES = ("index", "qc", "workspace", "predict", "train-data")
STAGES = (*FILE_STAGES, *DATASET_STAGES, "train")


@dataclass
class Outcome:
    stage: str
    file: str  # the corpus file (or the dataset, for "train")
    kind: str
    case: str
    result: str
    seconds: float
    message: str = ""


# ================================================================== worker side


def _names(path: str | Path, text: str) -> bool:
    return Path(path).name in text


def _classify(e: BaseException, path) -> tuple[str, str]:
    from medseg.errors import MedsegError

    text = f"{type(e).__name__}: {e}"
    if isinstance(e, MedsegError) and _names(path, str(e)):
        return CLEAN, text
    where = "".join(traceback.format_exception(e)[-3:])
    why = "does not name the file" if isinstance(e, MedsegError) else "not a MedsegError"
    return CRASH, f"{text} ({why})\n{where}"


def t_reader(path: str) -> tuple[str, str]:
    from napari_medseg._reader import napari_get_reader

    try:
        fn = napari_get_reader(path)
    except BaseException as e:  # noqa: BLE001 - the contract says it never raises
        return CRASH, f"napari_get_reader raised {type(e).__name__}: {e}"
    if fn is None:
        return OK, "declined"
    if not callable(fn):
        return CRASH, f"napari_get_reader returned {type(fn).__name__}, not a callable"
    try:
        layers = fn(path)
    except Exception as e:  # noqa: BLE001
        return _classify(e, path)
    if not isinstance(layers, list) or not layers:
        return CRASH, f"the reader returned {type(layers).__name__} {layers!r:.80}, not a list of layer tuples"
    for layer in layers:
        if not (isinstance(layer, tuple) and 1 <= len(layer) <= 3 and hasattr(layer[0], "shape")):
            return CRASH, f"the reader returned a layer that is not (data, meta, type): {layer!r:.80}"
        if len(layer) == 3 and layer[2] not in ("image", "labels"):
            return CRASH, f"unexpected layer type {layer[2]!r}"
    return OK, f"{len(layers)} layer(s) {[tuple(layer[0].shape) for layer in layers]}"


def t_load(path: str) -> tuple[str, str]:
    import numpy as np

    from medseg.io import load

    try:
        image = load(path)
    except Exception as e:  # noqa: BLE001
        return _classify(e, path)
    a = np.asarray(image.array)
    if a.size == 0 or len(image.spacing) != image.spatial_ndim:
        return CRASH, f"load returned shape {a.shape} with spacing {image.spacing}"
    if not all(np.isfinite(s) and s > 0 for s in image.spacing):
        return CRASH, f"load returned spacing {image.spacing}: not positive and finite"
    return OK, f"{a.shape} {a.dtype}"


@contextlib.contextmanager
def _captured():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """``medseg ARGV`` in this process; an exception escaping ``main`` propagates (a crash)."""
    from medseg.cli import main

    with _captured() as (out, err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def _cli_failed(rc: int, err: str) -> str | None:
    """Why a CLI run counts as a crash for every file in it: a traceback printed (the CLI's bug path)."""
    if "Traceback (most recent call last)" in err:
        return f"exit {rc} with a traceback: {err[-1500:]}"
    return None


def _attribute(files: list[dict], named: dict[str, str], used: set[str], stage: str) -> list[tuple]:
    """Per file: clean when a problem / finding names it, ok when it (or its reported partner) was used."""
    results = []
    for f in files:
        name, partner = Path(f["path"]).name, Path(f["partner"]).name if f["partner"] else None
        if name in named:
            results.append((f["path"], CLEAN, named[name]))
        elif name in used:
            results.append((f["path"], OK, "used"))
        elif partner is not None and partner in named:
            results.append((f["path"], OK, f"its partner was reported: {named[partner]}"))
        else:
            results.append((f["path"], CRASH, f"{stage}: neither used nor reported"))
    return results


def _problem_names(problems) -> dict[str, str]:
    named = {}
    for p in problems:
        named.setdefault(Path(p.path).name, f"{p.kind}: {p.message}")
    return named


def t_index(root: str, files: list[dict]) -> list[tuple]:
    from medseg.datasets import open_dataset

    rc, out, err = _cli(["index", root, "--json"])
    if (why := _cli_failed(rc, err)) is not None:
        raise RuntimeError(why)
    if rc != 0:
        return [(f["path"], CRASH, f"index exited {rc} on a dataset with good samples: {err[-300:]}") for f in files]
    listed = {Path(p["path"]).name for p in json.loads(out)["problems"]}
    ds = open_dataset(root)
    named = _problem_names(ds.problems)
    if set(named) != listed:
        raise RuntimeError(f"medseg index and open_dataset disagree: {sorted(set(named) ^ listed)[:5]}")
    used = {Path(p).name for s in ds.samples for p in (s.image_path, *s.mask_paths.values())}
    return _attribute(files, named, used, "index")


def t_qc(root: str, files: list[dict], report: str) -> list[tuple]:
    rc, out, err = _cli(["qc", root, "--json", report, "--quiet", "--workers", "1"])
    if (why := _cli_failed(rc, err)) is not None:
        raise RuntimeError(why)
    if rc != 0:
        return [(f["path"], CRASH, f"qc exited {rc}: {err[-300:]}") for f in files]
    findings = json.loads(Path(report).read_text())["findings"]
    results = []
    for f in files:
        name = Path(f["path"]).name
        mine = [g for g in findings if (g.get("path") and Path(g["path"]).name == name) or name in g["message"]]
        failed = [g for g in mine if (g.get("details") or {}).get("failed")]
        errors = [g for g in mine if g["severity"] == "error"]
        if failed:
            results.append((f["path"], CRASH, f"{failed[0]['check']}: {failed[0]['message']}"))
        elif errors:
            results.append((f["path"], CLEAN, f"{errors[0]['check']}: {errors[0]['message']}"))
        else:
            results.append((f["path"], OK, f"{len(mine)} finding(s)"))
    return results


def t_workspace(root: str, files: list[dict], ws: str) -> list[tuple]:
    from medseg.workspace import Workspace

    rc, out, err = _cli(["workspace", "create", root, ws, "--quiet"])
    if (why := _cli_failed(rc, err)) is not None:
        raise RuntimeError(why)
    if rc != 0:
        return [(f["path"], CRASH, f"workspace create exited {rc}: {err[-300:]}") for f in files]
    with Workspace.open(ws, verify="none") as w:
        used = set()
        for s in w.samples():
            used.add(Path(s.image_path).name)
            used.update(Path(str(p)).name for p in (s.mask_paths or {}).values())
        named = {}
        for g in w.findings(source="index"):
            if g.path:
                named.setdefault(Path(g.path).name, f"{g.check}: {g.message}")
    return _attribute(files, named, used, "workspace")


def t_checkpoint(folder: str) -> str:
    from _predict_data import tiny_unet

    return str(tiny_unet(Path(folder), "fuzz"))


def t_predict(checkpoint: str, files: list[dict], out_dir: str) -> list[tuple]:
    paths = [f["path"] for f in files]
    rc, out, err = _cli(
        ["predict", checkpoint, *paths, "--out", out_dir, "--json", "--quiet", "--device", "cpu", "--tile", "64"]
    )
    if (why := _cli_failed(rc, err)) is not None:
        raise RuntimeError(why)
    done = {json.loads(line)["input"] for line in out.splitlines() if line.startswith("{")}
    lines = err.splitlines()
    results = []
    for p in paths:
        if p in done:
            results.append((p, OK, "predicted"))
            continue
        said = next((line for line in lines if Path(p).name in line), None)
        results.append((p, CLEAN, said) if said else (p, CRASH, f"predict (exit {rc}) neither wrote nor named it"))
    return results


def _prep(size):
    from medseg.models.spec import Preprocessing

    return Preprocessing(channels=3, input_size=list(size) if size else None, divisible_by=4, resize=size is not None)


def t_train_data(root: str, files: list[dict]) -> list[tuple]:
    """Each sample holding a corpus file through the training pipeline, resized to 32x32 and at its own size."""
    from medseg.datasets import open_dataset
    from medseg.training.data import SegmentationData

    ds = open_dataset(root)
    by_file = {}
    for s in ds.samples:
        for p in (s.image_path, *s.mask_paths.values()):
            by_file[Path(p).name] = s
    results = []
    for f in files:
        sample = by_file.get(Path(f["path"]).name)
        if sample is None:
            results.append((f["path"], OK, "not a sample (reported by index)"))
            continue
        outcome = (OK, "")
        for size in ((32, 32), None):
            try:
                item = SegmentationData([sample], ds.classmap, _prep(size), size)[0]
            except Exception as e:  # noqa: BLE001
                # the error may name the sample's other file (a mask that does not fit its image)
                named = [p for p in (sample.image_path, *sample.mask_paths.values()) if _names(p, str(e))]
                outcome = _classify(e, named[0] if named else f["path"])
                break
            shape = tuple(item["image"].shape)
            if size is None and (shape[-2] % 4 or shape[-1] % 4):
                outcome = (CRASH, f"native-size item {shape} is not a multiple of the model's stride 4")
                break
            outcome = (OK, f"{shape}")
        results.append((f["path"], *outcome))
    return results


def _medseg_error_names() -> set[str]:
    from medseg.errors import MedsegError

    names, todo = set(), [MedsegError]
    while todo:
        c = todo.pop()
        names.add(c.__name__)
        todo.extend(c.__subclasses__())
    return names


def t_train(
    root: str, out_dir: str, corpus_names: list[str], image_size, sample_ids=None, batch_size: int = 2
) -> tuple[str, str]:
    """A tiny Trainer run (PlainUNet depth 2, 1 epoch); a failure must be a MedsegError naming a corpus file."""
    from _train_run import tiny_config

    from medseg.training.config import TrainConfig
    from medseg.training.trainer import Trainer

    cfg = tiny_config(
        Path(root),
        Path(out_dir),
        epochs=1,
        batch_size=batch_size,
        data__val_fraction=0.0,
        data__image_size=image_size,
        data__sample_ids=sample_ids,
    )
    last = None
    try:
        with _captured():
            for event in Trainer(TrainConfig.from_dict(cfg)).run():
                last = event
    except Exception as e:  # noqa: BLE001 - the run raised: a clean error must be a MedsegError naming a file
        import traceback

        error = f"{type(e).__name__}: {e}"
        if type(e).__name__ in _medseg_error_names() and any(n in error for n in corpus_names):
            return CLEAN, error
        return CRASH, f"{error}\n{traceback.format_exc()[-1200:]}"
    if last is None or last.kind == "result":
        return OK, "finished"
    return CRASH, f"ended with {last.kind}"


def t_sleep(seconds: float) -> str:
    """For the campaign's own test: a task past its time bound is a hang."""
    time.sleep(seconds)
    return "slept"


def t_allocate(mb: int) -> int:
    """For the campaign's own test: the address-space cap turns a runaway allocation into an error."""
    return len(bytearray(mb * 2**20))
