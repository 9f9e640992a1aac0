"""Errors of the plugin's workers reach the user as napari notifications that say what failed.

The message names the action ("Prediction on 'CT_small' failed: ..."). A user's mistake (a
:class:`~medseg.errors.MedsegError`, an OSError naming a file: a wrong folder, a bad checkpoint) is shown
as its message alone, in napari's message form, so no "View Traceback" button offers a traceback that
would only say where the engine noticed the mistake; its traceback goes to the log at debug level. Any
other exception is a bug: one line "<Type>: <message>" in napari's exception form (its notification
offers the traceback), and the traceback in the log. Nothing is swallowed and nothing is shown twice.
"""

from __future__ import annotations

import logging

from napari_medseg._message_line import error_text, is_user_error, user_message

log = logging.getLogger("napari_medseg")


def report(what: str, exc: BaseException | str) -> tuple[str, str | None]:
    """Notify that ``what`` failed because of ``exc``; (the message shown, its detail or None), as a dock's
    :class:`~napari_medseg._message_line.MessageLine` says them (``line.say(*report(...))``)."""
    from napari.utils import notifications

    if isinstance(exc, str):
        message = f"{what}: {exc}"
        log.warning("%s", message)
        notifications.show_error(message)
        return message, None
    if is_user_error(exc):
        message = f"{what}: {error_text(exc)}"
        log.warning("%s", message)
        log.debug("where %s was raised", type(exc).__name__, exc_info=exc)
        notifications.show_error(message)
        return message, None
    line, trace = user_message(exc)
    message = f"{what}: {line}"
    log.error("%s", message, exc_info=exc)
    note = notifications.ErrorNotification(exc)
    note.message = message
    notifications.notification_manager.dispatch(note)
    return message, trace


def report_error(what: str, exc: BaseException | str) -> str:
    """:func:`report`, for a caller that shows only the message."""
    return report(what, exc)[0]
