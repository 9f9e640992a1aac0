"""ONNX files of the models the Predictor runs in onnxruntime, exported once per model and kept on disk.

The key is what decides the graph: a digest of the weights as they are in memory
(so a model changed since its checkpoint was read gets its own file), the model
spec (architecture, encoder, in/out channels, task, kwargs), the opset, and the
medseg and torch versions (the exporter and the exported copy's rewrites). The
folder is ``$MEDSEG_CACHE_DIR/onnx``, else ``~/.cache/medseg/onnx``.

A file is written under a temporary name in the same folder and renamed into
place, its name carrying the key and the sha256 of its bytes
(``ARCH-KEY-SHA.onnx``): a file whose bytes no longer hash to its name
(truncated, edited, damaged on disk) is deleted and exported again, never run,
and two processes exporting the same model at once each rename a whole file.

The folder does not grow without bound: a file's modification time is its last
use (set on every hit), and each new file written prunes the others, least
recently used first: those unused for ``$MEDSEG_ONNX_CACHE_DAYS`` (30) days,
then as many as it takes to bring the folder under ``$MEDSEG_ONNX_CACHE_MB``
(2,048 MB). The file just written is never pruned, and temporary files are
removed only when a day old (another process may be writing one now); a file
deleted under another process's feet is exported again there (its load fails).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import torch

from medseg.inference.members import Member, member_stride

log = logging.getLogger(__name__)

CACHE_ENV = "MEDSEG_CACHE_DIR"
MAX_MB_ENV, MAX_DAYS_ENV = "MEDSEG_ONNX_CACHE_MB", "MEDSEG_ONNX_CACHE_DAYS"
MAX_MB, MAX_DAYS = 2048.0, 30.0
_STALE_TMP_S = 86400.0
OPSET = 17
_KEY_LEN = 24
_EXPORTING = threading.Lock()  # one export in this process at a time (cached_onnx)
REWRITES = "split-concat-convs-1"  # in the key: a file written before a rewrite changed is exported again
_SHA_LEN = 16


def cache_dir() -> Path:
    """``$MEDSEG_CACHE_DIR/onnx``, else ``~/.cache/medseg/onnx`` (not created here)."""
    root = os.environ.get(CACHE_ENV)
    base = Path(os.path.expanduser(root)) if root else Path.home() / ".cache" / "medseg"
    return base / "onnx"


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the state dict (names, dtypes, shapes, bytes), BatchNorm statistics included."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        # bytes through a uint8 view: numpy has no bfloat16
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(member: Member, opset: int = OPSET) -> str:
    import medseg

    values = {
        "weights": weights_digest(member.model),
        "spec": member.spec.to_dict(),
        "in_channels": member.spec.in_channels,
        "classes": member.spec.classes,
        "opset": opset,
        "medseg": medseg.__version__,
        "torch": torch.__version__,
        "rewrites": REWRITES,
    }
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:_KEY_LEN]


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:_SHA_LEN]


def find_cached(folder: Path, prefix: str) -> Path | None:
    """The intact file named ``PREFIX-SHA.onnx`` in ``folder``; damaged ones are deleted on the way."""
    for path in sorted(folder.glob(f"{prefix}-*.onnx")):
        expected = path.stem[len(prefix) + 1 :]
        try:
            intact = _file_sha(path) == expected
        except OSError:
            intact = False
        if intact:
            _touch(path)
            return path
        log.warning("damaged ONNX cache file %s (its bytes do not match its name): exporting again", path)
        path.unlink(missing_ok=True)
    return None


def _example_hw(member: Member) -> tuple[int, int]:
    """The training size when it fits the model's stride, else a small multiple of it (PAN needs 128)."""
    stride = member_stride(member)
    size = member.preprocessing.input_size
    if size and all(int(s) % stride == 0 for s in size):
        return int(size[0]), int(size[1])
    side = -(-max(128, 2 * stride) // stride) * stride
    return side, side


def cached_onnx(member: Member, folder: Path | None = None, opset: int = OPSET) -> Path:
    """The ONNX file of ``member``'s network, exported into the cache on first use, one export at a time in a
    process (torch's exporter swaps a module function while it runs). Raises what the export raises
    (:class:`~medseg.errors.OnnxExportError`, ImportError without ``onnx``, OSError)."""
    folder = cache_dir() if folder is None else Path(folder)
    key = cache_key(member, opset)
    prefix = f"{member.spec.arch}-{key}"
    found = find_cached(folder, prefix) if folder.is_dir() else None
    if found is not None:
        return found
    with _EXPORTING:
        found = find_cached(folder, prefix) if folder.is_dir() else None  # written while this one waited
        return found if found is not None else _export(member, folder, opset, key, prefix)


def _export(member: Member, folder: Path, opset: int, key: str, prefix: str) -> Path:
    from medseg.models.checkpoint import Checkpoint
    from medseg.models.onnx_export import write_onnx

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpoint(
        member.model,
        member.spec,
        member.classmap,
        member.preprocessing,
        provenance={},
        path=Path(member.name or "<model in memory>"),
    )
    tmp = folder / f".{prefix}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_onnx(ckpt, tmp, opset=opset, input_hw=_example_hw(member), extra_metadata={"cache_key": key})
        _rewrite(tmp)
        out = folder / f"{prefix}-{_file_sha(tmp)}.onnx"
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to the ONNX cache: %s", member.name or member.spec.arch, out)
    try:
        prune(folder, keep=out)
    except OSError as e:  # a folder we cannot list or clean still gave us our file
        log.warning("could not prune the ONNX cache %s: %s", folder, e)
    return out


def _rewrite(path: Path) -> None:
    """The exported graph rewritten for onnxruntime (:mod:`medseg.inference.onnx_graph`); the count of
    concatenations split is recorded as ``medseg.split_concats``. A rewrite that fails leaves the export as
    it was (slower, same outputs), with a warning."""
    import onnx

    from medseg.inference.onnx_graph import split_concat_convs

    try:
        proto = onnx.load(str(path))
        n = split_concat_convs(proto)
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001 - the unrewritten export still runs, and right
        log.warning("kept %s unrewritten: %s: %s", path.name, type(e).__name__, e)
        return
    meta = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**meta, "medseg.split_concats": json.dumps(n)})
    onnx.save(proto, str(path))


