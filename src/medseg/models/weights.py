"""Pretrained encoder weights: from a local file or folder, or from the Hugging Face hub when it can be reached.

``ModelSpec.encoder_weights`` is ``None`` (random init), an smp weights name
("imagenet", "advprop", ...; fetched from smp's hub repositories, or from the
local huggingface_hub cache), or a path to a ``.safetensors`` file, a
``.pth``/``.pt``/``.bin``/``.ckpt`` state dict (read with
``torch.load(weights_only=True)``, which refuses pickled code) or a folder
holding one. Offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` set, or
the hub unreachable within about a second) a hub request raises
``WeightsUnavailableError`` at once, naming what to provide instead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from medseg.errors import ReadError, WeightsUnavailableError

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_PREFIXES = ("module.", "_orig_mod.", "model.", "encoder.", "backbone.")  # DataParallel, torch.compile, wrappers
_NESTED = ("state_dict", "model_state_dict", "model", "net", "weights")
_TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT_S = 1.0


@dataclass
class WeightsReport:
    """What loading a weights file into an encoder did; ``loaded`` tensors were copied."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.source}: {len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} with another shape"
            + (f", input conv adapted: {', '.join(self.adapted)}" if self.adapted else "")
        )


def is_local(weights: str) -> bool:
    """Whether ``encoder_weights`` names a file or folder rather than hub weights."""
    return (
        os.sep in weights
        or "/" in weights
        or weights.startswith(("~", "."))
        or weights.lower().endswith(WEIGHT_SUFFIXES)
        or Path(weights).exists()
    )


def find_weights_file(path: str | os.PathLike) -> Path:
    """The weights file ``path`` names: itself, or the one weights file in a folder (``model.safetensors`` first)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise ReadError(
            p,
            "no such file or folder (given as encoder_weights); give a .safetensors or "
            ".pth/.pt state dict, or a folder holding one",
        )
    found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in WEIGHT_SUFFIXES)
    safe = [f for f in found if f.suffix.lower() == ".safetensors"]
    for group in (safe, found):
        named = [f for f in group if f.name == "model.safetensors"]
        if named or len(group) == 1:
            return (named or group)[0]
        if group:
            raise ReadError(
                p,
                f"holds several weights files ({', '.join(f.name for f in group)}); "
                "give the file itself as encoder_weights",
            )
    raise ReadError(p, f"holds no weights file (looked for {', '.join(WEIGHT_SUFFIXES)})")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, never running pickled code.

    ``.safetensors`` through safetensors; anything else through
    ``torch.load(weights_only=True)``, which accepts tensors and plain
    containers only. A state dict nested under "state_dict", "model", ... is
    unwrapped; non-tensor entries are dropped.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ReadError(path, f"not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError for code, RuntimeError/EOFError for damage
        raise ReadError(
            path,
            "refused or unreadable as a weights-only state dict (torch.load weights_only=True: "
            f"{str(e).splitlines()[0][:300]}); save the weights as .safetensors or as a "
            "plain state dict",
        ) from None
    for key in _NESTED:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not tensors:
        raise ReadError(path, "holds no state dict (a mapping of names to tensors)")
    return tensors


def _norm(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _adapt_input_conv(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """A pretrained first-conv kernel for another number of input channels, as smp's ``patch_first_conv`` does."""
    if src.ndim != 4 or dst.ndim != 4 or src.shape[0] != dst.shape[0] or src.shape[2:] != dst.shape[2:]:
        return None
    new_in, old_in = dst.shape[1], src.shape[1]
    if new_in == 1:
        return src.sum(dim=1, keepdim=True)
    idx = torch.arange(new_in) % old_in
    return src[:, idx] * (old_in / new_in)


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike) -> WeightsReport:
    """Copy the matching tensors of a local weights file into ``encoder``; return what matched.

    Keys are matched after removing common prefixes ("module.", "model.",
    "encoder.", "backbone.", "_orig_mod.") on both sides, so an encoder-only
    state dict, a whole smp model's, a timm backbone's or a DataParallel one
    all fit. A first conv saved for 3 input channels is adapted to the
    model's (summed for 1, repeated and rescaled otherwise). Raises
    ``ReadError`` naming the file when nothing matches.
    """
    file = find_weights_file(path)
    source = read_state_dict(file)
    target = encoder.state_dict()
    by_norm = {_norm(k): k for k in target}
    report = WeightsReport(source=str(file))
    new_state: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        tkey = by_norm.get(_norm(key))
        if tkey is None:
            report.unexpected.append(key)
            continue
        want = target[tkey]
        if value.shape != want.shape:
            adapted = _adapt_input_conv(value, want) if value.ndim == 4 and value.shape[1] != want.shape[1] else None
            if adapted is None:
                report.mismatched.append(tkey)
                continue
            value = adapted
            report.adapted.append(tkey)
        new_state[tkey] = value.to(want.dtype)
        report.loaded.append(tkey)
    if not report.loaded:
        raise ReadError(
            file,
            f"none of its {len(source)} tensors fits the encoder (file keys start "
            f"{sorted(source)[:3]}, the encoder's {sorted(target)[:3]}); is it the "
            "same encoder?",
        )
    report.missing = [k for k in target if k not in new_state]
    encoder.load_state_dict(new_state, strict=False)
    if len(report.missing) > len(report.loaded):
        log.warning("encoder weights only partly fit: %s", report.summary())
    else:
        log.info("encoder weights %s", report.summary())
    return report


def hub_offline_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be used now (an offline switch, or no connection within ``timeout``), else None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    if not _can_connect(host, port, timeout):
        return f"no connection to {host}:{port} within {timeout:g} s"
    return None


def _can_connect(host: str, port: int, timeout: float) -> bool:
    # name resolution ignores socket timeouts, so the probe runs in a daemon thread we stop waiting for
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, name="medseg-hub-probe", daemon=True)
    t.start()
    t.join(timeout + 0.25)
    return bool(ok)


def hub_cache_dir() -> str | None:
    """The huggingface_hub cache as the environment says now (the library reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def cached_hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The file from the local hub cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision, cache_dir=hub_cache_dir())
    return Path(found) if isinstance(found, str) else None


def fetch_hub_file(repo_id: str, filename: str, revision: str | None, *, encoder: str, weights: str) -> Path:
    """A hub file: from the cache, else downloaded; offline or failing -> ``WeightsUnavailableError`` (no traceback)."""
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is not None:
        return cached
    reason = hub_offline_reason()
    if reason:
        raise WeightsUnavailableError(encoder, weights, f"{reason} and {repo_id} is not in the local cache")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub_cache_dir()))
    except Exception as e:  # noqa: BLE001 - every client failure (HTTP, SSL, timeouts, disk) needs the same advice
        detail = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise WeightsUnavailableError(encoder, weights, f"download of {repo_id}/{filename} failed ({detail})") from None
