"""Dataset layouts, class maps and group-aware splits."""

from medseg.datasets.classmap import ClassMap, LabelClass
from medseg.datasets.dataset import PROBLEM_KINDS, Dataset, Problem, Sample
from medseg.datasets.groups import fixed_blocks, frame_blocks, stem_groups
from medseg.datasets.layouts import (
    GROUP_BY,
    LAYOUTS,
    detect_layout,
    is_dataset_folder,
    open_dataset,
)
from medseg.datasets.split import kfold_by_group, split_by_group

__all__ = [
    "GROUP_BY",
    "LAYOUTS",
    "PROBLEM_KINDS",
    "ClassMap",
    "Dataset",
    "LabelClass",
    "Problem",
    "Sample",
    "detect_layout",
    "fixed_blocks",
    "frame_blocks",
    "is_dataset_folder",
    "kfold_by_group",
    "open_dataset",
    "split_by_group",
    "stem_groups",
]