def _touch(path: Path) -> None:
    try:  # the modification time is the last use: pruning goes by it
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves its files


def _limit(env: str, default: float) -> float:
    raw = os.environ.get(env, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not value >= 0:
        log.warning("$%s=%r is not a number >= 0: using %s", env, raw, default)
        return default
    return value


def prune(
    folder: Path,
    keep: Path | None = None,
    max_mb: float | None = None,
    max_days: float | None = None,
    now: float | None = None,
) -> list[Path]:
    """Delete the cache files of ``folder`` unused for ``max_days``, then the least recently used ones until
    the rest fit in ``max_mb`` (defaults: the environment, else 2,048 MB and 30 days); never ``keep``.
    Returns the deleted paths."""
    max_mb = _limit(MAX_MB_ENV, MAX_MB) if max_mb is None else max_mb
    max_days = _limit(MAX_DAYS_ENV, MAX_DAYS) if max_days is None else max_days
    now = time.time() if now is None else now
    entries = []
    for path in folder.iterdir():
        try:
            st = path.stat()
        except OSError:
            continue  # deleted meanwhile by another process
        if path.name.startswith(".") and ".tmp-" in path.name:
            if now - st.st_mtime > _STALE_TMP_S:  # left by a process killed while exporting
                path.unlink(missing_ok=True)
        elif path.suffix == ".onnx" and path.is_file():
            entries.append((st.st_mtime, st.st_size, path))
    entries.sort()  # least recently used first
    kept = keep.resolve() if keep is not None else None
    total = sum(size for _, size, _ in entries)
    removed = []
    for mtime, size, path in entries:
        if kept is not None and path.resolve() == kept:
            continue
        if now - mtime <= max_days * 86400 and total <= max_mb * 1024 * 1024:
            continue  # young enough, and the folder fits
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    if removed:
        log.info("pruned %d file(s) from the ONNX cache %s", len(removed), folder)
    return removed
