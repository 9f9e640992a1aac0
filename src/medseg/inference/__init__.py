"""Predictor: device and precision, sliding-window inference, TTA, ensembles, uncertainty.

``Predictor(checkpoints, device="auto", precision="auto", tile_size=None,
overlap=0.25, blend="gaussian", tta=(), batch_size=4, threshold=0.5,
pad_border=True, channels_last=True, fold_bn=True, backend="auto", warm_up="now")`` takes a
Checkpoint, a checkpoint path, a (model, spec, classmap, preprocessing) tuple or
a list of these (an ensemble). ``predict(image)`` returns a ``Prediction``
(labels, probs, uncertainty, variance, meta); ``iter_predict(image, cancel)``
is the same as a job of :mod:`medseg.jobs` (``Progress`` between tile
batches, then ``Result`` or ``Cancelled``). The tile defaults to the
checkpoint's training input size, else 512; images that fit are inferred whole. Probabilities (not logits) are blended
and averaged. ``backend``: "auto" runs a checkpoint's network in onnxruntime on the CPU
(exported once, cached under ``$MEDSEG_CACHE_DIR/onnx``), PyTorch otherwise;
"torch" or "onnxruntime" to choose (:mod:`medseg.inference.backend`); ``warm_up="background"``
runs PyTorch until the export, done in a thread, is ready (``wait_backends()``, ``close()``).

Volumes: ``predict_slice(volume, z)`` / ``iter_predict_slice`` predict one
slice (with its neighbours for a 2.5-D model), the volume's intensity window
read once (``volume_input(volume)`` keeps it for many slices);
``iter_predict_volume(predictor, volume, cancel=...)`` is the whole volume as a
job (Progress per slice, ``Result(VolumePrediction)``).
"""

from medseg.inference.device import resolve_device, resolve_precision
from medseg.inference.outputs import Prediction
from medseg.inference.predict_volume import VolumePrediction, iter_predict_volume, predict_volume
from medseg.inference.predictor import Member, Predictor
from medseg.inference.sliding import blend_weights, plan_tiles, sliding_window_inference
from medseg.inference.tta import parse_tta
from medseg.inference.uncertainty import member_variance, predictive_entropy
from medseg.inference.volume_input import VolumeInput

__all__ = [
    "Member",
    "Prediction",
    "Predictor",
    "VolumeInput",
    "VolumePrediction",
    "blend_weights",
    "iter_predict_volume",
    "member_variance",
    "parse_tta",
    "plan_tiles",
    "predict_volume",
    "predictive_entropy",
    "resolve_device",
    "resolve_precision",
    "sliding_window_inference",
]
