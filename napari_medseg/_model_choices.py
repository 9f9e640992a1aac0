"""The model names the Predict and Fine-tune forms offer, read off the GUI thread.

Architecture names come from the model registry and encoder names from
segmentation_models_pytorch; both import torch, seconds of work that would
freeze the viewer while a dock is built. A dock builds its form with the
defaults alone and calls :func:`with_model_names`: the names are read once per
process in a thread worker (through :func:`napari_medseg._torch_guard.load_torch`)
and handed to the dock on the main thread, which asks its fields'
choices functions (:func:`architectures`, :func:`encoders`) again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_ARCH, DEFAULT_ENCODER = "Unet", "resnet34"


@dataclass(frozen=True)
class ModelNames:
    architectures: list[str]
    encoders: list[str]
    devices: list[str]  # what this machine has, CPU last


_known: ModelNames | None = None


def architectures(_: Any = None) -> list[str]:
    """Choices of an architecture field (a magicgui choices function): the registry's names once read."""
    return list(_known.architectures) if _known is not None else [DEFAULT_ARCH]


def encoders(_: Any = None) -> list[str]:
    """Choices of an encoder field: smp's names once read."""
    return list(_known.encoders) if _known is not None else [DEFAULT_ENCODER]


def read_model_names() -> ModelNames:
    """Worker body: the registry's architectures, smp's encoders and the devices torch sees."""
    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.inference.device import available_devices
    from medseg.models import list_architectures, list_encoders

    return ModelNames(list_architectures(), list_encoders(), available_devices())


def with_model_names(then: Callable[[ModelNames], Any]) -> Any:
    """Call ``then(names)`` on the main thread: now when they are known, else when a worker has read them
    (the worker, started; None when called now). A failure is a notification; the form keeps its defaults."""
    if _known is not None:
        then(_known)
        return None
    from napari_medseg._jobs import call, start_job
    from napari_medseg._notify import report_error

    def arrived(names: ModelNames) -> None:
        global _known
        _known = names
        try:
            then(names)
        except RuntimeError:  # the dock was closed meanwhile: its Qt widgets are gone
            pass

    # a job of no session: no workspace waits for it
    return start_job(
        None,
        lambda token: call(read_model_names),
        "Listing the model architectures",
        stoppable=False,
        progress=False,
        on_result=arrived,
        on_error=lambda e: report_error("Cannot list the model architectures and encoders", e),
    ).worker
