"""Plain, JSON-serialisable descriptions of a model and of its input pipeline.

A checkpoint stores both, so inference rebuilds exactly the network and the
preprocessing that training used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TASKS = ("binary", "multiclass", "multilabel")
SCOPES = ("image", "volume")
AUX_HEADS = ("presence", "segmentation")
EQUALIZE_METHODS = ("histeq", "clahe")
# skimage.exposure's defaults: clip_limit is a fraction of a tile's pixels, kernel_size None is 1/8 of each side
_EQUALIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    "histeq": {"nbins": 256},
    "clahe": {"clip_limit": 0.01, "kernel_size": None, "nbins": 256},
}


@dataclass
class ModelSpec:
    """What to build.

    ``arch``: a registry name (smp's "Unet", "UnetPlusPlus", "FPN", ... or the
    project's own "ResAttUNet", "DilatedUNet", "PlainUNet"). ``encoder``: an smp
    encoder name ("resnet34", "efficientnet-b0", "tu-..."); ignored by the own
    architectures. ``classes``: output channels (1 for binary, N+1 for
    multiclass with background, N for multilabel: use ``ClassMap.num_classes``).
    ``encoder_weights``: None, "imagenet" (hub; fails fast offline) or a local
    file/folder path. ``aux``: an auxiliary head trained beside the masks and
    unused at inference (``medseg.models.aux_head``): False (none), True or
    "presence" (smp's classifier of which classes the image holds), or
    "segmentation" (PSPNet's deep supervision: masks predicted from an
    earlier encoder stage; smp architectures only).
    ``kwargs``: extra constructor arguments (depth, widths, dropout, ...).
    """

    arch: str = "Unet"
    encoder: str = "resnet34"
    in_channels: int = 3
    classes: int = 1
    task: str = "binary"
    encoder_weights: str | None = None
    aux: bool | str = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.aux, bool) and self.aux not in AUX_HEADS:
            raise ValueError(f"aux must be true, false or one of {', '.join(AUX_HEADS)}, got {self.aux!r}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        if self.in_channels < 1 or self.classes < 1:
            raise ValueError(f"in_channels and classes must be >= 1, got {self.in_channels}, {self.classes}")
        if self.task == "binary" and self.classes != 1:
            raise ValueError(f"a binary model has 1 output channel, got classes={self.classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def aux_head(self) -> str | None:
        """None, "presence" or "segmentation" (``aux=True`` is the presence head checkpoints always had)."""
        if self.aux is False:
            return None
        return "presence" if self.aux is True else str(self.aux)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(**_known_fields(cls, d, "model spec"))


@dataclass
class Preprocessing:
    """How an ImageData becomes the network's input tensor, and back.

    ``channels``: 1 or 3 (grey repeated / RGBA alpha dropped, see
    ``medseg.io.normalise.to_model_input``). ``window``: None (scale by dtype
    range), "percentile" (1..99 %), or [center, width] (CT/DICOM window).
    ``mean``/``std``: per-channel normalisation after scaling to [0, 1].
    ``input_size``: [h, w] the model was trained at (tile size for sliding
    window), or None. ``divisible_by``: the network's stride constraint.
    ``resize``: the model was trained on whole images resized to
    ``input_size``, so inference resizes each image to it and the
    probabilities back (else it tiles at the image's own scale).
    ``slices``: 2.5-D when > 1 (odd): a volume's slice and its neighbours,
    ``slices`` of them centred on it, are the input channels (``channels``
    equals it). ``scope``: where "percentile" / None window statistics come
    from: "image" (each 2-D input on its own) or "volume" (the whole scan, so
    every slice of one volume gets one mapping; see
    ``medseg.inference.volume_input``). ``equalize``: None, or histogram
    equalisation of each [0, 1] channel after the window and before mean /
    std, at the image's own size (before any resize): {"method": "histeq",
    "nbins"} or {"method": "clahe", "clip_limit", "kernel_size", "nbins"}
    (skimage.exposure's parameters); "histeq" / "clahe" alone mean their
    defaults (see ``equalize_settings``).
    """

    channels: int = 3
    window: Any = None
    mean: list[float] | None = None
    std: list[float] | None = None
    input_size: list[int] | None = None
    divisible_by: int = 32
    resize: bool = False
    slices: int = 1
    scope: str = "image"
    equalize: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.equalize = equalize_settings(self.equalize)
        if self.scope not in SCOPES:
            raise ValueError(f"preprocessing scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if not isinstance(self.slices, int) or self.slices < 1 or self.slices % 2 == 0:
            raise ValueError(f"preprocessing slices must be an odd number >= 1 (centred on a slice), got {self.slices}")
        if self.slices > 1 and self.channels != self.slices:
            raise ValueError(
                f"{self.slices} neighbouring slices make {self.slices} input channels, not {self.channels}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(**_known_fields(cls, d, "preprocessing"))


def equalize_settings(value: Any) -> dict[str, Any] | None:
    """A ``Preprocessing.equalize`` value in its full form (every parameter named), or ValueError saying why.

    Takes None, "histeq", "clahe" or a mapping with "method" and any of that
    method's parameters.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, dict):
        raise ValueError(f'equalize must be null, "histeq", "clahe" or a mapping with a method, got {value!r}')
    method = value.get("method")
    if method not in EQUALIZE_METHODS:
        raise ValueError(f"equalize method must be one of {', '.join(EQUALIZE_METHODS)}, got {method!r}")
    allowed = _EQUALIZE_DEFAULTS[method]
    unknown = sorted(set(value) - set(allowed) - {"method"})
    if unknown:
        raise ValueError(f"equalize {method} takes {', '.join(allowed)}; unknown: {', '.join(map(str, unknown))}")
    out = {"method": method, **allowed, **{k: v for k, v in value.items() if k != "method"}}
    nbins = out["nbins"]
    if isinstance(nbins, bool) or not isinstance(nbins, int) or nbins < 2:
        raise ValueError(f"equalize nbins must be an integer >= 2, got {nbins!r}")
    if method == "clahe":
        clip = out["clip_limit"]
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip <= 1:
            raise ValueError(f"equalize clip_limit must be a number in (0, 1], got {clip!r}")
        out["clip_limit"] = float(clip)
        kernel = out["kernel_size"]
        sizes = [kernel] if isinstance(kernel, int) else kernel
        if kernel is not None and (
            not isinstance(sizes, (list, tuple))
            or len(sizes) not in (1, 2)
            or any(isinstance(k, bool) or not isinstance(k, int) or k < 2 for k in sizes)
        ):
            raise ValueError(f"equalize kernel_size must be null, an integer >= 2 or [rows, cols], got {kernel!r}")
        out["kernel_size"] = None if kernel is None else (int(kernel) if isinstance(kernel, int) else list(kernel))
    return out


def _known_fields(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    """Reject unknown keys rather than drop them: a typo in a config must not pass silently."""
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {what} fields: {', '.join(unknown)}")
    return dict(d)
