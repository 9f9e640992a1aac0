"""Errors of the plugin's workers reach the user as napari notifications that say what failed.

The message names the action ("Prediction on 'CT_small' failed: ..."); the
traceback goes to the log, so nothing is swallowed and nothing is shown twice.
"""

from __future__ import annotations

import logging

log = logging.getLogger("napari_medseg")


def report_error(what: str, exc: BaseException | str) -> str:
    """Show ``"{what}: {exc}"`` as a napari error notification; returns the message shown."""
    from napari.utils.notifications import show_error

    message = f"{what}: {exc}"
    if isinstance(exc, BaseException):
        log.error("%s", message, exc_info=exc)
    show_error(message)
    return message
