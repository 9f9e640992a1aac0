"""napari plugin of napari-medseg: a thin layer of readers, samples and widgets over the medseg engine."""

import sys

# On machines without a GPU driver napari draws with Mesa's llvmpipe, which links LLVM; triton
# bundles its own LLVM, and loading it after the GL context exists kills the process (SIGSEGV
# inside triton/_C/libtriton). torchvision pulls triton in through torch._dynamo the first
# time a model is built. The viewer process never compiles kernels (training runs in a child
# process), so triton is kept out of it; torch then reports "no triton" and carries on.
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]
