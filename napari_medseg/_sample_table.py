"""The Dataset dock's Samples table over a workspace of any size: rows read a page at a time, never all at once.

The model holds the samples' row keys in the workspace's order (8 bytes a sample,
:meth:`medseg.workspace.Workspace.sample_keys`), so the table knows its length and its
scroll bar is true from the start; the rows the view asks for are read from the workspace
by key, a page at a time, and at most ``MAX_PAGES`` pages are kept (the least recently
used goes). A 100,000-sample workspace therefore holds a few hundred rows, not 300,000
table items (1.5 s and 100 MB as ``QTableWidget`` items). A status set while reviewing
updates its row if the row is held; a row not held is read fresh when it is shown.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableView

COLUMNS = ("sample", "status", "group")
PAGE = 128  # rows read at once: a screenful or two
MAX_PAGES = 16  # pages held: 2,048 rows at most


class SampleTableModel(QAbstractTableModel):
    """(sample, status, group) rows of a workspace, read by page on demand."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.workspace: Any = None
        self.keys = np.zeros(0, dtype=np.int64)
        self.pages: OrderedDict[int, list[tuple[str, str, str]]] = OrderedDict()
        self.rows_read = 0  # rows read from the workspace since the last reset (pages read again count again)
        self.failed: BaseException | None = None  # the read that failed, reported once

    # -------------------------------------------------------------- filling
    def set_workspace(self, workspace: Any) -> None:
        """Show ``workspace``'s samples (None: none); the pages held are dropped."""
        self.beginResetModel()
        self.workspace = workspace
        self.keys = workspace.sample_keys() if workspace is not None else np.zeros(0, dtype=np.int64)
        self.pages.clear()
        self.rows_read, self.failed = 0, None
        self.endResetModel()

    @property
    def rows_held(self) -> int:
        """Rows kept in memory now (what the table materialised)."""
        return sum(len(p) for p in self.pages.values())

    def row_of(self, sample_id: str | None) -> int:
        """The row of ``sample_id``; -1 when it is not listed. One key lookup and a search of the key array."""
        if sample_id is None or self.workspace is None:
            return -1
        key = self.workspace.sample_key(str(sample_id))
        if key is None:
            return -1
        rows = np.flatnonzero(self.keys == key)
        return int(rows[0]) if rows.size else -1

    def row(self, row: int) -> tuple[str, str, str] | None:
        """(sample, status, group) of ``row``, read with its page when not held; None when it cannot be read."""
        if not 0 <= row < len(self.keys):
            return None
        number, at = divmod(row, PAGE)
        page = self.pages.get(number)
        if page is None:
            page = self._read(number)
            if page is None:
                return None
        else:
            self.pages.move_to_end(number)
        return page[at] if at < len(page) else None

    def _read(self, number: int) -> list[tuple[str, str, str]] | None:
        try:
            page = self.workspace.sample_rows(self.keys[number * PAGE : (number + 1) * PAGE])
        except Exception as e:  # noqa: BLE001 - a closed or damaged workspace: said once, the cells stay empty
            if self.failed is None:
                from napari_medseg._notify import report_error

                self.failed = e
                report_error("Cannot read the workspace's sample list", e)
            return None
        self.pages[number] = page
        self.rows_read += len(page)
        while len(self.pages) > MAX_PAGES:
            self.pages.popitem(last=False)
        return page

    def set_status(self, sample_id: str, status: str) -> None:
        """A status the user set: its row shows it, if that row is held (else it is read when shown)."""
        for number, page in self.pages.items():
            for at, (sid, _, group) in enumerate(page):
                if sid == sample_id:
                    page[at] = (sid, status, group)
                    row = number * PAGE + at
                    self.dataChanged.emit(self.index(row, 1), self.index(row, 1))
                    return

    # ------------------------------------------------------------ Qt's model
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.keys)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole) or not index.isValid():
            return None
        row = self.row(index.row())
        return None if row is None else str(row[index.column()])

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


class SampleTable(QTableView):
    """The table over :class:`SampleTableModel`: one row selected at a time, rows of one height (so the view
    never measures rows it does not show)."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.sample_model = SampleTableModel(self)
        self.setModel(self.sample_model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().setStretchLastSection(True)  # the table spans the dock, no blank beside it
        self.horizontalHeader().setResizeContentsPrecision(0)  # fitting a column measures the rows in view only

    def rowCount(self) -> int:
        return self.sample_model.rowCount()

    def currentRow(self) -> int:
        return self.currentIndex().row()

    def text(self, row: int, column: int) -> str | None:
        """The text of a cell (read with its page when not held)."""
        values = self.sample_model.row(row)
        return None if values is None else str(values[column])

    def fit_columns(self) -> None:
        """Columns but the last as wide as the rows in view need (Qt would read 1,000 rows by default, and every
        row while the table is hidden: then it waits until the table is shown)."""
        if not self.isVisible():
            self._fit_when_shown = True
            return
        self._fit_when_shown = False
        for col in range(len(COLUMNS) - 1):
            self.resizeColumnToContents(col)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if getattr(self, "_fit_when_shown", False):
            self.fit_columns()
