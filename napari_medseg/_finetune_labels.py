"""The Fine-tune form's "Train on" choices, each with the samples and groups of the workspace it holds.

The workspace's statuses and split groups are read in a worker when it opens and when QC's duplicate links
change the groups (:func:`medseg.workspace.label_sets.label_rows`); a status the user sets while reviewing
updates the rows kept here, so the counts follow the review without reading the workspace on the GUI thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from napari_medseg._finetune_config import choice_items
from napari_medseg._jobs import call, start_job
from napari_medseg._qt_helpers import connect_until_destroyed


class LabelChoices:
    """Keeps ``combo`` (the form's "Train on") counted for the session's workspace; ``volumes()`` says
    whether it holds volumes (its groups are then cases)."""

    def __init__(self, owner: Any, session: Any, combo: Any, volumes: Callable[[], bool]):
        self.session, self.combo, self.volumes = session, combo, volumes
        self.rows: dict[str, Any] | None = None
        self.counts: Any = None
        self._request = 0
        self._seen: dict[str, str] = {}  # statuses set while a read was on its way: applied over its rows
        self._owner = owner
        connect_until_destroyed(
            owner,
            [
                (session.workspace_changed, self.refresh),
                (session.findings_changed, self.refresh),
                (session.status_changed, self._status_set),
            ],
        )
        self.refresh()

    def refresh(self, *_: Any) -> None:
        from medseg.workspace.label_sets import label_rows

        self._request += 1
        request, ws = self._request, self.session.workspace
        self.rows, self._seen = None, {}
        if ws is None:
            self._show()
            return
        start_job(
            self.session.jobs,
            lambda token: call(label_rows, ws),
            "Counting the samples each 'Train on' choice holds",
            workspace=ws,
            owner=self._owner,
            stoppable=False,
            progress=False,
            on_result=lambda rows: self._got(request, rows),
        )

    def _got(self, request: int, rows: dict[str, Any]) -> None:
        if request != self._request:
            return  # the workspace changed meanwhile: a newer read is on its way
        for sid, status in self._seen.items():
            if sid in rows:
                rows[sid] = dataclasses.replace(rows[sid], status=status)
        self.rows = rows
        self._show()

    def _status_set(self, sample_id: str, status: str) -> None:
        if self.rows is None:
            self._seen[sample_id] = status
        elif sample_id in self.rows:
            self.rows[sample_id] = dataclasses.replace(self.rows[sample_id], status=status)
            self._show()

    def _show(self) -> None:
        from medseg.workspace.label_sets import count_labels

        self.counts = count_labels(self.rows) if self.rows is not None else None
        value = self.combo.value
        self.combo.choices = choice_items(self.counts, self.counts is not None and self.volumes())
        self.combo.value = value
