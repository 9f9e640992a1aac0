"""A short description of an ONNX file: what goes in and out, which operators, how big, what it carries.

``torch.onnx`` and ``onnx.helper.printable_graph`` print every node (thousands
of lines for a ResNet encoder); a user deciding whether the file fits their
runtime needs the inputs and outputs with their dimensions (symbolic ones by
name: ``batch``, ``height``, ``width``), the opset, the operator types with
their counts, the parameter count, the file size and medseg's metadata.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from medseg.models.onnx_export import _require, read_onnx_metadata


def _dims(value_info: Any) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.dim_param else int(d.dim_value) for d in shape.dim]


def _dtype(value_info: Any) -> str:
    onnx = _require("onnx", "read ONNX models")
    return onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name


def onnx_summary(path: str | os.PathLike) -> dict[str, Any]:
    """JSON-able summary of the ONNX file at ``path`` (see the module docstring)."""
    onnx = _require("onnx", "read ONNX models")
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    graph = proto.graph
    weights = {init.name for init in graph.initializer}
    ops = Counter(node.op_type for node in graph.node)
    params = 0
    for init in graph.initializer:
        n = 1
        for d in init.dims:
            n *= int(d)
        params += n
    meta = read_onnx_metadata(path)
    spec = meta.get("spec", {})
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "ir_version": int(proto.ir_version),
        "opset": {imp.domain or "ai.onnx": int(imp.version) for imp in proto.opset_import},
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [
            {"name": v.name, "dims": _dims(v), "dtype": _dtype(v)} for v in graph.input if v.name not in weights
        ],
        "outputs": [{"name": v.name, "dims": _dims(v), "dtype": _dtype(v)} for v in graph.output],
        "nodes": len(graph.node),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": params,
        "model": {k: spec.get(k) for k in ("arch", "encoder", "task", "classes", "in_channels")} if spec else None,
        "metadata_keys": sorted(f"medseg.{k}" for k in meta),
        "preprocessing": meta.get("preprocessing"),
        "postprocessing": meta.get("postprocessing"),
    }


def summary_lines(s: dict[str, Any], top_ops: int = 12) -> list[str]:
    """The summary as a dozen readable lines."""

    def tensor(t: dict[str, Any]) -> str:
        return f"{t['name']} {t['dtype']} [{', '.join(str(d) for d in t['dims'])}]"

    opset = ", ".join(f"{d} {v}" for d, v in s["opset"].items())
    ops = list(s["ops"].items())
    shown = ", ".join(f"{name} {n}" for name, n in ops[:top_ops])
    more = f", {len(ops) - top_ops} other types" if len(ops) > top_ops else ""
    lines = [
        f"{s['path']}: {s['size_bytes'] / 1e6:.2f} MB, opset {opset}, {s['producer']}",
        f"  input:  {'; '.join(tensor(t) for t in s['inputs'])}",
        f"  output: {'; '.join(tensor(t) for t in s['outputs'])}",
        f"  {s['nodes']} nodes, {len(ops)} operator types: {shown}{more}",
        f"  {s['parameters']:,} parameters",
    ]
    m = s.get("model")
    if m:
        lines.append(
            f"  model: {m['arch']} ({m['encoder']}), {m['task']}, {m['in_channels']} input channels, "
            f"{m['classes']} output channels"
        )
    pre, post = s.get("preprocessing"), s.get("postprocessing")
    if pre:
        lines.append(
            f"  preprocessing: {pre.get('channels')} channels, window {pre.get('window')}, mean {pre.get('mean')}, "
            f"std {pre.get('std')}, size {pre.get('input_size')}, divisible by {pre.get('divisible_by')}"
        )
    if post:
        lines.append(f"  postprocessing: {post.get('activation')}; {post.get('labels')}")
    if s["metadata_keys"]:
        lines.append(f"  metadata: {', '.join(s['metadata_keys'])}")
    return lines
