"""DICOM reading, one import for the package (single files: dicom_file; series folders: dicom_series).

Public API: ``is_dicom_file``, ``read_dicom``, ``read_dicom_series``,
``is_dicom_series_folder``, ``CT_PRESETS``, ``window_presets``.

MONOCHROME1 images (e.g. many CR/DX chest X-rays) store bone dark; they are
returned inverted to the conventional MONOCHROME2 look (bone bright) with
new = (max + min) - value over the range the stored bits allow. Their metadata
then says ``photometric: "MONOCHROME2"``, ``original_photometric:
"MONOCHROME1"``, ``inverted: True``, ``inversion_range: [min, max]``, and the
file's window centres are moved the same way.
"""

from __future__ import annotations

from medseg.io.dicom_file import read_dicom
from medseg.io.dicom_header import is_dicom_file
from medseg.io.dicom_series import is_dicom_series_folder, read_dicom_series
from medseg.io.dicom_window import CT_PRESETS, window_presets

__all__ = [
    "CT_PRESETS",
    "is_dicom_file",
    "is_dicom_series_folder",
    "read_dicom",
    "read_dicom_series",
    "window_presets",
]
