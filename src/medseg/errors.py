"""Exceptions raised by the engine.

Every error about a file names the file and the cause, so the GUI and the CLI
can show it as it is without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# what the CLI prints after the traceback of an unexpected exception (exit code 1)
BUG_LINE = (
    "this is a bug in napari-medseg, not a problem with your data or command: please report it on the "
    "project's issue tracker with the traceback above"
)


def one_line(e: BaseException, path: Path | None = None) -> str:
    """A clean error as one line naming its file: MedsegErrors name theirs; an OSError names its filename
    (or ``path``). What the CLI prints after "error: " and what a job's skip message gives as the reason."""
    if isinstance(e, OSError) and not isinstance(e, MedsegError):
        where = e.filename or path
        text = f"{where}: {e.strerror or e}" if where else str(e)
    else:
        text = str(e)
    return " ".join(text.split()) if "\n" not in text.strip() else text.strip()


class MedsegError(Exception):
    """Base class of every error the engine raises on purpose.

    Its message is written for the user (it names the file, option or sample and
    what is wrong); ``exit_code`` is the status the CLI exits with: 2 for every
    error about the input or the request, unless a subclass says otherwise.
    """

    exit_code: int = 2
    #: the request's option that allows what this error refused ("overwrite"), None for most. The message
    #: says how to give it in the CLI's words (:data:`OPTION_WORDS`); a GUI says it in its own (:meth:`worded`).
    option: str | None = None

    def __init__(self, *args: object, option: str | None = None):
        super().__init__(*args)
        if option is not None:
            self.option = option

    def worded(self, words: dict[str, str]) -> str:
        """The message with its option said in ``words`` ({option: how}, e.g. {"overwrite": "tick 'Replace a
        previous export'"}) instead of the CLI's; the message itself when it names none of them."""
        text = str(self)
        said = OPTION_WORDS.get(self.option or "")
        if said and self.option in words:
            text = text.replace(said, words[self.option])
        return text


# How a message says to give an option (the CLI's words): "choose another folder, or use --overwrite to
# replace it" reads right with "tick 'Replace a previous export'" in its place in the GUI.
OPTION_WORDS = {"overwrite": "use --overwrite"}


class ReadError(MedsegError, ValueError):
    """A file or folder could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFormatError(ReadError):
    """No reader takes this file (unknown suffix and unrecognised content)."""


class NotASliceError(UnsupportedFormatError):
    """A volume (several slices or frames) where a 2-D image was expected, e.g. in a 2-D dataset layout."""


class MaskError(ReadError):
    """A mask file is readable but does not fit (size, values, class map)."""


class InferenceError(MedsegError, ValueError):
    """Inference cannot run as asked: unavailable device, bad tile size, ensemble members that disagree."""


class Cancelled(MedsegError):
    """A job stopped because its :class:`medseg.jobs.CancelToken` was set (exit code 130, like Ctrl-C).

    The one cancellation outcome of every long job: a job raises it (``token.check(...)``) or yields it as
    its last event; :func:`medseg.jobs.drive` turns a raised one into that last event. ``done``/``total``
    say how far the job got; ``partial`` holds what the job kept (e.g. the scores of the folds that ran).
    """

    exit_code = 130
    kind = "cancelled"  # its name among a job's events (medseg.jobs), like Event.kind

    def __init__(
        self, message: str = "cancelled", done: int | None = None, total: int | None = None, partial: object = None
    ):
        super().__init__(message)
        self.done, self.total, self.partial = done, total, partial


class CheckpointError(ReadError):
    """A checkpoint is missing, malformed, tampered with, or in an unsafe (pickle) format."""


class UnknownNameError(MedsegError, ValueError):
    """An architecture, encoder, weights or option name that does not exist.

    ``kind`` says what was looked up, ``name`` what was asked for, ``valid``
    what exists; the message lists close matches first (difflib), then the
    valid names (at most ``max_listed`` of them).
    """

    def __init__(self, kind: str, name: str, valid: list[str], hint: str = "", max_listed: int = 80):
        import difflib

        self.kind, self.name, self.valid = kind, name, list(valid)
        lowered = {v.lower(): v for v in self.valid}
        close = difflib.get_close_matches(str(name).lower(), list(lowered), n=5, cutoff=0.5)
        self.suggestions = [lowered[m] for m in close]
        msg = f"unknown {kind} {name!r}"
        if self.suggestions:
            msg += f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        rest = [v for v in self.valid if v not in self.suggestions]
        shown = ", ".join(rest[:max_listed])
        more = f", ... ({len(rest) - max_listed} more)" if len(rest) > max_listed else ""
        # after suggestions, "Valid:" alone would read as if the suggestion were not valid
        msg += f" {'Other valid names' if self.suggestions else 'Valid'}: {shown}{more}."
        if hint:
            msg += f" {hint}"
        super().__init__(msg)


class WeightsUnavailableError(MedsegError):
    """Pretrained encoder weights were asked for but cannot be had (offline, no network, download failed).

    The message names the encoder and the weights, says why, and how to give
    a local file instead.
    """

    def __init__(self, encoder: str, weights: str, reason: str):
        self.encoder, self.weights, self.reason = encoder, weights, reason
        super().__init__(
            f"pretrained weights {weights!r} for encoder {encoder!r} are not available: {reason}. "
            f'Give a local file instead: ModelSpec(encoder_weights="/path/to/{encoder}.safetensors") '
            "(a .safetensors file, a .pth/.pt state dict, or a folder holding one), download them once "
            "on a machine with internet access (huggingface_hub caches them), "
            "or use encoder_weights=None to start from random weights."
        )


class AugmentationError(MedsegError, ValueError):
    """An augmentation pipeline cannot be built or cannot take this sample.

    Raised for a bad argument of a named transform (the message names the step,
    the transform and the argument), a transform that would move the image but
    not the mask, or an image type an intensity transform would silently clip.
    """


class MissingDistanceMapsError(MedsegError, ValueError):
    """A loss term needs the batch's signed distance maps (boundary loss) but none were given.

    The fix is in the data pipeline: add ``medseg.training.distance_maps.DistanceMaps``
    after the augmentations and pass the maps as ``dist_maps=``.
    """


class OnnxExportError(MedsegError, ValueError):
    """torch's ONNX exporter cannot express this model as asked (e.g. adaptive pooling with dynamic sizes)."""


