"""The lock every public ``Workspace`` method takes: one object may be used from several threads."""

from __future__ import annotations

import functools

from medseg.errors import WorkspaceError


def locked(method):
    """Run ``method`` holding the workspace's lock; WorkspaceError once the workspace is closed."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            if self._conn is None:
                raise WorkspaceError(f"{self.root}: workspace is closed")
            return method(self, *args, **kwargs)

    return wrapper
