"""Class maps live in :mod:`medseg.classmap` (readers below the datasets layer use them too); re-exported here."""

from medseg.classmap import MAX_STORED_ID, TASKS, ClassMap, LabelClass

__all__ = ["MAX_STORED_ID", "TASKS", "ClassMap", "LabelClass"]
