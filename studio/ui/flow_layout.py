"""A layout that wraps its items onto more lines when the row is too narrow.

Curate's filter and action rows need ~1,000 px on one line; at the window's minimum size
(720 px, 552 px of it beside the navigation) a box layout squeezed them until labels were cut.
Here each item keeps its size hint and moves to the next line instead; items whose horizontal
policy expands (the search box) share what is left of their line.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QSizePolicy, QWidget


class FlowLayout(QLayout):
    """Items left to right, wrapping; height follows width (``heightForWidth``)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout's contract ------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 - Qt's name
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def spacing(self) -> int:
        return self._spacing

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        """All items on one line."""
        visible = self._visible()
        width = sum(i.sizeHint().width() for i in visible) + self._spacing * max(0, len(visible) - 1)
        height = max((i.sizeHint().height() for i in visible), default=0)
        margins = self.contentsMargins()
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802
        """The widest item: anything narrower would cut it."""
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize()).expandedTo(QSize(self._natural_width(item), 0))
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    # -- placing -----------------------------------------------------------------------------
    def _visible(self) -> list[QLayoutItem]:
        return [i for i in self._items if not i.isEmpty()]

    @staticmethod
    def _expands(item: QLayoutItem) -> bool:
        widget = item.widget()
        return widget is not None and bool(widget.sizePolicy().horizontalPolicy().value & QSizePolicy.PolicyFlag.ExpandFlag.value)

    @staticmethod
    def _natural_width(item: QLayoutItem) -> int:
        """Expanding items may shrink to their minimum; the others keep their size hint."""
        hint, minimum = item.sizeHint().width(), item.minimumSize().width()
        return minimum if FlowLayout._expands(item) and minimum > 0 else max(hint, minimum)

    def _lines(self, width: int) -> list[list[QLayoutItem]]:
        lines: list[list[QLayoutItem]] = []
        used = 0
        for item in self._visible():
            natural = self._natural_width(item)
            if lines and used + self._spacing + natural <= width:
                lines[-1].append(item)
                used += self._spacing + natural
            else:
                lines.append([item])
                used = natural
        return lines

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        y = area.y()
        for line in self._lines(area.width()):
            widths = [self._natural_width(i) for i in line]
            extra = area.width() - sum(widths) - self._spacing * (len(line) - 1)
            growing = [n for n, item in enumerate(line) if self._expands(item)]
            for n in growing:  # expanding items share the line's rest, up to their maximum
                share = extra // len(growing)
                widths[n] = min(widths[n] + max(0, share), line[n].maximumSize().width())
            height = max(i.sizeHint().height() for i in line)
            x = area.x()
            for item, item_width in zip(line, widths):
                if move:
                    item_height = min(height, item.maximumSize().height())
                    top = y + (height - item_height) // 2
                    item.setGeometry(QRect(QPoint(x, top), QSize(min(item_width, area.width()), item_height)))
                x += item_width + self._spacing
            y += height + self._spacing
        return max(0, y - self._spacing - area.y()) + margins.top() + margins.bottom()
