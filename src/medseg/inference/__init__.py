"""Predictor: device and precision, sliding-window inference, TTA, ensembles, uncertainty.

``Predictor(checkpoints, device="auto", precision="auto", tile_size=None,
overlap=0.25, blend="gaussian", tta=(), batch_size=4, threshold=0.5,
pad_border=True, channels_last=True, fold_bn=True)`` takes a
Checkpoint, a checkpoint path, a (model, spec, classmap, preprocessing) tuple or
a list of these (an ensemble). ``predict(image)`` returns a ``Prediction``
(labels, probs, uncertainty, variance, meta); ``iter_predict(image, cancel)``
is the same as a job of :mod:`medseg.jobs` (``Progress`` between tile
batches, then ``Result`` or ``Cancelled``). The tile defaults to the
checkpoint's training input size, else 512; images that fit are inferred whole. Probabilities (not logits) are blended
and averaged.
"""

from medseg.inference.device import resolve_device, resolve_precision
from medseg.inference.outputs import Prediction
from medseg.inference.predictor import Member, Predictor
from medseg.inference.sliding import blend_weights, plan_tiles, sliding_window_inference
from medseg.inference.tta import parse_tta
from medseg.inference.uncertainty import member_variance, predictive_entropy

__all__ = [
    "Member",
    "Prediction",
    "Predictor",
    "blend_weights",
    "member_variance",
    "parse_tta",
    "plan_tiles",
    "predictive_entropy",
    "resolve_device",
    "resolve_precision",
    "sliding_window_inference",
]
