"""The Curate table's model: a window onto the samples store, fetched a page at a time.

Nothing is held per row: ``rowCount`` is the query's count, and ``data`` reads from an LRU
cache of pages (``PAGE_SIZE`` rows each, text cut to a preview in SQL). Sorting and
filtering are new SQL, followed by a model reset, never Python comparisons over rows.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import replace

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from studio.core.curation import PAGE_FIELDS, CurationRepository, SampleQuery

PAGE_SIZE = 256
MAX_PAGES = 64  # ~16K rows in memory at most, whatever the table's size

# (sort key / page field, header)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "Status"),
    ("instruction", "Instruction"),
    ("input", "Input"),
    ("output", "Output"),
    ("instruction_words", "Instr. words"),
    ("output_words", "Output words"),
    ("origin", "Origin"),
    ("teacher_model", "Teacher"),
    ("run_id", "Run"),
    ("rating", "Rating"),
    ("tags", "Tags"),
    ("updated_at", "Updated"),
)
COLUMN_KEYS = tuple(key for key, _ in COLUMNS)
_FIELD = {name: n for n, name in enumerate(PAGE_FIELDS)}
_COLUMN_FIELD = tuple(_FIELD[key] for key in COLUMN_KEYS)
_NUMERIC = {"instruction_words", "output_words", "run_id", "rating"}
_TEXT = {"instruction", "input", "output"}
STATUS_MARK = {"pending": "· pending", "accepted": "✓ accepted", "rejected": "✗ rejected"}
IdRole = Qt.ItemDataRole.UserRole + 1
# Built once: enum arithmetic per cell shows up in the paint profile.
_DISPLAY, _ALIGN = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.TextAlignmentRole
_SERVED = frozenset((_DISPLAY, _ALIGN, IdRole))
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class SampleTableModel(QAbstractTableModel):
    """Shows one query; its owner (the Curate panel) keeps the query and hears of header sorts."""

    sort_changed = Signal(str, bool)  # sort key, descending: after a header click re-sorted

    def __init__(self, curation: CurationRepository | None = None, parent=None):
        super().__init__(parent)
        self._curation = curation
        self._query = SampleQuery()
        self._count = 0
        self._pages: OrderedDict[int, list[tuple]] = OrderedDict()
        if curation is not None:
            self._count = curation.count(self._query)

    # -- what it shows ---------------------------------------------------------------------
    @property
    def query(self) -> SampleQuery:
        return self._query

    def set_curation(self, curation: CurationRepository | None) -> None:
        self._curation = curation
        self.refresh()

    def set_query(self, query: SampleQuery) -> None:
        """Show another selection; keeps the current sort unless ``query`` names one."""
        self._query = query
        self.refresh()

    def set_sort_key(self, sort: str, descending: bool) -> None:
        """Change the order without re-reading: it applies at the next set_query or refresh."""
        self._query = replace(self._query, sort=sort, descending=descending)

    def refresh(self) -> None:
        """Re-read everything: after a change that may move rows in or out of the query."""
        self.beginResetModel()
        self._pages.clear()
        self._count = self._curation.count(self._query) if self._curation is not None else 0
        self.endResetModel()

    def refresh_rows(self) -> None:
        """Re-read the visible values only (a change that keeps every row where it is)."""
        self._pages.clear()
        if self._count:
            self.dataChanged.emit(self.index(0, 0), self.index(self._count - 1, len(COLUMNS) - 1))

    def sample_id(self, row: int) -> int | None:
        record = self._row(row)
        return None if record is None else record[0]

    def row_values(self, row: int) -> dict | None:
        record = self._row(row)
        return None if record is None else dict(zip(PAGE_FIELDS, record))

    # -- paging ----------------------------------------------------------------------------
    def _row(self, row: int) -> tuple | None:
        if self._curation is None or not 0 <= row < self._count:
            return None
        number, offset = divmod(row, PAGE_SIZE)
        page = self._pages.get(number)
        if page is None:
            page = self._curation.page(self._query, number * PAGE_SIZE, PAGE_SIZE)
            self._pages[number] = page
            if len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(number)
        return page[offset] if offset < len(page) else None

    # -- Qt model API ----------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        # Early out: the view asks for a dozen roles per cell; only these are served.
        if role not in _SERVED:
            return None
        if not index.isValid():
            return None
        record = self._row(index.row())
        if record is None:
            return None
        if role == IdRole:
            return record[0]
        key = COLUMN_KEYS[index.column()]
        if role == _ALIGN:
            return _RIGHT if key in _NUMERIC else None
        value = record[_COLUMN_FIELD[index.column()]]
        return _display(key, value)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1] if 0 <= section < len(COLUMNS) else None
        return str(section + 1)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return _FLAGS

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        descending = order == Qt.SortOrder.DescendingOrder
        self.set_query(replace(self._query, sort=COLUMN_KEYS[column], descending=descending))
        self.sort_changed.emit(COLUMN_KEYS[column], descending)


def _display(key: str, value) -> str | None:
    if value is None:
        return "" if key not in {"instruction", "output"} else None
    if key == "status":
        return STATUS_MARK.get(value, value)
    if key in _TEXT:
        return value.replace("\n", " ⏎ ")
    if key == "tags":
        return ", ".join(json.loads(value)) if value != "[]" else ""
    if key == "updated_at":
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(value))
    if key == "rating":
        return "★" * value
    return str(value)