class ExportError(MedsegError, ValueError):
    """An export cannot be written as asked: an unsafe output folder, a mask that does not fit the
    target format, or samples whose files changed; the message names the folder or the samples."""


class WorkspaceError(MedsegError, ValueError):
    """A workspace cannot be created, opened or changed as asked (inside the dataset, not a workspace,
    unknown sample or revision, a status without its reason, a mask that does not fit the class map)."""


class RankingError(MedsegError, ValueError):
    """Label-quality ranking cannot run as asked: too few groups for the folds, a checkpoint whose class
    map does not fit the workspace, or a fold's training that failed (the message names which)."""


class EvaluationError(MedsegError, ValueError):
    """An evaluation cannot run as asked: a checkpoint whose classes are not the data's, a split the
    checkpoint does not record, or no sample left to evaluate (the message names the file or option)."""


class FixError(MedsegError, ValueError):
    """A QC fix cannot apply to this mask (wrong task, wrong shape, unknown parameter)."""


class QCParamError(MedsegError, ValueError):
    """A QC parameter has the wrong type or an impossible value."""


class ConfigError(MedsegError, ValueError):
    """An invalid training configuration; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f"{source}: " if source else ""
        super().__init__(
            f"{where}invalid training config ({len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}):\n" + "\n".join(f"  - {p}" for p in problems)
        )


class DatasetError(MedsegError, ValueError):
    """A dataset folder cannot be opened as asked: an unknown layout, grouping or group pattern."""


class UnknownLayoutError(UnknownNameError, DatasetError):
    """``layout=`` (``--layout``) names no registered dataset layout; the message lists the valid ones."""

    def __init__(self, name: str, valid: list[str]):
        super().__init__("layout", name, valid, hint="Leave the layout out to detect it from the folder.")


class DestinationError(MedsegError, ValueError):
    """A write was refused: the destination is inside (or is, or holds) a dataset's source files or a
    workspace's internals, or would replace a file medseg did not write (or that changed since).

    ``destination`` is where the write was asked to go, ``protected`` the path it would have harmed;
    the message names both and says where to write instead.
    """

    def __init__(
        self, message: str, destination: str | Path, protected: str | Path | None = None, option: str | None = None
    ):
        self.destination = Path(destination)
        self.protected = Path(protected) if protected is not None else None
        super().__init__(message, option=option)


class TrainingFailed(MedsegError):
    """A training child process ended with an error: its ``Failed`` event (``failed``: message, type,
    exit code, the tail of its log) raised where the run is followed in-process, so a follower ends like
    any job that failed. The run's last good checkpoint stays."""

    def __init__(self, failed: Any):
        self.failed = failed
        super().__init__(failed.message)


class RunFolderError(MedsegError, ValueError):
    """A training run folder cannot be read as asked: a path that holds no run (no metrics.csv, no
    checkpoint), or a run file that is damaged (the message names the file and the line)."""


class MetricsDamaged(RunFolderError):
    """A run's ``metrics.csv`` with damaged lines (cut off, a cell missing or not a number): the message
    names the file and each line; ``rows`` are the whole rows, which are still usable."""

    def __init__(self, message: str, rows: list[dict]):
        super().__init__(message)
        self.rows = rows


class DamagedValue(ValueError):
    """A DICOM header value that is not what its VR promises ('abc' as a decimal string).

    Internal to the DICOM readers, which turn it into a ReadError naming the file; it never reaches
    a caller, so it is no MedsegError."""
