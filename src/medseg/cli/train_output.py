"""What ``medseg train`` shows: the JSON event stream on stdout, or summaries on stderr above the one bar
(:class:`medseg.cli.progress.Bar`, moved by the Trainer's ``Step`` events)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from medseg.cli.progress import Bar


@contextlib.contextmanager
def event_output(jsonl: bool):
    """In jsonl mode: a function writing one event per line to stdout, while everything else goes to stderr."""
    if not jsonl:
        yield None
        return
    from medseg.training.events import to_json

    saved = sys.stdout
    try:
        saved.fileno()
        os.fstat(1)
        fd_level = True
    except (AttributeError, OSError, ValueError):
        fd_level = False  # stdout is a Python object (an embedding host): only Python-level redirection works
    if not fd_level:
        sys.stdout = sys.stderr
        try:
            yield lambda event: (saved.write(to_json(event) + "\n"), saved.flush())
        finally:
            sys.stdout = saved
        return
    saved.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)  # prints and C libraries writing to the process's stdout now land on stderr
    stream = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr

    def emit(event) -> None:
        stream.write(to_json(event) + "\n")
        stream.flush()

    try:
        yield emit
    finally:
        stream.flush()
        sys.stdout = saved
        os.dup2(events_fd, 1)
        stream.close()


class TrainLines:
    """The lines above the bar: what runs where, each epoch's losses, an OOM recovery, how the run ended."""

    def __init__(self, bar: Bar):
        self.bar = bar
        self.epochs = 0

    def __call__(self, event: Any) -> None:
        from medseg.errors import Cancelled
        from medseg.jobs import Result, Started
        from medseg.training.events import EpochEnd, OOMRecovered, Step

        note = self.bar.note
        if isinstance(event, Started):
            d = event.detail
            self.epochs = d.get("epochs", 0)
            what = (
                f"{d.get('n_train')} volumes, {d.get('n_train_items')} slices (validating on {d.get('n_val')}, "
                f"{d.get('n_val_items')} slices)"
                if d.get("volumes")
                else f"{d.get('n_train')} images (validating on {d.get('n_val')})"
            )
            note(
                f"training {what} on {d.get('device')} "
                f"({d.get('precision')}) -> {d.get('run_dir')}"
                + (f"; resumed from {d['resumed_from']}" if d.get("resumed_from") else "")
            )
        elif isinstance(event, Step):
            if self.bar.bar is not None:
                self.bar.bar.set_postfix(
                    epoch=event.epoch + 1, loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", refresh=False
                )
        elif isinstance(event, EpochEnd):
            val = ", ".join(f"{k} {v:.4f}" for k, v in event.val.items() if isinstance(v, (int, float)))
            # events count from 0; people from 1
            note(
                f"epoch {event.epoch + 1}/{self.epochs}: train loss {event.train_loss:.4f}"
                + (f", val {val}" if val else "")
                + f" ({event.seconds:.1f} s)"
            )
        elif isinstance(event, OOMRecovered):
            note(f"out of memory: micro-batch {event.micro_batch}, accumulating {event.accumulate}")
        elif isinstance(event, Result):
            s = event.value
            best = f", best {s.best_metric:.4f}" if s.best_metric is not None else ""
            self.bar.close()
            note(
                f"finished after {s.epochs_run} epoch(s){' (stopped early)' if s.stopped_early else ''}"
                f"{best}; best: {s.best_checkpoint}, last: {s.last_checkpoint}"
            )
        elif isinstance(event, Cancelled):
            self.bar.close()
            note(str(event))
