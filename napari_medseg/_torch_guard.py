"""Loading the torch side of the engine into the viewer process without loading triton.

On machines without a GPU driver napari draws with Mesa's llvmpipe, which links LLVM; triton bundles its
own LLVM, and loading it after the GL context exists kills the process (SIGSEGV inside
``triton/_C/libtriton``). The viewer process never needs triton (it compiles no kernels; training runs in
a child process), but torch loads it as a side effect the first time a model is built:
segmentation_models_pytorch imports timm, timm imports torchvision, ``torchvision.ops`` imports
``torch._dynamo``, and ``torch._dynamo.utils`` asks ``torch.utils._triton.has_triton_package()``, which
imports triton and caches the answer (torch 2.14; ``import torch`` alone only looks for the package).
torch reads no setting that skips this.

:func:`load_torch` imports that chain once with triton hidden from the import system, so torch caches
"no triton" and carries on without it, then stops hiding it: ``import triton`` works again for the rest
of the process, nothing is patched for longer than that import. Every plugin code path that reaches the
torch side of the engine (``medseg.inference``, ``medseg.models``, ``medseg.training``,
``medseg.qc.ranking``, ``medseg.qc.suspicion``) calls it first; tests/test_plugin_triton_guard.py builds a
model through the plugin after napari's GL context exists and checks triton stayed out, and
tests/test_plugin_torch_paths.py scans every plugin module for a torch-side import without the call before it.
"""

from __future__ import annotations

import sys
import threading

_LOCK = threading.Lock()
_loaded = False


def load_torch() -> None:
    """Import torch, torchvision (with ``torch._dynamo``) and segmentation_models_pytorch, keeping triton out
    of the process; cheap after the first call, safe from any thread."""
    global _loaded
    if _loaded:
        return
    with _LOCK:  # a second thread waits for the first one's import instead of racing it past the hiding
        if _loaded:
            return
        hide = "triton" not in sys.modules  # already loaded (before any GL context): nothing left to keep out
        if hide:
            sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
        try:
            import segmentation_models_pytorch  # noqa: F401  timm and torchvision with it
            import torch._dynamo  # noqa: F401  asks has_triton_package() once and keeps the answer
        finally:
            if hide and "triton" in sys.modules and sys.modules["triton"] is None:
                del sys.modules["triton"]
        _loaded = True
