"""Image checks: too dark, over-exposed, blurred.

Every image is reduced to a grey 0..1 picture: luminance (ITU-R 601
weights) for colour, the central slice for volumes. 8-bit images are divided
by 255; deeper images (CT, MR, 16-bit X-ray) have no fixed display range, so
they are windowed to their own 0.5..99.5 percentiles and the exposure checks
skip them (only blur, which is relative, is judged).

Dark surround: endoscopes, fundus cameras, ultrasound and collimated X-rays
show a black (or near-black) frame around the field of view. When the median
of the image's outermost pixels is below 0.2, the surround is the pixels no
brighter than that median + 0.06 that connect to the border, provided it is
flat (std <= 0.03) or clearly darker than the rest (by >= 0.15); exposure and
sharpness are measured on the rest. (A surround covering over 90 % of the
image, or one that fails both tests, means the picture itself is dark near
its edges: then the whole image is measured.)

* ``too_dark``: mean field-of-view brightness < ``max_mean`` (warning),
  < ``blank_mean`` (error: a blank frame).
* ``over_exposed``: over ``max_saturated`` of the field of view at or above
  ``saturated_level``, or mean > ``max_mean`` (warning); mean above
  ``blank_mean`` (error: a blank white frame).
* ``blurred``: variance of the Laplacian of the grey image (downscaled so its
  longer side is at most 512 px, inside the field of view shrunk by 2 px so
  the surround's edge does not count) below ``max_ratio`` times the dataset's
  median. Sharpness in absolute terms depends on the scene, the optics and the
  resolution; relative to the dataset's own median it does not, so one
  threshold serves endoscopy and X-ray alike. Needs ``min_samples`` measured
  images; fewer and nothing is judged.
"""

from __future__ import annotations

import numpy as np

from medseg.qc.checks_base import Check, SampleView
from medseg.qc.checks_masks import border_labels
from medseg.qc.edge_maps import eroded
from medseg.qc.findings import Finding

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_SHARPNESS_SIDE = 512


