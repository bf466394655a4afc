"""Display helpers shared by the operations screens: Qt Charts (from pyside6-addons) and a records table model.

Without QtCharts installed the charts fall back to a one-line text summary, so the app still starts.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QAbstractTableModel, QMargins, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QWidget

try:
    from PySide6.QtCharts import (
        QBarCategoryAxis,
        QBarSeries,
        QBarSet,
        QChart,
        QChartView,
        QLineSeries,
        QScatterSeries,
        QValueAxis,
    )
except ImportError:  # pragma: no cover - PySide6-Essentials alone has no QtCharts
    QChart = None

HAS_CHARTS = QChart is not None
Column = tuple[str, Callable[[dict], object]]


class RecordsModel(QAbstractTableModel):
    """Rows of dicts shown through ``(header, getter)`` columns; ``colour`` may tint a row."""

    def __init__(self, columns: Sequence[Column], colour: Callable[[dict], str | None] | None = None, parent=None):
        super().__init__(parent)
        self.columns, self.colour = list(columns), colour
        self.rows: list[dict] = []

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def append_rows(self, rows: list[dict]) -> None:
        """A further page at the end (the selection stays)."""
        if rows:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(rows) - 1)
            self.rows.extend(rows)
            self.endInsertRows()

    def row(self, index: int) -> dict | None:
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        record = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):  # a cut cell shows in full on hover
            value = self.columns[index.column()][1](record)
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.BackgroundRole and self.colour is not None:
            colour = self.colour(record)
            return QColor(colour) if colour else None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section][0]
        return None


def records_table(model: QAbstractTableModel, widths: Sequence[int] = (), *, wrap: bool = False) -> QTableView:
    """A read-only, row-selecting table over a model, last column stretched; with ``wrap`` a long cell breaks
    onto more lines and its row grows (a page of tens of rows: measuring each is cheap), never cut with "…"."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(22)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    for column, width in enumerate(widths):
        table.setColumnWidth(column, width)
    if wrap:
        table.setWordWrap(True)
        table.setTextElideMode(Qt.TextElideMode.ElideNone)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


def chart_view(title: str) -> QWidget:
    """An empty chart (or its text fallback) to fill with ``show_bars`` / ``show_line``."""
    if not HAS_CHARTS:
        label = QLabel(title)
        label.setWordWrap(True)
        return label
    chart = QChart()
    chart.setTitle(title)
    chart.legend().hide()
    chart.setMargins(QMargins(4, 4, 4, 4))
    chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
    view = QChartView(chart)
    view.setRenderHint(QPainter.RenderHint.Antialiasing)
    view.setMinimumHeight(170)
    return view


def _reset(view, labels: list[str], y_max: float, y_format: str):
    """Clear the chart and give it a category x axis and a value y axis."""
    chart = view.chart()
    chart.removeAllSeries()
    for axis in chart.axes():
        chart.removeAxis(axis)
    x_axis, y_axis = QBarCategoryAxis(), QValueAxis()
    x_axis.append(labels)
    font = x_axis.labelsFont()
    font.setPointSize(7)
    x_axis.setLabelsFont(font)
    y_axis.setRange(0, y_max)
    y_axis.applyNiceNumbers()
    y_axis.setLabelFormat(y_format)
    chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
    chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
    return chart, x_axis, y_axis


def show_bars(view: QWidget, labels: list[str], values: list[int], colour: str = "#2f6fd6") -> None:
    """A bar per label."""
    if not HAS_CHARTS:
        pairs = zip(labels, values, strict=False)
        view.setText(f"{view.text().split(':')[0]}: " + ", ".join(f"{k} {v}" for k, v in pairs if v))
        return
    chart, x_axis, y_axis = _reset(view, labels, max([*values, 4]) + 1, "%d")
    bars = QBarSet("")
    bars.append([float(v) for v in values])
    bars.setColor(QColor(colour))
    series = QBarSeries()
    series.append(bars)
    chart.addSeries(series)
    series.attachAxis(x_axis)
    series.attachAxis(y_axis)


def show_line(view: QWidget, labels: list[str], values: list[float | None], colour: str = "#1f8a4c") -> None:
    """A line over the labels, in percent; gaps (None) are skipped."""
    if not HAS_CHARTS:
        view.setText(f"{view.text().split(':')[0]}: " + ", ".join(
            f"{k} {v * 100:.0f}%" for k, v in zip(labels, values, strict=False) if v is not None))
        return
    chart, x_axis, y_axis = _reset(view, labels, 100, "%d%%")
    series, points = QLineSeries(), QScatterSeries()  # the points too: one hour of data is one point, no line
    series.setColor(QColor(colour))
    points.setColor(QColor(colour))
    points.setMarkerSize(7)
    for x, value in enumerate(values):
        if value is not None:
            series.append(x, value * 100)
            points.append(x, value * 100)
    for shown in (series, points):
        chart.addSeries(shown)
        shown.attachAxis(x_axis)
        shown.attachAxis(y_axis)
    chart.legend().hide()
