"""Learning curves as PNG: one run's ``curves.png``, and several runs overlaid for ``medseg runs --out``.

Matplotlib draws through its Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never through pyplot,
so no GUI backend is ever chosen and nothing global changes; it is imported here only, when a plot is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Rows = list[dict[str, Any]]


def class_names(rows: Rows, metric: str = "dice") -> list[str]:
    """The classes of ``val_<metric>/<class>`` columns, in the order they first appear."""
    names: list[str] = []
    prefix = f"val_{metric}/"
    for row in rows:
        for key in row:
            if key.startswith(prefix) and key[len(prefix) :] not in names:
                names.append(key[len(prefix) :])
    return names


def series(rows: Rows, column: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of a column, its empty and non-finite cells left out."""
    xs, ys = [], []
    for row in rows:
        value = row.get(column)
        if value is None or not math.isfinite(float(value)) or row.get("epoch") is None:
            continue
        xs.append(float(row["epoch"]))
        ys.append(float(value))
    return xs, ys


def _figure(n_panels: int, title: str, max_cols: int = 3):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cols = min(n_panels, max_cols)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    fig.suptitle(title)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)  # a reader (the Fine-tune dock) never sees half a picture
    return path


def _plot(ax, xs: list[float], ys: list[float], **kw) -> None:
    if xs:
        ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, **kw)


def plot_run(rows: Rows, path: str | Path, title: str = "") -> Path:
    """One run's curves: training and validation loss, validation Dice per class (and the mean), the
    surface distance per class when measured, the learning rate."""
    classes = class_names(rows)
    distances = [m for m in ("hd95", "assd") if class_names(rows, m)]
    # two columns: the picture is also shown scaled down in the narrow Fine-tune dock
    fig, axes = _figure(3 + len(distances), title, max_cols=2)
    loss, dice, lr = axes[0], axes[1], axes[-1]
    _plot(loss, *series(rows, "train_loss"), label="training")
    _plot(loss, *series(rows, "val_loss"), label="validation")
    loss.set_title("loss")
    losses = series(rows, "train_loss")[1] + series(rows, "val_loss")[1]
    if losses and min(losses) > 0 and max(losses) > 20 * min(losses):
        # an early validation loss in the hundreds (batch statistics not settled yet) flattened the
        # training loss into the axis on a linear scale
        loss.set_yscale("log")
        loss.set_title("loss (log scale)")
    for name in classes:
        _plot(dice, *series(rows, f"val_dice/{name}"), label=name)
    if len(classes) > 1:
        _plot(dice, *series(rows, "val_dice"), label="mean", color="black", linestyle="--")
    dice.set_title("validation Dice")
    dice.set_ylim(0.0, 1.0)
    for ax, metric in zip(axes[2:-1], distances):
        for name in class_names(rows, metric):
            _plot(ax, *series(rows, f"val_{metric}/{name}"), label=name)
        ax.set_title(f"validation {metric.upper()} (spacing units)")
    _plot(lr, *series(rows, "lr"), color="grey")
    lr.set_title("learning rate")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, Path(path))


def plot_runs(runs: Sequence[tuple[str, Rows]], path: str | Path, title: str = "runs side by side") -> Path:
    """Several runs overlaid, one colour per run: training loss, validation loss, validation Dice of each
    class (one panel per class, over every run's classes)."""
    classes: list[str] = []
    for _, rows in runs:
        classes += [c for c in class_names(rows) if c not in classes]
    fig, axes = _figure(2 + max(1, len(classes)), title)
    for name, rows in runs:
        colour = None
        for ax, column in zip(axes, ("train_loss", "val_loss")):
            line = ax.plot(*series(rows, column), label=name, color=colour, marker="o", markersize=3)
            colour = colour or line[0].get_color()
        for ax, cls in zip(axes[2:], classes):
            _plot(ax, *series(rows, f"val_dice/{cls}"), label=name, color=colour)
    axes[0].set_title("training loss")
    axes[1].set_title("validation loss")
    for ax, cls in zip(axes[2:], classes):
        ax.set_title(f"validation Dice: {cls}")
        ax.set_ylim(0.0, 1.0)
    axes[0].legend(fontsize="small")
    return _save(fig, Path(path))
