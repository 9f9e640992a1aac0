"""What the docks find through a viewer: the viewer behind napari's proxy, one object per viewer, a layer by
name and kind, and the viewer window's close.

napari hands each docked widget its own ``PublicOnlyProxy`` of the viewer, so
anything kept per viewer (the session, the autosave, the sample display) is
keyed by the viewer behind the proxy (:func:`real_viewer`) in a weak
dictionary (:func:`per_viewer`) and dropped with the viewer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject


def real_viewer(viewer: Any) -> Any:
    """The viewer behind napari's ``PublicOnlyProxy`` (each docked widget gets its own proxy)."""
    return getattr(viewer, "__wrapped__", viewer)


def per_viewer(registry: weakref.WeakKeyDictionary, viewer: Any, make: Callable[[Any], Any]) -> Any:
    """``registry``'s object for the (real) viewer, made by ``make(viewer)`` on first use; dropped with it."""
    viewer = real_viewer(viewer)
    found = registry.get(viewer)
    if found is None:
        found = registry[viewer] = make(viewer)
    return found


def layer_named(viewer: Any, name: str, kind: type) -> Any:
    """The layer called ``name`` if it is a ``kind`` layer, else None (a user's layer of another kind under the
    name is not ours)."""
    layer = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401 - LayerList has no get
    return layer if isinstance(layer, kind) else None


class _CloseWatcher(QObject):
    """Runs the registered callbacks, in order, when the viewer's window gets its close event (once)."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable[[], None]] = []
        self.done = False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close and not self.done:
            self.done = True
            for callback in list(self.callbacks):
                callback()
        return False


_WATCHERS: weakref.WeakKeyDictionary[Any, _CloseWatcher] = weakref.WeakKeyDictionary()


def _watcher_for(viewer: Any) -> _CloseWatcher:
    def make(real: Any) -> _CloseWatcher:
        watcher = _CloseWatcher()
        real.window._qt_window.installEventFilter(watcher)
        return watcher

    return per_viewer(_WATCHERS, viewer, make)


def when_viewer_closes(viewer: Any, callback: Callable[[], None], first: bool = False) -> None:
    """Call ``callback`` when the viewer's window closes; ``first`` puts it before those registered so far (the
    autosave's: pending label edits are saved before any dock closes the workspace)."""
    callbacks = _watcher_for(viewer).callbacks
    if first:
        callbacks.insert(0, callback)
    else:
        callbacks.append(callback)
