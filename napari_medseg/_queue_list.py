"""The review queue as the Review dock shows it: an order that answers navigation without walking it, and a
list view whose rows are drawn only when they are on screen.

:class:`QueueOrder` is built in the worker that builds the queue (once per refresh): the
filtered items, each sample's place in them (a dict) and the places of the unreviewed
samples (sorted), so Next, Previous, "next unreviewed" and "First unreviewed" cost a
lookup and a bisection, not a pass over 100,000 samples per click. :class:`QueueView`
shows it through a model: a row's line and tooltip are made when Qt paints or hovers
it (``QListWidget`` made an item per sample: seconds and hundreds of MB at 100,000).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from qtpy.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt
from qtpy.QtWidgets import QHeaderView, QTableView

from medseg.qc.queue_index import ReviewQueue
from medseg.workspace.records import UNREVIEWED


class QueueOrder:
    """The queue filtered to ``statuses`` (None: all), with every item still found by ``item_of``."""

    def __init__(self, items: Iterable[Any] = (), statuses: Sequence[str] | None = None):
        self.all: dict[str, Any] = {}
        self.items: list[Any] = []
        self.index: dict[str, int] = {}
        self.unreviewed: list[int] = []  # ascending places in ``items``
        if isinstance(items, ReviewQueue):  # its columns: no item is made until a row is drawn or asked for
            self._from_columns(items, statuses)
            return
        for item in items:
            self.all[item.sample_id] = item
            if statuses is not None and item.status not in statuses:
                continue
            k = len(self.items)
            self.items.append(item)
            self.index[item.sample_id] = k
            if item.status == UNREVIEWED:
                self.unreviewed.append(k)

    def _from_columns(self, queue: ReviewQueue, statuses: Sequence[str] | None) -> None:
        places = [k for k, s in enumerate(queue.statuses) if statuses is None or s in statuses]
        self.all = _ItemsById(queue)
        self.items = queue if len(places) == len(queue) else _Places(queue, places)
        self.index = {queue.sample_ids[k]: i for i, k in enumerate(places)}
        self.unreviewed = [i for i, k in enumerate(places) if queue.statuses[k] == UNREVIEWED]

    def __len__(self) -> int:
        return len(self.items)

    def ids(self) -> list[str]:
        return list(self.index)  # insertion order: the queue's

    def unreviewed_from(self, start: int, skip: int | None = None) -> int | None:
        """The first place >= ``start`` of an unreviewed sample, other than place ``skip``; None when none."""
        at = bisect_left(self.unreviewed, start)
        while at < len(self.unreviewed):
            if self.unreviewed[at] != skip:
                return self.unreviewed[at]
            at += 1
        return None

    def unreviewed_count(self, skip: int | None = None) -> int:
        """Unreviewed samples in the queue, not counting place ``skip``."""
        n = len(self.unreviewed)
        if skip is not None and 0 <= skip < len(self.items) and self.items[skip].status == UNREVIEWED:
            n -= 1
        return n


class _ItemsById:
    """``QueueOrder.all`` over a :class:`ReviewQueue`: ``get(sample_id)`` makes that one item."""

    def __init__(self, queue: ReviewQueue):
        self.queue = queue

    def get(self, sample_id: str, default: Any = None) -> Any:
        item = self.queue.item_of(sample_id)
        return default if item is None else item


class _Places(Sequence):
    """The items at ``places`` of a :class:`ReviewQueue` (the status filter), made when asked."""

    def __init__(self, queue: ReviewQueue, places: list[int]):
        self.queue, self.places = queue, places

    def __len__(self) -> int:
        return len(self.places)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.queue[k] for k in self.places[i]]
        return self.queue[self.places[i]]


class QueueListModel(QAbstractListModel):
    """One row per item of a :class:`QueueOrder`: "3. sample · status · priority", its reasons as tooltip."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.order = QueueOrder()

    def set_order(self, order: QueueOrder) -> None:
        self.beginResetModel()
        self.order = order
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.order)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        from napari_medseg._review_text import item_line, item_tip

        if not index.isValid() or not 0 <= index.row() < len(self.order):
            return None
        item = self.order.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item_line(item, index.row() + 1)
        if role == Qt.ItemDataRole.ToolTipRole:
            return item_tip(item)
        if role == Qt.ItemDataRole.UserRole:
            return item.sample_id
        return None


class QueueRow:
    """Row ``k`` of a :class:`QueueView`, read as a ``QListWidgetItem`` is (text, tooltip, data)."""

    def __init__(self, view: QueueView, k: int):
        self.view, self.k = view, k

    def _get(self, role: int) -> Any:
        return self.view.model().data(self.view.model().index(self.k), role)

    def text(self) -> str:
        return self._get(Qt.ItemDataRole.DisplayRole)

    def toolTip(self) -> str:  # noqa: N802 - Qt's name
        return self._get(Qt.ItemDataRole.ToolTipRole)

    def data(self, role: int) -> Any:
        return self._get(role)

    def row(self) -> int:
        return self.k


class QueueView(QTableView):
    """The queue's list: one column of rows of one height, asking for ``rows`` rows of height (more only where
    the dock has height to spare, as :class:`napari_medseg._scroll.ShortList`). A table view, not a
    ``QListView``: after each refresh a list view laid out every row once, asking the model for each (200,000
    calls into Python for 100,000 samples: seconds of the GUI thread on a loaded machine); a table's rows
    are sections of a fixed height, and it asks only for the rows it paints."""

    def __init__(self, rows: int, parent: Any = None):
        super().__init__(parent)
        self.rows = rows
        self.queue_model = QueueListModel(self)
        self.setModel(self.queue_model)
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.hide()
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)

    def sizeHint(self) -> QSize:
        row = self.verticalHeader().defaultSectionSize()
        return QSize(super().sizeHint().width(), self.rows * max(row, 1) + 2 * self.frameWidth())

    def count(self) -> int:
        return self.queue_model.rowCount()

    def item(self, k: int) -> QueueRow | None:
        return QueueRow(self, k) if 0 <= k < self.count() else None

    def visualItemRect(self, row: QueueRow) -> QRect:  # noqa: N802 - QListWidget's name
        return self.visualRect(self.queue_model.index(row.k))

    def setCurrentRow(self, k: int) -> None:  # noqa: N802 - QListWidget's name
        index = self.queue_model.index(k)
        self.setCurrentIndex(index)
        self.scrollTo(index)
