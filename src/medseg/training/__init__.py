"""Training: losses, metrics, augmentation presets and the Trainer (a generator of events)."""

# augmentation (albumentations presets and configs) and batch mixing
from medseg.training.augment import PRESETS as AUGMENT_PRESETS  # noqa: F401 - re-exported under its area's name
from medseg.training.augment import assert_mask_integrity as assert_mask_integrity
from medseg.training.augment import augment as augment
from medseg.training.augment import get_preset as get_preset
from medseg.training.augment import reseed as reseed
from medseg.training.augment import sample_seed as sample_seed
from medseg.training.augment_config import build_augmentation as build_augmentation
from medseg.training.augment_config import pipeline_from_dict as pipeline_from_dict
from medseg.training.augment_config import pipeline_to_dict as pipeline_to_dict
from medseg.training.batch_mix import cutmix as cutmix
from medseg.training.batch_mix import mixed_loss as mixed_loss
from medseg.training.batch_mix import mixup as mixup

# the trainer: data pipeline, optimisation, resumable state, pseudo-labels
from medseg.training.data import EpochBatches as EpochBatches
from medseg.training.data import SegmentationData as SegmentationData

# losses (smp's, by name), distance maps and distance losses, weighted combinations, metrics
from medseg.training.distance_losses import BoundaryLoss as BoundaryLoss
from medseg.training.distance_losses import HausdorffDTLoss as HausdorffDTLoss
from medseg.training.distance_maps import DistanceMaps as DistanceMaps
from medseg.training.distance_maps import class_distance_maps as class_distance_maps
from medseg.training.distance_maps import signed_distance_map as signed_distance_map

# running: torchrun ranks, and a training run in a child process that the GUI follows
from medseg.training.distributed import DistContext as DistContext
from medseg.training.distributed import parameter_digest as parameter_digest
from medseg.training.loss_combo import PRESETS as LOSS_PRESETS  # noqa: F401 - re-exported under its area's name
from medseg.training.loss_combo import CombinedLoss as CombinedLoss
from medseg.training.loss_combo import RebalanceSchedule as RebalanceSchedule
from medseg.training.loss_combo import build_loss_from_config as build_loss_from_config
from medseg.training.losses import build_loss as build_loss
from medseg.training.losses import list_losses as list_losses
from medseg.training.metrics import MetricAccumulator as MetricAccumulator
from medseg.training.metrics import dice_iou as dice_iou
from medseg.training.optim import EpochSchedule as EpochSchedule
from medseg.training.optim import build_optimizer as build_optimizer
from medseg.training.optim import encoder_parameters as encoder_parameters
from medseg.training.pseudo import PseudoLabeler as PseudoLabeler
from medseg.training.runner import TrainingProcess as TrainingProcess
from medseg.training.slices import SliceData as SliceData
from medseg.training.slices import slice_items as slice_items
from medseg.training.surface_metrics import assd as assd
from medseg.training.surface_metrics import hausdorff_distance as hausdorff_distance
from medseg.training.surface_metrics import hd95 as hd95
from medseg.training.trainer import Trainer as Trainer
