"""napari-medseg engine: file formats, datasets, models, training, QC and export. No GUI imports."""

__version__ = "0.1.0"
