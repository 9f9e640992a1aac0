"""Model registry (smp architectures and the seeds' own U-Nets), checkpoint format, ONNX export."""

from medseg.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from medseg.models.checkpoint_import import import_state_dict
from medseg.models.onnx_export import export_onnx
from medseg.models.registry import create_model, list_architectures, list_encoders, model_stride
from medseg.models.spec import ModelSpec, Preprocessing

__all__ = [
    "Checkpoint",
    "export_onnx",
    "import_state_dict",
    "load_checkpoint",
    "save_checkpoint",
    "create_model",
    "list_architectures",
    "list_encoders",
    "model_stride",
    "ModelSpec",
    "Preprocessing",
]
