"""The desktop app's panel widgets: the live view, the probability bars, the rolling emotion timeline and the
seek bar.

They only draw what they are given; what to show is decided in core.py and window.py.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QImage, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from emorec.desktop.core import EmotionTimeline
from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS
from emorec.types import Face


def emotion_color(name: str) -> QColor:
    b, g, r = EMOTION_COLORS_BGR[name]
    return QColor(r, g, b)


def bgr_to_qimage(bgr: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels, so the numpy frame may be freed or reused."""
    bgr = np.ascontiguousarray(bgr)
    height, width = bgr.shape[:2]
    return QImage(bgr.data, width, height, bgr.strides[0], QImage.Format.Format_BGR888).copy()


class VideoView(QWidget):
    """The annotated frame, scaled to fit with its aspect ratio kept; a click reports frame pixel coordinates."""

    frame_clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: QImage | None = None
        self._highlight: tuple[int, int, int, int] | None = None
        self.placeholder = "Choose a source and press Start"
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_frame(self, bgr: np.ndarray, highlight: tuple[int, int, int, int] | None = None) -> None:
        """Show a frame; ``highlight`` outlines the face the side panel follows."""
        self._image = bgr_to_qimage(bgr)
        self._highlight = highlight
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._image = None
        self._highlight = None
        if placeholder is not None:
            self.placeholder = placeholder
        self.update()

    def _image_rect(self) -> QRectF:
        assert self._image is not None
        scale = min(self.width() / self._image.width(), self.height() / self._image.height())
        w, h = self._image.width() * scale, self._image.height() * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        if self._image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        target = self._image_rect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self._highlight is not None:
            scale = target.width() / self._image.width()
            x1, y1, x2, y2 = self._highlight
            pen = QPen(QColor(255, 255, 255), 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            margin = 4
            painter.drawRect(
                QRectF(
                    target.x() + x1 * scale - margin,
                    target.y() + y1 * scale - margin,
                    (x2 - x1) * scale + 2 * margin,
                    (y2 - y1) * scale + 2 * margin,
                )
            )

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        if self._image is None or event.button() != Qt.MouseButton.LeftButton:
            return
        target = self._image_rect()
        pos = event.position()
        if target.contains(pos):
            scale = self._image.width() / target.width()
            self.frame_clicked.emit((pos.x() - target.x()) * scale, (pos.y() - target.y()) * scale)


class ProbabilityBars(QWidget):
    """One bar per emotion for the followed face, under a title naming its emotion and how it was chosen."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("no face")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        grid = QGridLayout()
        self.bars: dict[str, QProgressBar] = {}
        for row, name in enumerate(EMOTIONS):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
            bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {emotion_color(name).name()}; }}")
            grid.addWidget(QLabel(name), row, 0)
            grid.addWidget(bar, row, 1)
            self.bars[name] = bar
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(grid)
        self.show_face(None)

    def show_face(self, face: Face | None, chosen_by_click: bool = False) -> None:
        if face is None:
            self.title.setText("no face")
        else:
            how = "selected face" if chosen_by_click else "largest face"
            track = f" #{face.track_id}" if face.track_id is not None else ""
            calibrated = ", calibrated" if face.calibrated else ""
            self.title.setText(f"{face.emotion} {face.confidence:.0%} ({how}{track}{calibrated})")
        for i, (name, bar) in enumerate(self.bars.items()):
            p = 0.0 if face is None else float(face.scores[i])
            bar.setValue(round(p * 1000))
            bar.setFormat(f"{p:.1%}" if face is not None else "")
            bar.setToolTip(f"{name}: {p:.3f}")


class TimelinePlot(QWidget):
    """The rolling timeline: each emotion's probability over the last seconds, newest at the right."""

    def __init__(self, timeline: EmotionTimeline, parent: QWidget | None = None):
        super().__init__(parent)
        self.timeline = timeline
        self.setMinimumSize(260, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def layout_for(self, metrics: QFontMetrics) -> tuple[list[tuple[str, QRectF]], QRectF, list[QRectF]]:
        """Where everything goes at this size: each legend entry's box (wrapped into as many rows as the width
        needs), the plot area below the legend, and the boxes of the 0 / 0.5 / 1 tick labels left of it.
        The plot starts half a text line below the legend, so the "1" label never runs into the legend."""
        line_h = metrics.height()
        entries, x, y = [], 6.0, 4.0
        for name in EMOTIONS:
            width = metrics.horizontalAdvance(name) + 22
            if x + width > self.width() and x > 6.0:
                x, y = 6.0, y + line_h + 2
            entries.append((name, QRectF(x, y, width - 6, line_h)))
            x += width
        top = y + line_h + 4 + line_h / 2 + 2
        plot = QRectF(30, top, max(1.0, self.width() - 40), max(1.0, self.height() - top - line_h - 8))
        ticks = [QRectF(0, plot.bottom() - level * plot.height() - line_h / 2, 26, line_h) for level in (0.0, 0.5, 1.0)]
        return entries, plot, ticks

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(250, 250, 250))
        metrics = painter.fontMetrics()
        entries, plot, ticks = self.layout_for(metrics)
        for name, box in entries:
            painter.fillRect(QRectF(box.x(), box.center().y() - 2, 12, 4), emotion_color(name))
            painter.setPen(QColor(40, 40, 40))
            painter.drawText(QRectF(box.x() + 15, box.y(), box.width() - 15, box.height()),
                             Qt.AlignmentFlag.AlignVCenter, name)
        for level, label in zip((0.0, 0.5, 1.0), ticks, strict=True):
            y = plot.bottom() - level * plot.height()
            painter.setPen(QColor(200, 200, 200))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(QColor(90, 90, 90))
            painter.drawText(label, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{level:g}")
        span = self.timeline.span_s
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), metrics.height() + 4),
            Qt.AlignmentFlag.AlignCenter,
            f"last {span:g} s",
        )
        points = self.timeline.points()
        if not points:
            return
        now = points[-1][0]
        for i, name in enumerate(EMOTIONS):
            path = QPainterPath()
            pen_down = False
            for t, scores in points:
                if scores is None:  # no face in that frame: break the line
                    pen_down = False
                    continue
                x = plot.right() - (now - t) / span * plot.width()
                y = plot.bottom() - float(scores[i]) * plot.height()
                if pen_down:
                    path.lineTo(x, y)
                else:
                    path.moveTo(x, y)
                    pen_down = True
            painter.setPen(QPen(emotion_color(name), 2))
            painter.drawPath(path)


class SeekBar(QSlider):
    """A horizontal slider over a video's frames. A click on the groove jumps there (a plain QSlider steps a
    page towards it, which is not what a video player's bar does), and ``valueChanged`` comes once the user
    lets go of the handle, not for every pixel it is dragged."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setTracking(False)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        if event.button() == Qt.MouseButton.LeftButton:
            option = QStyleOptionSlider()
            self.initStyleOption(option)
            style = self.style()
            handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                          QStyle.SubControl.SC_SliderHandle, self)
            if not handle.contains(event.position().toPoint()):
                groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                              QStyle.SubControl.SC_SliderGroove, self)
                span = max(1, groove.width() - handle.width())
                x = round(event.position().x()) - groove.x() - handle.width() // 2
                self.setValue(QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), x, span))
        super().mousePressEvent(event)  # the handle, now under the pointer, can be dragged on from here
