"""What ``medseg train`` shows: the JSON event stream on stdout, or a progress bar and summaries on stderr."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def event_output(jsonl: bool):
    """In jsonl mode: a function writing one event per line to stdout, while everything else goes to stderr."""
    if not jsonl:
        yield None
        return
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
            yield lambda event: (saved.write(event.to_json() + "\n"), saved.flush())
        finally:
            sys.stdout = saved
        return
    saved.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)  # prints and C libraries writing to the process's stdout now land on stderr
    stream = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr

    def emit(event) -> None:
        stream.write(event.to_json() + "\n")
        stream.flush()

    try:
        yield emit
    finally:
        stream.flush()
        sys.stdout = saved
        os.dup2(events_fd, 1)
        stream.close()


class Progress:
    """A tqdm bar over optimizer steps on stderr, epoch summaries above it; plain lines without tqdm."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.epochs = 0

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def __call__(self, event, verbose: bool = False) -> None:
        kind = event.kind
        if kind == "failed":
            self.note(f"error: {event.error}")
            if verbose and event.traceback:
                self.note(event.traceback)
            if event.last_checkpoint:
                self.note(f"last good checkpoint: {event.last_checkpoint}")
            return
        if not self.enabled:
            return
        if kind == "started":
            self.note(f"training {event.n_train} images (validating on {event.n_val}) on {event.device} "
                      f"({event.precision}) -> {event.run_dir}"
                      + (f"; resumed from {event.resumed_from}" if event.resumed_from else ""))
            self.epochs = event.epochs
            self._open(event.epochs * event.steps_per_epoch)
        elif kind == "step":
            if self.bar is not None:
                self.bar.update(max(0, event.global_step - self.bar.n))
                self.bar.set_postfix(epoch=event.epoch + 1, loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}",
                                     refresh=False)
        elif kind == "epoch":
            val = ", ".join(f"{k} {v:.4f}" for k, v in event.val.items() if isinstance(v, (int, float)))
            # events count from 0; people from 1
            self.note(f"epoch {event.epoch + 1}/{self.epochs}: train loss {event.train_loss:.4f}" + (f", val {val}" if val else "")
                      + f" ({event.seconds:.1f} s)")
        elif kind == "oom":
            self.note(f"out of memory: micro-batch {event.micro_batch}, accumulating {event.accumulate}")
        elif kind == "finished":
            best = f", best {event.best_metric:.4f}" if event.best_metric is not None else ""
            self.close()
            self.note(f"finished after {event.epochs_run} epoch(s){' (stopped early)' if event.stopped_early else ''}"
                      f"{best}; best: {event.best_checkpoint}, last: {event.last_checkpoint}")
        elif kind == "cancelled":
            self.close()
            self.note(f"cancelled in epoch {event.epoch + 1}, after step {event.global_step}; checkpoint: {event.checkpoint}")

    def _open(self, total: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
