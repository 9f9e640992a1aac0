"""Run ``medseg train`` in a child process and follow its JSON event stream.

The GUI must not train in its own process: a crash, a CUDA OOM or a leaking
loop would take the viewer with it, and cancelling must work even when the
trainer is stuck in a long step. ``TrainingProcess`` starts
``python -m medseg.cli train CONFIG --events jsonl``, turns each stdout line
back into an event (:func:`medseg.training.events.read_event`), and always ends
the stream with one terminal event: the child's own ``Result``/``Cancelled``/
``Failed``, or a ``Failed`` built from the exit status and the tail of its
stderr log when it died without one. No Qt here: the
plugin iterates ``events()`` in a thread worker and calls ``cancel()``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from medseg.errors import Cancelled
from medseg.jobs import Failed, Result
from medseg.training.config import TrainConfig
from medseg.training.events import CheckpointSaved, Step, read_event

log = logging.getLogger(__name__)

TERMINAL = (Result, Cancelled, Failed)
LAUNCH_CONFIG = "launch_config.yaml"
STDERR_LOG = "train.log"


class TrainingProcess:
    """A training run in a child process.

    ``config``: a TrainConfig (written to ``<out_dir>/launch_config.yaml``) or a
    YAML path (passed as it is; the child validates it). ``resume``: a run folder
    or checkpoint to continue. ``args``: more ``medseg train`` flags. ``env``:
    variables added to this process's environment. stderr goes to
    ``log_path`` (``<out_dir>/train.log``). The child starts on construction.
    """

    def __init__(
        self,
        config: TrainConfig | str | Path,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        resume: str | Path | None = None,
        args: Sequence[str] = (),
        cwd: str | Path | None = None,
    ):
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        from medseg.destinations import check_destination

        if isinstance(config, TrainConfig):
            self.run_dir = self._abs(config.out_dir)
            check_destination(
                self.run_dir,
                sources=[self._abs(config.data.root)] if config.data.root else [],
                purpose="the training run",
            )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config_path = self.run_dir / LAUNCH_CONFIG
            self.config_path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        else:
            self.config_path = self._abs(config)
            self.run_dir = self._run_dir_of(self.config_path)
            check_destination(self.run_dir, purpose="the training run")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / STDERR_LOG
        cmd = [python, "-m", "medseg.cli", "train", str(self.config_path), "--events", "jsonl", *args]
        if resume is not None:
            cmd += ["--resume", str(resume)]
        self.command = cmd
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_ALBUMENTATIONS_UPDATE": "1", **(env or {})}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it for the whole run
        kwargs = {}
        if os.name == "nt":  # CTRL_BREAK_EVENT reaches only a child that leads its own process group
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=child_env,
                cwd=self.cwd,
                **kwargs,
            )
        except OSError:
            self._log.close()
            raise
        self._kill_timer: threading.Timer | None = None
        self._kill_timeout = 0.0
        self._killed_after_cancel = False
        self.cancel_requested = False
        self.terminal: Result | Cancelled | Failed | None = None
        self.last_step: Step | None = None  # what a terminal event made up here reports
        self.last_checkpoint: str | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def running(self) -> bool:
        return self._proc.poll() is None

    def events(self) -> Iterator[Any]:
        """The child's events in order, ending with exactly one ``Result``, ``Cancelled`` or ``Failed``."""
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            event = _parse(line)
            if event is None:
                continue
            if isinstance(event, TERMINAL):
                if self.terminal is None:
                    self.terminal = event
                    yield event
                continue
            if self.terminal is None:
                if isinstance(event, Step):
                    self.last_step = event
                elif isinstance(event, CheckpointSaved):
                    self.last_checkpoint = event.path
                yield event
        code = self.wait()
        if self.terminal is None:
            self.terminal = self._silent_end(code)
            yield self.terminal

    def cancel(self, timeout: float = 60.0) -> None:
        """Ask the child to stop after its current step (SIGTERM); kill it if it is still alive after ``timeout`` s.

        Returns at once; ``events()`` then ends with the child's Cancelled (or a
        Failed when it had to be killed).
        """
        if not self.running():
            return
        self.cancel_requested = True
        try:
            if os.name == "nt":
                self._proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                self._proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        if self._kill_timer is None:
            self._kill_timeout = timeout
            self._kill_timer = threading.Timer(timeout, self._kill_late)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self) -> None:
        """Stop the child at once (SIGKILL): no checkpoint is written for the current step."""
        if self.running():
            self._proc.kill()

    def _kill_late(self) -> None:
        if self.running():
            log.warning(
                "training process %d did not stop in %g s after SIGTERM; killing it", self.pid, self._kill_timeout
            )
            self._killed_after_cancel = True
            self._proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        code = self._proc.wait(timeout)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        if not self._log.closed:
            self._log.close()
        return code

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.running():
            self._proc.kill()
        self.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _abs(self, p: str | Path) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else self.cwd / p

    def _run_dir_of(self, config_path: Path) -> Path:
        # the log belongs in the run folder; an unreadable config still needs somewhere to log its error
        try:
            d = yaml.safe_load(config_path.read_text()) or {}
            out = d.get("out_dir") if isinstance(d, dict) else None
        except (OSError, yaml.YAMLError):
            out = None
        return self._abs(out if isinstance(out, str) and out else config_path.parent)

    def _silent_end(self, code: int) -> Cancelled | Failed:
        checkpoint = self.last_checkpoint
        # SIGTERM before the child installed its handler (still importing torch) is a cancel, not a crash
        if self.cancel_requested and code == -signal.SIGTERM:
            step, epoch = (self.last_step.done, self.last_step.epoch) if self.last_step else (0, 0)
            return Cancelled(
                f"training cancelled after step {step}; checkpoint: {checkpoint}",
                step,
                self.last_step.total if self.last_step else None,
                {"checkpoint": checkpoint, "epoch": epoch, "global_step": step},
            )
        if self._killed_after_cancel:
            return Failed(
                f"the training process did not stop within {self._kill_timeout:g} s of the cancel "
                f"request and was killed; the last checkpoint written: {checkpoint}",
                traceback=self.stderr_tail(),
            )
        return Failed(self._death_message(code), traceback=self.stderr_tail())

    def _death_message(self, code: int) -> str:
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return (
            f"the training process {how} without reporting an outcome "
            f"(the last checkpoint in {self.run_dir} may still be usable; log: {self.log_path})"
        )


def _parse(line: str) -> Any:
    try:
        return read_event(json.loads(line))
    except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError; so is an unknown event kind
        log.warning("ignoring a line of the training process that is not an event (%s): %.200s", e, line)
        return None
