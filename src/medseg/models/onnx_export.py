"""ONNX export of a checkpoint's network, with its pre/post-processing recorded.

The graph maps input ``image`` (B, C, H, W) float32 to output ``logits``
(B, classes, H, W); batch is always dynamic, H and W too with ``dynamic_hw``
(any size divisible by ``preprocessing.divisible_by``). What surrounds it is
the same as in medseg's own inference:

* pre-processing: the checkpoint's ``Preprocessing`` (config.json) -
  ``medseg.inference.preprocess.model_input(image, preprocessing)`` (the
  window, then ``equalize`` when set: skimage's equalize_hist /
  equalize_adapthist per channel, then mean / std) gives the (C, H, W)
  float32 input, padded to a multiple of ``divisible_by`` (no auxiliary head
  output is in the graph: they only train);
* post-processing: ``sigmoid`` per channel then threshold (binary,
  multilabel), or ``softmax`` over channels then argmax (multiclass).

Both are also stored in the ONNX file's ``metadata_props`` as JSON
(``medseg.spec``, ``medseg.classmap``, ``medseg.preprocessing``,
``medseg.postprocessing``), so an ONNX runtime user needs no other file.
``onnx`` and ``onnxruntime`` are imported only when used.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import OnnxExportError
from medseg.models.checkpoint import Checkpoint, load_checkpoint
from medseg.models.onnx_vit import exportable_vit, vit_unsupported
from medseg.ownership import guarded_file

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
_POST = {
    "binary": {"activation": "sigmoid", "labels": "probability > threshold (0.5) is class 1"},
    "multilabel": {"activation": "sigmoid", "labels": "per channel: probability > threshold (0.5)"},
    "multiclass": {"activation": "softmax over axis 1", "labels": "argmax over axis 1 = class id"},
}


def _require(module: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is needed to {purpose} but is not installed: pip install {module}") from e


def export_onnx(
    checkpoint: Checkpoint | str | os.PathLike,
    out_path: str | os.PathLike,
    opset: int = 17,
    dynamic_hw: bool = True,
    input_hw: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Export the checkpoint's logits to ``out_path`` (ONNX) and return the path.

    ``checkpoint`` is a loaded ``Checkpoint`` or a path to one. ``input_hw``
    is the example size traced (and, with ``dynamic_hw=False``, the only size
    the graph accepts); default: ``preprocessing.input_size``, else twice
    ``divisible_by`` (at least 64). Uses torch's TorchScript-based exporter:
    it needs no onnxscript and, unlike the dynamo exporter (tried with torch
    2.14), exports in about a second and keeps PSPNet correct at other sizes.
    ONNX has no adaptive average pooling to a fixed number of bins (PSPNet's
    and UPerNet's pyramid pooling): the exported copy computes the same bins
    as two averaging matrices built from the input's height and width
    (:class:`BinPooling`), so those graphs take any size too. A timm ViT encoder (DPT) resamples its
    position embedding with an antialiased bicubic that the exporter cannot translate and that it skips
    at the native size: the exported copy always resamples, with the same weights as matrix products
    (:mod:`medseg.models.onnx_vit`).
    The file is written beside ``out_path`` and renamed into place; ``out_path`` is refused inside a
    dataset's source files or a workspace, and an existing file is replaced only with ``overwrite`` and
    only when medseg wrote it and it is unchanged (:mod:`medseg.ownership`).
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    folder, out = guarded_file(out_path, purpose="an ONNX model", overwrite=overwrite)
    folder.mkdir()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        write_onnx(ckpt, tmp, opset, dynamic_hw, input_hw)
        os.replace(tmp, out)
        folder.record(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def write_onnx(
    ckpt: Checkpoint,
    path: Path,
    opset: int = 17,
    dynamic_hw: bool = True,
    input_hw: tuple[int, int] | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> None:
    """The export itself, written straight to ``path`` (no ownership check, not atomic: the caller writes
    a temporary name and renames it, as :func:`export_onnx` and the inference backend's cache do).
    ``extra_metadata`` adds ``medseg.KEY`` entries (JSON values)."""
    onnx = _require("onnx", "export ONNX models")
    model = ckpt.model
    if any(p.device.type != "cpu" for p in model.parameters()) or model.training:
        model = copy.deepcopy(model).cpu().eval()  # leave the caller's model where and as it is
    why = vit_unsupported(model) if dynamic_hw else None
    if why:
        raise OnnxExportError(
            f"{ckpt.spec.arch} ({ckpt.path}) cannot be exported to ONNX with dynamic height/width: "
            f"{why}; export with dynamic_hw=False and a fixed input_hw"
        )
    own = model if model is not ckpt.model else copy.deepcopy(model)
    # a fixed size other than a ViT's native one needs the resampling too
    model = exportable(own) if dynamic_hw else exportable_vit(own)
    h, w = _example_hw(ckpt, input_hw)
    example = torch.randn(1, ckpt.spec.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    axes: dict[int, str] = {0: "batch", **({2: "height", 3: "width"} if dynamic_hw else {})}
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (no onnxscript dependency); its
        # deprecation notice is not actionable for the user.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        try:
            with _quiet_exporter():
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    opset_version=opset,
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                    do_constant_folding=True,
                )
        except torch.onnx.errors.OnnxExporterError as e:
            raise _export_error(ckpt, dynamic_hw, (h, w), e) from e
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    props = _metadata(ckpt, dynamic_hw, (h, w))
    # eval-mode export folds BatchNorm into the convolutions; what is left says whether it could
    props["medseg.batchnorm_nodes"] = json.dumps(sum(n.op_type == "BatchNormalization" for n in proto.graph.node))
    props.update({f"medseg.{k}": json.dumps(v) for k, v in (extra_metadata or {}).items()})
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = (
        f"medseg {ckpt.spec.arch}({ckpt.spec.encoder}) logits; pre/post-processing "
        "in metadata_props medseg.preprocessing / medseg.postprocessing"
    )
    onnx.save(proto, str(path))


class BinPooling(nn.Module):
    """``nn.AdaptiveAvgPool2d(size)`` as matrix products the ONNX tracer keeps dynamic in height and width.

    Bin i of n inputs over ``out`` bins averages [floor(i n / out), ceil((i + 1) n / out)),
    exactly torch's rule, so the results agree to float rounding.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]):
        super().__init__()
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if any(v is None for v in size):
            raise ValueError(f"adaptive pooling keeping an input axis (output_size {output_size}) is not supported")
        self.size = (int(size[0]), int(size[1]))

    @staticmethod
    def _averaging(n: torch.Tensor, out: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(out, device=like.device)
        start = torch.div(i * n, out, rounding_mode="floor")
        end = torch.div((i + 1) * n + out - 1, out, rounding_mode="floor")
        pos = torch.arange(n, device=like.device)  # type: ignore[call-overload]
        member = ((pos[None] >= start[:, None]) & (pos[None] < end[:, None])).to(like.dtype)
        return member / member.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(x)  # traced as Shape, not frozen into the graph as constants
        rows, cols = self._averaging(shape[-2], self.size[0], x), self._averaging(shape[-1], self.size[1], x)
        return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)

    def extra_repr(self) -> str:
        return f"output_size={self.size}"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keeps torch's exporter from printing the whole traced graph (thousands of lines) when it fails.

    Its ``setup_onnx_logging`` tests the log switch function itself, not its value, so the log is
    always on (torch 2.9-2.14); the error we raise keeps the first line of torch's message.
    """
    try:
        from torch.onnx._internal.torchscript_exporter import utils as ts_utils
    except ImportError:  # another torch layout: leave its logging as it is
        yield
        return
    original = getattr(ts_utils, "setup_onnx_logging", None)
    if original is None:
        yield
        return
    ts_utils.setup_onnx_logging = lambda verbose: contextlib.nullcontext()
    try:
        yield
    finally:
        ts_utils.setup_onnx_logging = original


def _psp_block_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # smp's PSPBlock pools with F.interpolate(mode="area") while exporting, which ONNX turns
    # back into an adaptive pooling of fixed input size; its own pool (now BinPooling) is exact
    height, width = x.shape[2:]
    return F.interpolate(self.pool(x), size=(height, width), mode="bilinear", align_corners=True)


def exportable(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.AdaptiveAvgPool2d`` replaced by :class:`BinPooling` and every timm ViT's
    position embedding resampled as matrix products (:func:`~medseg.models.onnx_vit.exportable_vit`);
    in place, returned."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(module, child_name, BinPooling(child.output_size))
        if type(module).__name__ == "PSPBlock" and hasattr(module, "pool"):
            module.forward = types.MethodType(_psp_block_forward, module)
    return exportable_vit(model)


def _export_error(ckpt: Checkpoint, dynamic_hw: bool, hw: tuple[int, int], e: Exception) -> OnnxExportError:
    # torch's message carries the whole traced graph: keep its first line
    why = str(e).strip().splitlines()[0][:300]
    how = (
        "export with dynamic_hw=False and a fixed input_hw"
        if dynamic_hw
        else "adaptive pooling needs a feature map that is a multiple of its bins: try an input_hw that is "
        "a multiple of 6 x the model's stride (PSPNet, UPerNet)"
    )
    size = "with dynamic height/width" if dynamic_hw else f"at {hw[0]}x{hw[1]}"
    return OnnxExportError(f"{ckpt.spec.arch} ({ckpt.path}) cannot be exported to ONNX {size}: {why}; {how}")


def _example_hw(ckpt: Checkpoint, input_hw: tuple[int, int] | None) -> tuple[int, int]:
    if input_hw is not None:
        h, w = (int(v) for v in input_hw)
    elif ckpt.preprocessing.input_size:
        h, w = (int(v) for v in ckpt.preprocessing.input_size)
    else:
        h = w = max(64, 2 * int(ckpt.preprocessing.divisible_by))
    d = int(ckpt.preprocessing.divisible_by)
    if h % d or w % d:
        raise ValueError(f"example input {h}x{w} is not divisible by the model's stride {d}")
    return h, w


def _metadata(ckpt: Checkpoint, dynamic_hw: bool, hw: tuple[int, int]) -> dict[str, str]:
    import medseg

    values = {
        "format": "medseg-onnx",
        "version": medseg.__version__,
        "spec": ckpt.spec.to_dict(),
        "classmap": ckpt.classmap.to_dict(),
        "preprocessing": ckpt.preprocessing.to_dict(),
        "postprocessing": {"task": ckpt.spec.task, **_POST[ckpt.spec.task]},
        "io": {
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "dynamic_hw": dynamic_hw,
            "example_hw": list(hw),
        },
        "weights_sha256": ckpt.config.get("weights", {}).get("sha256"),
    }
    return {f"medseg.{k}": json.dumps(v) for k, v in values.items()}


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``medseg.*`` metadata of an exported file (every value is JSON), keys without the prefix."""
    onnx = _require("onnx", "read ONNX models")
    proto = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for prop in proto.metadata_props:
        if prop.key.startswith("medseg."):
            out[prop.key[len("medseg.") :]] = json.loads(prop.value)
    return out


def onnx_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` for an exported file (``threads``: intra-op threads)."""
    ort = _require("onnxruntime", "run ONNX models")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
