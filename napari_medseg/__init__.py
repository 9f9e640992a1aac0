"""napari plugin of napari-medseg: a thin layer of readers, samples and widgets over the medseg engine."""
