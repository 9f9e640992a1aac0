"""Timing helpers of the inference benchmarks: variants timed in turns, thread counts, what the machine is."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from _bench_inputs import sync


class Bench:
    """Variants timed in turns (load from other processes hits them alike); each returns its output, kept
    from the warm-up call for the accuracy columns."""

    def __init__(self, device: torch.device):
        self.device = device
        self.fns: dict[str, Callable[[], torch.Tensor]] = {}
        self.times: dict[str, list[float]] = {}
        self.notes: dict[str, str] = {}
        self.outputs: dict[str, torch.Tensor] = {}

    def add(self, name: str, fn: Callable[[], torch.Tensor], note: str = "") -> None:
        out = fn()  # warm-up, and the output for the accuracy column
        sync(self.device)
        self.outputs[name] = out.detach().float().cpu() if isinstance(out, torch.Tensor) else out
        self.fns[name], self.times[name], self.notes[name] = fn, [], note

    def run(self, repeats: int) -> None:
        for r in range(repeats):
            for name, fn in self.fns.items():
                sync(self.device)
                t0 = time.perf_counter()
                fn()
                sync(self.device)
                self.times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1}/{repeats} done", file=sys.stderr)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


def with_threads(n: int, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` run with ``n`` torch threads (the Predictor's onnxruntime sessions follow them)."""

    def run() -> torch.Tensor:
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(old)

    return run


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{platform.processor() or platform.machine()} CPU ({os.cpu_count()} cores)"


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"
