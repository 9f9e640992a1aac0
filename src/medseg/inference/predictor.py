"""The Predictor: one or more models (an ensemble), their preprocessing, TTA, tiling, outputs.

Every member (checkpoint x TTA transform) sees the same tiles; their
probabilities are blended separately and then averaged, so the TTA / ensemble
variance is the spread of whole-image member predictions. Members must share
the task and the classes; they may differ in preprocessing (each gets its own
input) and stride (tiles use the least common multiple).

What runs each member is its backend (``backend``, see ``backend``): on the CPU
in fp32 a checkpoint's network runs in onnxruntime from an ONNX file exported
once and cached (``warm_up="background"``: PyTorch until the export, run in a
thread, is ready: an app's first prediction does not wait for it); otherwise a
copy of the model with BatchNorm folded into the convolutions (``fold_bn``, see
``optimise``), in channels_last memory format (the fastest PyTorch layout
measured, on the CPU too), on the chosen device; the caller's model is only put
in eval mode. A model that cannot be folded is itself moved to the device and
converted to channels_last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from medseg.datasets.classmap import ClassMap
from medseg.errors import Cancelled, InferenceError
from medseg.inference.backend import BACKENDS, WARM_UPS, build_backend
from medseg.inference.device import resolve_device, resolve_precision
from medseg.inference.members import Member, as_member, check_compatible, member_stride, resize_size
from medseg.inference.outputs import Prediction, activation, labels_from_probs
from medseg.inference.preprocess import as_2d, model_input
from medseg.inference.sliding import BLENDS, iter_sliding_window, plan_tiles
from medseg.inference.tta import parse_tta
from medseg.inference.uncertainty import member_variance, predictive_entropy
from medseg.inference.volume_input import VolumeInput
from medseg.io.resize import resize_image
from medseg.io.types import ImageData
from medseg.jobs import CancelToken, Job, Progress, Result, Started, run
from medseg.models.spec import ModelSpec, Preprocessing

DEFAULT_TILE = 512


class Predictor:
    """Runs one checkpoint or an ensemble on 2-D images; see the package docstring for the options."""

    def __init__(
        self,
        checkpoints: Any,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile_size: int | tuple[int, int] | None = None,
        overlap: float = 0.25,
        blend: str = "gaussian",
        tta: str | Iterable[str] = (),
        batch_size: int = 4,
        threshold: float = 0.5,
        pad_border: bool = True,
        channels_last: bool = True,
        fold_bn: bool = True,
        backend: str = "auto",
        warm_up: str = "now",
    ):
        sources = checkpoints if isinstance(checkpoints, list) else [checkpoints]
        if not sources:
            raise InferenceError("the Predictor needs at least one checkpoint")
        self.members = [as_member(s) for s in sources]
        self.classmap = check_compatible(self.members)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = bool(channels_last)
        if backend not in BACKENDS:
            raise InferenceError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        if warm_up not in WARM_UPS:
            raise InferenceError(f"unknown warm_up {warm_up!r}; valid: {', '.join(WARM_UPS)}")
        if blend not in BLENDS:
            raise InferenceError(f"unknown blend {blend!r}; valid: {', '.join(BLENDS)}")
        if not 0 <= overlap < 1:
            raise InferenceError(f"overlap must be in [0, 1), got {overlap}")
        if batch_size < 1:
            raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 < threshold < 1:
            raise InferenceError(f"threshold must be in (0, 1), got {threshold}")
        self.blend_mode, self.overlap, self.batch_size, self.threshold = blend, overlap, batch_size, threshold
        self.pad_border = pad_border
        self.tta = parse_tta(tta)
        self.stride = math.lcm(*(member_stride(m) for m in self.members))
        self.tile = self._tile(tile_size)
        self._backends = [
            build_backend(
                m, backend, self.device, self.precision, self.channels_last, fold_bn, self.stride, warm_up=warm_up
            )
            for m in self.members
        ]
        # distinct preprocessings, and which input each member reads
        self._preps: list[Preprocessing] = []
        self._input_of: list[int] = []
        for m in self.members:
            if m.preprocessing not in self._preps:
                self._preps.append(m.preprocessing)
            self._input_of.append(self._preps.index(m.preprocessing))
        self.resize = resize_size(self.members)
        bounds = np.cumsum([0] + [p.channels for p in self._preps])
        self._slices = [slice(int(bounds[i]), int(bounds[i + 1])) for i in self._input_of]

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        spec: ModelSpec,
        classmap: ClassMap,
        preprocessing: Preprocessing | None = None,
        **options: Any,
    ) -> Predictor:
        """A Predictor for an in-memory model (no checkpoint file needed)."""
        return cls(Member(model, spec, classmap, preprocessing or Preprocessing()), **options)

    @property
    def task(self) -> str:
        return self.classmap.task

    @property
    def backends(self) -> list[str]:
        """What runs each member now ("torch" or "onnxruntime"; a background warm-up switches it)."""
        return [b.name for b in self._backends]

    @property
    def folded(self) -> list[bool]:
        return [b.folded for b in self._backends]

    def wait_backends(self, timeout: float | None = None) -> bool:
        """True when every background warm-up has ended (switched or not) within ``timeout`` seconds."""
        return all(b.wait(timeout) for b in self._backends if hasattr(b, "wait"))

    def close(self) -> None:
        """Stop switching backends: an export under way finishes into the cache but no session is built."""
        for b in self._backends:
            if hasattr(b, "close"):
                b.close()

    def _tile(self, tile_size: int | tuple[int, int] | None) -> tuple[int, int]:
        if tile_size is not None:
            t = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(int(v) for v in tile_size)
            plan_tiles(1, 1, t, self.overlap, self.stride)  # validates against the stride
            return t
        size = self.members[0].preprocessing.input_size or (DEFAULT_TILE, DEFAULT_TILE)
        # a training size that is not a multiple of the stride is rounded up to one
        return tuple(-(-int(s) // self.stride) * self.stride for s in size)

    # ------------------------------------------------------------------ running
    @property
    def volume_model(self) -> bool:
        """True when a member was trained on volume slices (2.5-D neighbours or one window per scan)."""
        return any(p.slices > 1 or p.scope == "volume" for p in self._preps)

    def _inputs(self, image: ImageData | np.ndarray) -> tuple[torch.Tensor, list[str]]:
        """(1, sum of the distinct preprocessings' channels, H, W) on the device, and the windows used."""
        if self.volume_model:  # a 2-D image given to a model of volume slices is a volume of one slice
            a, _, meta = as_2d(image)
            vol = VolumeInput(ImageData(a[None], (1.0, *getattr(image, "spacing", (1.0, 1.0))), meta), self._preps)
            return self.device_batch(vol.batch([0])), vol.described()
        arrays, windows = [], []
        for prep in self._preps:
            x, window = model_input(image, prep)
            arrays.append(x)
            windows.append(window)
        x = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        return self.device_batch(x[None]), windows

    def device_batch(self, x: np.ndarray) -> torch.Tensor:
        """Prepared inputs (B, C, H, W) resized to the training size where the models want it, on the device."""
        if self.resize is not None:
            x = np.stack([np.moveaxis(resize_image(np.moveaxis(b, 0, -1), self.resize), -1, 0) for b in x])
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def blend(self, x: torch.Tensor, original: tuple[int, int], timer: list[float]):
        """The sliding window over prepared inputs ``x`` (B, C, h, w) as a generator of (batches done, of all);
        returns every member's probabilities (B, members * K, H, W) at the ``original`` size. ``timer[0]``
        gathers the forward time."""

        def timed(tiles: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            out = self.forward_tiles(tiles)
            timer[0] += time.perf_counter() - t0
            return out

        blended = yield from iter_sliding_window(
            x, timed, self.tile, self.overlap, self.blend_mode, self.batch_size, self.stride, self.pad_border
        )
        if self.resize is not None and tuple(original) != tuple(x.shape[-2:]):
            blended = torch.nn.functional.interpolate(
                blended, size=tuple(original), mode="bilinear", align_corners=False
            )
        return blended

    def forward_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """Probabilities of every member, (N, members * C, h, w) float32, for a batch of prepared tiles
        (N, input channels, h, w) on the device: the function the sliding window runs."""
        task, classes = self.task, self.classmap.num_classes
        outs = []
        for member, run_net, sl in zip(self.members, self._backends, self._slices):
            x = tiles[:, sl]
            for t in self.tta:
                logits = run_net(t.forward(x))
                if logits.ndim != 4 or logits.shape[1] != classes:
                    raise InferenceError(
                        f"model {member.name or member.spec.arch} returned shape "
                        f"{tuple(logits.shape)}; expected (N, {classes}, H, W)"
                    )
                outs.append(t.inverse(activation(logits, task)))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def iter_predict(self, image: ImageData | np.ndarray, cancel: CancelToken | None = None) -> Job:
        """The prediction of one 2-D image as a job (:mod:`medseg.jobs`): ``Started``, a ``Progress`` (stage
        "tiles") after every tile batch, then ``Result(prediction)``; when ``cancel`` is set it stops after
        the current batch and yields ``Cancelled`` last (it never raises for a cancel, so a plain loop over
        it, e.g. in a thread worker, sees how it ended)."""
        t_start = time.perf_counter()
        if cancel is not None and cancel.is_set():
            yield _cancelled(0, 0)
            return
        original = as_2d(image)[0].shape[:2]
        x, windows = self._inputs(image)
        yield from self._iter_blended(x, original, windows, t_start, cancel)

    def _iter_blended(
        self, x: torch.Tensor, original: tuple[int, int], windows: list[str], t_start: float, cancel
    ) -> Job:
        """The job of one prepared input ``x`` (1, C, h, w): see :meth:`iter_predict`."""
        t_prep = time.perf_counter() - t_start
        timer = [0.0]
        h, w = x.shape[-2:]
        plan = plan_tiles(h, w, self.tile, self.overlap, self.stride, self.pad_border)
        total = 1 if plan.whole else -(-len(plan.windows) // self.batch_size)
        yield Started("predict", total, {"shape": [int(h), int(w)], "tiles": len(plan.windows)})
        gen = self.blend(x, original, timer)
        done = 0
        t_loop = time.perf_counter()
        try:
            while True:
                try:
                    done, total = next(gen)
                except StopIteration as stop:
                    blended = stop.value
                    break
                if cancel is not None and cancel.is_set():
                    yield _cancelled(done, total)
                    return
                yield Progress(done, total, "tiles")
                if cancel is not None and cancel.is_set():
                    yield _cancelled(done, total)
                    return
        finally:
            gen.close()
        t_post0 = time.perf_counter()
        meta = {
            "device": str(self.device),
            "precision": self.precision,
            "tile": list(self.tile),
            "tiles": len(plan.windows),
            "whole_image": plan.whole,
            "batches": total,
            "resized_to": list(self.resize) if self.resize is not None else None,
            "tta": [t.name for t in self.tta[1:]],
            "models": len(self.members),
            "members": len(self.members) * len(self.tta),
            "window": windows[0] if len(windows) == 1 else windows,
            "blend": self.blend_mode,
            "overlap": self.overlap,
            "threshold": self.threshold,
            "backend": self.backends[0] if len(set(self.backends)) == 1 else self.backends,
            "channels_last": self.channels_last,
            "bn_folded": self.folded,
            "time_preprocess_s": t_prep,
            "time_forward_s": timer[0],
            "time_blend_s": t_post0 - t_loop - timer[0],  # the resize back included
        }
        prediction = self.finish(blended[0], meta)
        meta["time_postprocess_s"] = time.perf_counter() - t_post0
        meta["time_s"] = time.perf_counter() - t_start
        yield Result(prediction)

    def finish(self, blended: torch.Tensor, meta: dict[str, Any]) -> Prediction:
        """The Prediction of one input's blended member probabilities (members * K, H, W)."""
        c = self.classmap.num_classes
        members = blended.view(-1, c, *blended.shape[-2:])
        probs = members[0] if members.shape[0] == 1 else members.mean(0)
        variance = member_variance(members).cpu().numpy() if members.shape[0] > 1 else None
        return Prediction(
            labels=labels_from_probs(probs, self.classmap, self.threshold),
            probs=np.ascontiguousarray(probs.cpu().numpy(), dtype=np.float32),
            uncertainty=predictive_entropy(probs, self.task).cpu().numpy(),
            variance=variance,
            classmap=self.classmap,
            meta=meta,
        )

    def predict(self, image: ImageData | np.ndarray, cancel: CancelToken | None = None) -> Prediction:
        """The Prediction for one 2-D image; raises :class:`~medseg.errors.Cancelled` if ``cancel`` is set."""
        as_2d(image)  # fail on a volume before any work
        return run(self.iter_predict(image, cancel))

    def iter_predict_slice(self, volume: Any, z: int, cancel: CancelToken | None = None) -> Job:
        """:meth:`iter_predict` for slice ``z`` of a volume (Z, Y, X): an array, a 3-D ImageData, a lazy
        VolumeSource, or a ``VolumeInput`` from :meth:`volume_input` (reused, its windows are not read again:
        live prediction as the slice changes). A 2.5-D model sees the slice with its neighbours."""
        t_start = time.perf_counter()
        if cancel is not None and cancel.is_set():
            yield _cancelled(0, 0)
            return
        vol = self.volume_input(volume)
        x = self.device_batch(vol.batch([z]))
        yield from self._iter_blended(x, vol.shape[1:], vol.described(), t_start, cancel)

    def predict_slice(self, volume: Any, z: int, cancel: CancelToken | None = None) -> Prediction:
        """The Prediction of slice ``z`` of a volume (see :meth:`iter_predict_slice`)."""
        return run(self.iter_predict_slice(volume, z, cancel))

    def volume_input(self, volume: Any) -> VolumeInput:
        """``volume`` prepared for this predictor's members (windows read once per volume)."""
        if isinstance(volume, VolumeInput) and volume.preps == self._preps:
            return volume
        return VolumeInput(volume.reader if isinstance(volume, VolumeInput) else volume, self._preps)


def _cancelled(done: int, total: int) -> Cancelled:
    return Cancelled(f"prediction cancelled after {done} of {total} tile batches", done=done, total=total)