def grey(v: SampleView) -> tuple[np.ndarray, bool] | None:
    """(grey 0..1 float32, is_8bit), or None without an image."""

    def make():
        a = v.image
        if a is None or a.size == 0:
            return None
        if v.rgb:
            a = a[..., :3]
        spatial = a.ndim - (1 if v.rgb else 0)
        if spatial == 3:
            a = a[a.shape[0] // 2]
        eight_bit = a.dtype in (np.uint8, np.bool_)
        if v.rgb:
            g = a.astype(np.float32) @ _LUMA
        else:
            g = a.astype(np.float32)
        if eight_bit:
            g = g / (1.0 if a.dtype == np.bool_ else 255.0)
        else:
            finite = g[np.isfinite(g)]
            lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
            g = np.clip((np.nan_to_num(g, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)
        return g, eight_bit

    return v.cached("grey", make)


def surround(g: np.ndarray) -> np.ndarray:
    """The dark frame around the field of view (bool), empty when there is none."""
    from scipy import ndimage as ndi

    edge = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    level = float(np.median(edge))
    if level >= 0.2:
        return np.zeros(g.shape, bool)
    labels, _ = ndi.label(g <= level + 0.06)
    frame = np.isin(labels, border_labels(labels))
    none = np.zeros(g.shape, bool)
    if not frame.any() or frame.mean() > 0.9:
        return none
    # A device's frame is flat (CVC-ClinicDB: std <= 0.022) or far darker than the picture (>= 0.21 darker);
    # a photo that is merely dark near its edges is neither, and is measured whole.
    if g[frame].std() > 0.03 and g[~frame].mean() - level < 0.15:
        return none
    return frame


def field_of_view(v: SampleView) -> np.ndarray | None:
    def make():
        gb = grey(v)
        return None if gb is None else ~surround(gb[0])

    return v.cached("fov", make)


def _exposure(v: SampleView, level: float) -> tuple[float, float] | None:
    gb = grey(v)
    if gb is None or not gb[1]:
        return None

    def make():  # too_dark and over_exposed both look at the field of view's grey values and their mean
        values = gb[0][field_of_view(v)]
        return values, float(values.mean()) if values.size else 0.0

    values, mean = v.cached("fov-grey", make)
    if values.size == 0:
        return None
    return mean, float((values >= level).mean())


def check_too_dark(v: SampleView, p: dict) -> list[Finding]:
    e = _exposure(v, 1.0)
    if e is None or e[0] >= p["max_mean"]:
        return []
    mean = e[0]
    blank = mean < p["blank_mean"]
    msg = f"mean brightness {mean:.3f} of 1 in the field of view (limit {p['max_mean']:g})" + (
        ": nearly black, a blank or failed frame" if blank else ": underexposed, detail is hard to see"
    )
    return [Finding(v.id, "too_dark", "error" if blank else "warning", msg, value=mean, path=v.image_path)]


def check_over_exposed(v: SampleView, p: dict) -> list[Finding]:
    e = _exposure(v, p["saturated_level"])
    if e is None:
        return []
    mean, saturated = e
    if saturated <= p["max_saturated"] and mean <= p["max_mean"]:
        return []
    blank = mean > p["blank_mean"]
    msg = (
        f"{saturated:.1%} of the field of view is saturated (>= {p['saturated_level']:g}) and the mean "
        f"brightness is {mean:.3f} of 1" + (": a blank white frame" if blank else ": overexposed, detail lost")
    )
    return [
        Finding(
            v.id,
            "over_exposed",
            "error" if blank else "warning",
            msg,
            value=saturated,
            path=v.image_path,
            details={"mean": mean},
        )
    ]


def sharpness(v: SampleView) -> float | None:
    """Variance of the Laplacian inside the field of view (the measure ``blurred`` decides on)."""
    from PIL import Image
    from scipy import ndimage as ndi

    gb = grey(v)
    if gb is None:
        return None
    g, fov = gb[0], field_of_view(v)
    if max(g.shape) > _SHARPNESS_SIDE:
        scale = _SHARPNESS_SIDE / max(g.shape)
        size = (max(1, round(g.shape[1] * scale)), max(1, round(g.shape[0] * scale)))
        g = np.asarray(Image.fromarray(g, mode="F").resize(size, Image.Resampling.BOX))
        fov = np.asarray(Image.fromarray(fov).resize(size, Image.Resampling.NEAREST))
    core = eroded(eroded(fov))  # ndi.binary_erosion(fov, iterations=2)
    if core.sum() < 100:
        return None
    return float(ndi.laplace(g)[core].var())


def decide_blurred(table: dict, ctx, p: dict) -> list[Finding]:
    values = {sid: s for sid, s in table["sharpness"].items() if s is not None}
    if len(values) < p["min_samples"]:
        return []
    median = float(np.median(list(values.values())))
    if median <= 0:
        return []
    out = []
    for sid in ctx.sample_ids:
        if sid not in values:
            continue
        ratio = values[sid] / median
        if ratio < p["max_ratio"]:
            out.append(
                Finding(
                    sid,
                    "blurred",
                    "warning",
                    f"edge sharpness (variance of the Laplacian {values[sid]:.3g}) is {ratio:.2f}x the dataset median "
                    f"{median:.3g} (limit {p['max_ratio']:g}x): motion blur or out of focus",
                    value=ratio,
                    path=ctx.paths.get(sid),
                    details={"sharpness": values[sid], "median": median},
                )
            )
    return out


CHECKS = (
    Check(
        "too_dark",
        "sample",
        "images whose field of view is too dark (8-bit images)",
        {"max_mean": 0.15, "blank_mean": 0.03},
        run=check_too_dark,
    ),
    Check(
        "over_exposed",
        "sample",
        "images with a saturated or too bright field of view (8-bit images)",
        {"saturated_level": 0.98, "max_saturated": 0.2, "max_mean": 0.85, "blank_mean": 0.97},
        run=check_over_exposed,
    ),
    Check(
        "blurred",
        "dataset",
        "images much less sharp than the dataset's median",
        {"max_ratio": 0.25, "min_samples": 5},
        needs=("sharpness",),
        decide=decide_blurred,
    ),
)
