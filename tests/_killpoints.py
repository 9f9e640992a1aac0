"""Kill a writer at each of its file-system steps in turn, as kill -9 or a crash would.

A child process runs ``KILLPOINTS`` first, then its own code, and calls
``arm()`` just before the write under test. From then on every file-system
step it takes through Python (opening a file for writing and just after,
fsync, mkdir, rename/replace, unlink/remove, rmdir, rmtree, and so each file
an rmtree deletes) is counted, and the child SIGKILLs itself just before
step ``KILL_AT_STEP``. A child that finishes prints ``steps N``: running
k = 1, 2, ... until one finishes kills the writer once at every step, the
same steps on every run, instead of at a random moment that may miss the
one window where a non-atomic write shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

KILLPOINTS = r"""
import builtins, io, os, shutil, signal
_at, _n = int(os.environ.get("KILL_AT_STEP", "0")), 0

def _step():
    global _n
    _n += 1
    if _n == _at:
        os.kill(os.getpid(), signal.SIGKILL)

def _counted(mod, name):
    real = getattr(mod, name)
    def step_then(*args, **kwargs):
        _step()
        return real(*args, **kwargs)
    setattr(mod, name, step_then)

def arm():
    for name in ("replace", "rename", "remove", "unlink", "rmdir", "mkdir", "fsync"):
        _counted(os, name)
    _counted(shutil, "rmtree")
    real_open = io.open
    def open_counted(file, mode="r", *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        if writing:
            _step()
        f = real_open(file, mode, *args, **kwargs)
        if writing:
            _step()  # created or truncated, nothing written yet
        return f
    builtins.open = io.open = open_counted

def finished():
    print("steps", _n, flush=True)
"""


def run_killed_at(step: int, script: str, *args, timeout: float = 120) -> tuple[int, int | None]:
    """Run ``KILLPOINTS + script`` killed before step ``step``: (returncode, steps when it finished).

    The script must call ``arm()`` before the write under test and ``finished()`` after it.
    """
    env = script_env(KILL_AT_STEP=str(step))
    proc = subprocess.run(
        [sys.executable, "-c", KILLPOINTS + script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode == -signal.SIGKILL:
        return proc.returncode, None
    assert proc.returncode == 0, f"the writer failed at kill step {step}:\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("steps "), proc.stdout
    return 0, int(last.split()[1])


def script_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``python -c`` script: this process's, with its import path (the tests'
    helper modules and the package)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def spawn(script: str, *args) -> subprocess.Popen:
    """``python -c script args...`` running beside the test, its stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=script_env(),
    )


def reader_script(common: str, check: str = "") -> str:
    """A reader child: after ``common`` (which opens ``ws`` and defines ``level(labels) -> int``, the save a
    read came from), it reads the current labels of sample argv[2] for argv[3] seconds, each read at least
    as far as the one before (``check``: lines run after each read, with ``sample``, ``k`` and ``last``),
    and prints how many reads and the last level."""
    return (
        common
        + """
import time
sample, until = sys.argv[2], time.monotonic() + float(sys.argv[3])
reads, last = 0, -1
while time.monotonic() < until:
    k = level(ws.current_mask(sample))
    assert k >= last, f"head went back from {last} to {k}"
"""
        + check
        + """    last, reads = k, reads + 1
print(reads, last, flush=True)
"""
    )


def read_beside_write(writer: tuple, reader: tuple, timeout: float = 60) -> tuple[int, int]:
    """Run a writer script and a :func:`reader_script` side by side (each ``(script, *args)``); both must
    succeed: (how many reads the reader made, the last level it read)."""
    w, r = spawn(*writer), spawn(*reader)
    _, w_err = w.communicate(timeout=timeout)
    r_out, r_err = r.communicate(timeout=timeout)
    assert w.returncode == 0, w_err
    assert r.returncode == 0, r_err
    reads, last = map(int, r_out.split())
    return reads, last
