"""The medseg checkpoint: a ``NAME.medseg/`` folder that is safe to open.

Layout::

    NAME.medseg/
        config.json        format, format_version, spec, classmap, preprocessing,
                           provenance, weights {file, sha256, n_tensors}
        model.safetensors  the state dict (parameters and buffers, BatchNorm
                           running statistics included)

Loading never unpickles. ``torch.load`` of an untrusted ``.pt`` file can run
arbitrary code, so pickle-based files (``.pt``/``.pth``/``.ckpt``/``.pkl``, or a
pickle or torch zip archive renamed to ``model.safetensors``) are refused with
a ``CheckpointError``. A *trusted* PyTorch state dict is converted once with
``medseg.models.import_state_dict``, which reads it with ``torch.load(weights_only=True)``.

Saving is atomic: everything is written into a temporary folder beside the
target, flushed to disk, then renamed into place, so an interrupted save
leaves either the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from medseg.datasets.classmap import ClassMap
from medseg.destinations import check_destination
from medseg.errors import CheckpointError, DestinationError
from medseg.folder_swap import SwapNames, owner_tag, recover, swap_in
from medseg.models.registry import create_model, resolve
from medseg.models.spec import ModelSpec, Preprocessing

FORMAT = "medseg-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".medseg"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")
_CONVERT_HINT = (
    "convert a file you trust with 'medseg import-weights FILE --config CONFIG.yaml --classes NAMES --out "
    "OUT.medseg' (in Python: medseg.models.import_state_dict; both read it with torch.load(weights_only=True)) "
    "and load the resulting .medseg folder"
)


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``model`` is in eval mode on the requested device."""

    model: torch.nn.Module
    spec: ModelSpec
    classmap: ClassMap
    preprocessing: Preprocessing
    provenance: dict[str, Any]
    path: Path
    config: dict[str, Any] = field(default_factory=dict, repr=False)


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` with the ``.medseg`` suffix added when it lacks it."""
    p = Path(path)
    return p if p.suffix == SUFFIX else p.with_name(p.name + SUFFIX)


# ---------------------------------------------------------------- saving
def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    spec: ModelSpec,
    classmap: ClassMap,
    preprocessing: Preprocessing,
    provenance: dict[str, Any] | None = None,
    extra_files: dict[str, Callable[[Path], None]] | None = None,
    sources: Sequence = (),
) -> Path:
    """Write ``model`` and its descriptions to ``path`` (``.medseg`` added) and return the folder.

    ``provenance`` holds what the caller knows (``data``: dataset root / ids /
    hash, ``config``: training configuration, ``metrics``, ...); ``created``,
    ``versions`` and ``host`` are filled in unless given. When ``data`` has
    ``ids`` but no ``hash``, the sha256 of the sorted ids is added so a
    checkpoint can be matched to the exact sample list it was trained on.
    An existing checkpoint at ``path`` is replaced atomically, and only when its
    weights still have the sha256 its config.json recorded (one edited or
    replaced since is refused, as is any other file or folder there).
    ``path`` is refused (DestinationError) inside a dataset's source files or
    ``sources`` (the training data) or a workspace other than its job areas
    (``runs/``: the ranking's fold models), see :mod:`medseg.destinations`.
    ``extra_files`` maps a file name to a function writing that file (given its
    path), called inside the temporary folder so the files are swapped in
    together with the weights (the trainer's resumable state uses this).
    """
    for name in extra_files or {}:
        if Path(name).name != name or name in ("", ".", "..", CONFIG_FILE, WEIGHTS_FILE):
            raise ValueError(
                f"extra checkpoint file name must be a plain file name other than "
                f"{CONFIG_FILE} and {WEIGHTS_FILE}, got {name!r}"
            )
    if isinstance(classmap, dict):
        classmap = ClassMap.from_dict(classmap)
    _check_consistent(spec, classmap, preprocessing)
    target = checkpoint_path(path)
    check_destination(target, sources=sources, purpose="a checkpoint", internal=True)
    recover_interrupted_save(target)
    if target.exists() and not _is_checkpoint_folder(target):
        raise CheckpointError(target, "exists and is not a medseg checkpoint; refusing to replace it")
    if target.exists() and not _weights_unchanged(target):
        raise DestinationError(
            f"refusing to replace the checkpoint {target}: its {WEIGHTS_FILE} changed since "
            f"medseg saved it (the sha256 in its {CONFIG_FILE} no longer matches); move it "
            "away or save under another name",
            target,
            target / WEIGHTS_FILE,
        )
    target.parent.mkdir(parents=True, exist_ok=True)

    tag = owner_tag()  # names this process, so a later save tells its leftovers from a live save's
    tmp = _NAMES.new_path(target, tag)
    tmp.mkdir()
    try:
        weights = tmp / WEIGHTS_FILE
        tensors = _tensors_for_safetensors(model.state_dict())
        save_file(tensors, str(weights), metadata={"format": "pt"})
        _fsync(weights)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": spec.to_dict(),
            "classmap": classmap.to_dict(),
            "preprocessing": preprocessing.to_dict(),
            "provenance": _provenance(model, provenance),
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256(weights), "n_tensors": len(tensors)},
        }
        text = json.dumps(config, indent=2, default=_json_default)
        (tmp / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
        _fsync(tmp / CONFIG_FILE)
        for name, write in (extra_files or {}).items():
            write(tmp / name)
            _fsync(tmp / name)
        _fsync_dir(tmp)
        swap_in(tmp, target, _NAMES.old_path(target, tag))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _check_consistent(spec: ModelSpec, classmap: ClassMap, pre: Preprocessing) -> None:
    if spec.task != classmap.task:
        raise ValueError(f"model task {spec.task!r} differs from the class map's task {classmap.task!r}")
    if spec.classes != classmap.num_classes:
        raise ValueError(
            f"model has {spec.classes} output channels but the {classmap.task} class map "
            f"needs {classmap.num_classes} ({', '.join(classmap.names)})"
        )
    if pre.channels != spec.in_channels:
        raise ValueError(
            f"preprocessing makes {pre.channels}-channel input but the model takes {spec.in_channels} channels"
        )


def _tensors_for_safetensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU tensors safetensors accepts: tied/shared and non-contiguous ones are cloned.

    safetensors refuses tensors that share memory (tied weights, views of one
    buffer) and non-contiguous ones; cloning gives each entry its own storage,
    and ``load_state_dict`` copies the values back into the tied parameters.
    """
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach().to("cpu")
        storage = t.untyped_storage()
        whole = t.is_contiguous() and t.storage_offset() == 0 and t.numel() * t.element_size() == storage.nbytes()
        if storage.data_ptr() in seen or not whole:
            t = t.contiguous().clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _provenance(model: torch.nn.Module, given: dict[str, Any] | None) -> dict[str, Any]:
    import safetensors
    import segmentation_models_pytorch as smp

    import medseg

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    host = {"platform": platform.platform(), "device": str(device)}
    if device.type == "cuda":
        host["device_name"] = torch.cuda.get_device_name(device)
    prov: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": None,
        "config": None,
        "metrics": None,
        "versions": {
            "medseg": medseg.__version__,
            "torch": torch.__version__,
            "smp": smp.__version__,
            "safetensors": safetensors.__version__,
            "python": platform.python_version(),
        },
        "host": host,
    }
    prov.update(given or {})
    data = prov.get("data")
    if isinstance(data, dict) and data.get("ids") is not None and "hash" not in data:
        ids = sorted(str(i) for i in data["ids"])
        prov["data"] = {**data, "hash": "sha256:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    return prov


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and small arrays in metrics
        return obj.tolist()
    raise TypeError(f"provenance value of type {type(obj).__name__} is not JSON-serialisable: {obj!r:.80}")


STALE_S = 60.0  # how long a leftover of a version that did not tag its folders is taken for a live save
_NAMES = SwapNames(new=".{name}.tmp-{tag}", old=".{name}.old-{tag}")


def recover_interrupted_save(target: Path) -> bool:
    """Undo what a save killed half-way left behind; whether anything was put back.

    Replacing a checkpoint moves the old folder aside (``.NAME.old-*``), renames the new one in, then
    deletes the old one. Killed between the first two steps, the target is missing and the old
    folder holds the last good checkpoint: it is moved back. Killed after the second, both exist:
    the leftover old folder is deleted. Half-written ``.NAME.tmp-*`` folders are deleted. Only the
    leftovers of a dead process count: a save running in another process right now (the trainer
    writing ``last.medseg`` while the viewer loads it) is left alone (:mod:`medseg.folder_swap`).
    """
    return recover(Path(target), _NAMES, _is_checkpoint_folder, STALE_S)


def _fsync(path: Path) -> None:
    with open(path, "r+b") as f:  # "r+" because Windows refuses fsync on read-only handles
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_unchanged(p: Path) -> bool:
    try:
        recorded = json.loads((p / CONFIG_FILE).read_text("utf-8"))["weights"]["sha256"]
        return _sha256(p / WEIGHTS_FILE) == recorded
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _is_checkpoint_folder(p: Path) -> bool:
    try:
        return p.is_dir() and json.loads((p / CONFIG_FILE).read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------- loading
def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", strict: bool = True) -> Checkpoint:
    """Open a ``.medseg`` checkpoint (suffix optional) with safetensors only.

    The weights' sha256 must match config.json; the model is rebuilt with
    ``create_model(spec)`` (``encoder_weights`` ignored: the checkpoint holds
    the weights), loaded, moved to ``device`` and put in eval mode.
    Every problem is a ``CheckpointError`` naming the file and the cause.
    """
    folder = _resolve(Path(path))
    config_path = folder / CONFIG_FILE
    config = _read_config(config_path)
    try:
        spec = ModelSpec.from_dict(config["spec"])
        classmap = ClassMap.from_dict(config["classmap"])
        preprocessing = Preprocessing.from_dict(config["preprocessing"])
        wfile, wsha = config["weights"]["file"], config["weights"]["sha256"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(config_path, f"malformed checkpoint config: {e}") from e
    if not isinstance(wfile, str) or Path(wfile).name != wfile or wfile in ("", ".", ".."):
        raise CheckpointError(config_path, f"weights file must be a plain file name inside the folder, got {wfile!r}")
    weights = folder / wfile
    state = _read_weights(weights, wsha)

    try:
        model = _create_model(spec)
    except ValueError as e:  # UnknownNameError (e.g. an architecture of a newer medseg), bad options
        raise CheckpointError(config_path, f"cannot build the model it describes: {e}") from e
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(weights, f"weights do not fit the {_describe(spec)} model: {str(e)[:600]}") from e
    model.to(device).eval()
    return Checkpoint(model, spec, classmap, preprocessing, dict(config.get("provenance") or {}), folder, config)


def _resolve(p: Path) -> Path:
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            p,
            f"pickle-based checkpoints are refused: they can execute code when loaded; a medseg checkpoint is a "
            f"NAME{SUFFIX} folder holding {CONFIG_FILE} and {WEIGHTS_FILE}: {_CONVERT_HINT}",
        )
    if p.is_file():
        if p.name in (CONFIG_FILE, WEIGHTS_FILE):
            return p.parent
        kind = _sniff(p)
        why = {"pickle": "is a pickle", "zip": "is a zip archive (torch.save's format, a pickle inside)"}
        if kind in why:
            raise CheckpointError(
                p,
                f"{why[kind]}; pickle-based checkpoints are refused: they can "
                f"execute code when loaded; {_CONVERT_HINT}",
            )
        raise CheckpointError(
            p, f"not a medseg checkpoint: expected a NAME{SUFFIX} folder holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    if p.is_dir():
        return p
    with_suffix = checkpoint_path(p)
    if with_suffix.is_dir():
        return with_suffix
    if recover_interrupted_save(with_suffix):  # a save was killed mid-swap: the last good one is back
        return with_suffix
    looked = f"{p} and {with_suffix}" if with_suffix != p else str(p)
    raise CheckpointError(p, f"no such checkpoint (looked for {looked})")


def _read_config(config_path: Path) -> dict[str, Any]:
    if not config_path.is_file():
        raise CheckpointError(
            config_path, f"missing {CONFIG_FILE}: {config_path.parent} is not a medseg checkpoint folder"
        )
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(config_path, f"invalid JSON: {e}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(config_path, f"not a medseg checkpoint config (format {got!r}, expected {FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            config_path,
            f"unknown format_version {version!r}: this medseg reads "
            f"versions 1..{FORMAT_VERSION}; a newer medseg may read it",
        )
    return config


def _read_weights(weights: Path, sha256: str) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise CheckpointError(weights, "weights file is missing")
    kind = _sniff(weights)
    if kind in ("pickle", "zip"):
        what = "a pickle" if kind == "pickle" else "a zip archive (torch.save's format, a pickle inside)"
        raise CheckpointError(
            weights, f"is {what}, not safetensors; refused: pickles can execute code when loaded; {_CONVERT_HINT}"
        )
    if _sha256(weights) != sha256:
        raise CheckpointError(
            weights, f"weights file changed or corrupted: its sha256 differs from the one recorded in {CONFIG_FILE}"
        )
    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(weights, f"not a valid safetensors file ({e}); refused") from e


def _sniff(path: Path) -> str:
    """ "pickle", "zip", "safetensors" or "unknown", from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    return "unknown"


def _describe(spec: ModelSpec) -> str:
    return spec.arch if resolve(spec.arch).own else f"{spec.arch}({spec.encoder})"


def _create_model(spec: ModelSpec) -> torch.nn.Module:
    """The architecture ``spec`` names, without fetching pretrained weights: the checkpoint holds them."""
    return create_model(spec, load_weights=False)
