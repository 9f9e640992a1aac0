"""UW-Madison GI Tract slice file names: ``slice_0001_266_266_1.50_1.50.png``.

The Kaggle release encodes, after the slice number, the slice width and height
in pixels and then the pixel spacing along the width and the height in mm. The
order is width before height: a 360 x 310 image is ``slice_0001_360_310_1.50_1.50.png``
and has 310 rows.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

_NAME = re.compile(
    r"^slice_(?P<slice>\d+)_(?P<width>\d+)_(?P<height>\d+)"
    r"_(?P<sx>\d+(?:\.\d+)?)_(?P<sy>\d+(?:\.\d+)?)\.png$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class UWSliceName:
    """What a UW-Madison slice file name says; spacing in mm per pixel."""

    slice: int
    height: int
    width: int
    spacing_row: float
    spacing_col: float

    def to_dict(self) -> dict:
        return asdict(self)


def parse_uw_slice_name(name: str | Path) -> UWSliceName | None:
    """Parse a UW-Madison slice file name (a bare name or a path); None if it is not one.

    Names with a zero size or a non-positive spacing are not slice names either.
    """
    m = _NAME.match(Path(name).name)
    if m is None:
        return None
    width, height = int(m["width"]), int(m["height"])
    spacing_col, spacing_row = float(m["sx"]), float(m["sy"])
    if width == 0 or height == 0 or spacing_col <= 0 or spacing_row <= 0:
        return None
    return UWSliceName(int(m["slice"]), height, width, spacing_row, spacing_col)
