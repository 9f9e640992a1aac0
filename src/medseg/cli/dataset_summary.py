"""What ``medseg index`` and ``medseg info`` say about an indexed dataset: class lists and volume grids.

Everything here comes from the index (file names and headers): a dataset of
volumes is described without decoding a voxel.
"""

from __future__ import annotations

from typing import Any

from medseg.classmap import ClassMap

# Cases listed one per line in the human output; beyond, a count.
LISTED_CASES = 20


def class_list(classmap: ClassMap) -> str:
    """Class names, each with its id when the ids are not simply 1..N (sparse ids, e.g. up to 117)."""
    if classmap.ids == list(range(1, len(classmap.ids) + 1)):
        return ", ".join(classmap.names)
    return ", ".join(f"{c.name} ({c.id})" for c in classmap.classes)


def volume_rows(dataset) -> list[dict[str, Any]]:
    """One JSON-ready record per volume sample: paths, group and the grid read from the headers."""
    rows = []
    for s in dataset.samples:
        g = s.geometry
        if g is None:
            continue
        rows.append(
            {
                "id": s.id,
                "group": s.group,
                "image": str(s.image_path),
                "label": str(s.mask_paths[1]),
                "shape": list(g.shape),
                "spacing": list(g.spacing),
                "origin": list(g.origin),
                "affine": [list(r) for r in g.affine],
            }
        )
    return rows


def volume_lines(dataset) -> list[str]:
    """Human lines for the volumes of ``dataset`` (none for a 2-D dataset)."""
    rows = volume_rows(dataset)
    if not rows:
        return []
    shapes = sorted({_shape(r["shape"]) for r in rows})
    spacings = sorted({_spacing(r["spacing"]) for r in rows})
    n = len(rows)
    lines = [
        f"{n} volume{'' if n == 1 else 's'} (slice x row x col): {_few(shapes)} voxels; spacing {_few(spacings)} mm"
    ]
    for r in rows[:LISTED_CASES]:
        origin = ", ".join(f"{v:.4g}" for v in r["origin"])
        lines.append(
            f"  {r['id']}: {_shape(r['shape'])}, spacing {_spacing(r['spacing'])} mm, "
            f"first voxel at ({origin}) mm RAS, group {r['group']}"
        )
    if n > LISTED_CASES:
        lines.append(f"  ... and {n - LISTED_CASES} more (--json lists every case)")
    return lines


def _shape(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def _spacing(spacing) -> str:
    return " x ".join(f"{float(v):.4g}" for v in spacing)


def _few(values: list[str], limit: int = 3) -> str:
    return ", ".join(values[:limit]) + (f" (+{len(values) - limit} more)" if len(values) > limit else "")
