"""SVG plots of a benchmark, written by srlab itself (no plotting library).

- :func:`scatter_svg`: PSNR against MACs or parameters, log-scaled x axis, one labelled bubble per
  model whose *area* is proportional to its latency (the papers' "efficiency" figure). A model with
  zero cost (bicubic) cannot sit on a log axis: it is drawn hollow at the axis' left end, where the
  axis carries a "0" tick behind a break mark.
- :func:`box_svg`: the per-image PSNR of each model as a box plot (quartiles, median, whiskers to the
  furthest value within 1.5 IQR) with every image drawn as a point beside it.
- :func:`curves_svg`: trade-off curves, PSNR against a cost (MACs, latency) on linear axes, one line with
  markers per adaptive model (a marker per knob value), and reference models as labelled squares.
- :func:`bars_svg`, :func:`xy_svg`: values with their confidence intervals as bars with error bars, and
  labelled points on linear axes with vertical error bars (a MOS study: MOS per method, a metric against
  the MOS).
- :func:`series_svg`: plain line plots (a training run's losses, learning rate and validation scores
  against the iteration), one ``<g class="series">`` per line, named in a legend when there are several
  (in the right-hand corner the lines cross less).

Every model is one ``<g class="point">`` (scatter, curve references), ``<g class="box">`` (box plot) or
``<g class="curve">`` (trade-off curve) carrying ``data-model``; the axis titles are
``<text class="axis-label">``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

WIDTH, HEIGHT = 640, 420
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 30, 40, 60
MAX_RADIUS = 22.0
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)


@dataclass(frozen=True)
class Point:
    label: str
    x: float  # MACs or parameters; 0 for a model without any (drawn at the axis' left end)
    y: float  # PSNR
    latency_ms: float | None  # bubble area; None: a fixed small marker


def _attr(value: object) -> str:
    return escape(str(value), {'"': "&quot;"})


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _linear_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """A padded range covering [low, high] and the round ticks inside it."""
    if not math.isfinite(low) or not math.isfinite(high):
        low, high = 0.0, 1.0
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = 0.08 * (high - low)
    low, high = low - pad, high + pad
    step = _nice_step(high - low)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return low, high, ticks


def _log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """A log range (in decades, padded) covering [low, high] and ticks at 1, 2, 5 x 10^k."""
    lo_exp, hi_exp = math.log10(low), math.log10(high)
    if hi_exp - lo_exp < 0.3:
        lo_exp, hi_exp = lo_exp - 0.3, hi_exp + 0.3
    pad = 0.08 * (hi_exp - lo_exp)
    lo_exp, hi_exp = lo_exp - pad, hi_exp + pad
    factors = (1, 2, 5) if hi_exp - lo_exp < 3 else (1,)
    ticks = []
    for exponent in range(math.floor(lo_exp), math.ceil(hi_exp) + 1):
        for factor in factors:
            value = factor * 10.0 ** exponent
            if lo_exp <= math.log10(value) <= hi_exp:
                ticks.append(value)
    return lo_exp, hi_exp, ticks


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text class="title" x="{WIDTH / 2:.1f}" y="22" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>',
        f'<text class="axis-label" x="{MARGIN_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 14}" '
        f'text-anchor="middle">{escape(x_label)}</text>',
        f'<text class="axis-label" x="18" y="{MARGIN_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {MARGIN_TOP + plot_h / 2:.1f})">{escape(y_label)}</text>',
    ]


def _tick_digits(ticks: Sequence[float]) -> int:
    """Decimals that write every tick exactly (0.00025 needs 5; 400 needs 0)."""
    def exact(tick: float, digits: int) -> bool:
        scaled = tick * 10**digits
        return tick == 0 or (round(scaled) != 0 and abs(scaled - round(scaled)) <= 1e-6 * max(abs(scaled), 1.0))

    for digits in range(12):
        if all(exact(tick, digits) for tick in ticks):
            return digits
    return 12


def _y_axis(lines: list[str], ticks: Sequence[float], to_y, digits: int = 2) -> None:
    right = WIDTH - MARGIN_RIGHT
    for tick in ticks:
        y = to_y(tick)
        lines.append(f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        lines.append(
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.{digits}f}</text>'
        )


def _close(lines: list[str], note: str) -> str:
    """The note (top right), the end of the SVG, the text."""
    if note:
        lines.append(
            f'<text class="note" x="{WIDTH - MARGIN_RIGHT}" y="{MARGIN_TOP - 6}" text-anchor="end" '
            f'font-size="10" fill="#555">{escape(note)}</text>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def _x_axis(lines: list[str], ticks: Sequence[float], to_x, bottom: float) -> None:
    for tick in ticks:
        x = to_x(tick)
        lines.append(f'<line x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#e5e5e5"/>')
        lines.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_fmt(tick)}</text>')


def scatter_svg(points: Sequence[Point], *, title: str, x_label: str, y_label: str, note: str = "") -> str:
    """PSNR (y) against a cost (x, log scale) with latency bubbles; returns the SVG document."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    positive = [p.x for p in points if p.x > 0]
    lo_exp, hi_exp, x_ticks = _log_ticks(min(positive), max(positive)) if positive else (0.0, 1.0, [1.0, 10.0])
    has_zero = any(p.x <= 0 for p in points)
    # A zero-cost model sits in a strip at the left end of the axis, separated by a break mark.
    zero_strip = 36 if has_zero else 0
    x0 = MARGIN_LEFT + zero_strip

    def to_x(value: float) -> float:
        if value <= 0:
            return MARGIN_LEFT + zero_strip / 2
        return x0 + (math.log10(value) - lo_exp) / (hi_exp - lo_exp) * (plot_w - zero_strip)

    ys = [p.y for p in points if math.isfinite(p.y)]
    y_low, y_high, y_ticks = _linear_ticks(min(ys, default=0.0), max(ys, default=1.0))

    def to_y(value: float) -> float:
        return MARGIN_TOP + (y_high - value) / (y_high - y_low) * plot_h

    lines = _frame(title, x_label, y_label)
    _y_axis(lines, y_ticks, to_y)
    bottom = MARGIN_TOP + plot_h
    _x_axis(lines, x_ticks, to_x, bottom)
    if has_zero:
        x = to_x(0)
        lines.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">0</text>')
        lines.append(
            f'<path d="M{x0 - 4} {bottom + 5} l4 -10 M{x0} {bottom + 5} l4 -10" stroke="#333" fill="none"/>'
        )
        lines.append(f'<line x1="{x0}" y1="{MARGIN_TOP}" x2="{x0}" y2="{bottom}" stroke="#bbb" stroke-dasharray="3 3"/>')

    latencies = [p.latency_ms for p in points if p.latency_ms is not None and p.latency_ms > 0]
    max_latency = max(latencies, default=0.0)
    # Largest bubbles first, so small ones stay visible on top.
    order = sorted(range(len(points)), key=lambda i: -(points[i].latency_ms or 0.0))
    for index in order:
        point = points[index]
        color = PALETTE[index % len(PALETTE)]
        x, y = to_x(point.x), to_y(point.y)
        if point.latency_ms is not None and max_latency > 0:
            radius = MAX_RADIUS * math.sqrt(max(point.latency_ms, 0.0) / max_latency)  # area ~ latency
        else:
            radius = 4.0
        fill = "none" if point.x <= 0 else color
        latency = "n/a" if point.latency_ms is None else f"{point.latency_ms:.2f} ms"
        lines.append(f'<g class="point" data-model="{_attr(point.label)}">')
        lines.append(
            f"<title>{escape(point.label)}: x {point.x:.4g}, PSNR {point.y:.2f} dB, latency {latency}</title>"
        )
        lines.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.2f}" fill="{fill}" fill-opacity="0.35" '
            f'stroke="{color}" stroke-width="1.5"/>'
        )
        lines.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}"/>')
        offset = max(radius, 3) + 4
        if x + offset + 6.5 * len(point.label) > WIDTH - MARGIN_RIGHT:  # no room on the right: label on the left
            label_x, anchor = x - offset, "end"
        else:
            label_x, anchor = x + offset, "start"
        lines.append(
            f'<text class="point-label" x="{label_x:.1f}" y="{y - 4:.1f}" text-anchor="{anchor}" fill="{color}">'
            f"{escape(point.label)}</text>"
        )
        lines.append("</g>")
    return _close(lines, note)


def _box_stats(values: np.ndarray) -> tuple[float, float, float, float, float]:
    q1, median, q3 = (float(v) for v in np.percentile(values, [25, 50, 75]))
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    return float(inside.min()), q1, median, q3, float(inside.max())


def box_svg(groups: Sequence[tuple[str, Sequence[float]]], *, title: str, y_label: str, x_label: str = "model") -> str:
    """One box (with its points) per model of the per-image values; returns the SVG document."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    every = [float(v) for _, values in groups for v in values if math.isfinite(v)]
    y_low, y_high, y_ticks = _linear_ticks(min(every, default=0.0), max(every, default=1.0))

    def to_y(value: float) -> float:
        return MARGIN_TOP + (y_high - value) / (y_high - y_low) * plot_h

    lines = _frame(title, x_label, y_label)
    _y_axis(lines, y_ticks, to_y, digits=1 if y_high - y_low > 5 else 2)
    slot = plot_w / max(1, len(groups))
    box_w = min(60.0, slot * 0.4)
    bottom = MARGIN_TOP + plot_h
    for index, (label, values) in enumerate(groups):
        color = PALETTE[index % len(PALETTE)]
        centre = MARGIN_LEFT + slot * (index + 0.5)
        data = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        lines.append(f'<g class="box" data-model="{_attr(label)}">')
        lines.append(
            f'<text class="tick" x="{centre:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>'
        )
        if data.size:
            low, q1, median, q3, high = _box_stats(data)
            lines.append(
                f"<title>{escape(label)}: median {median:.2f} dB, quartiles {q1:.2f} / {q3:.2f}, "
                f"{data.size} images</title>"
            )
            left = centre - box_w / 2
            lines.append(
                f'<line x1="{centre:.1f}" y1="{to_y(high):.1f}" x2="{centre:.1f}" y2="{to_y(low):.1f}" stroke="{color}"/>'
            )
            for whisker in (low, high):
                lines.append(
                    f'<line x1="{centre - box_w / 4:.1f}" y1="{to_y(whisker):.1f}" x2="{centre + box_w / 4:.1f}" '
                    f'y2="{to_y(whisker):.1f}" stroke="{color}"/>'
                )
            lines.append(
                f'<rect x="{left:.1f}" y="{to_y(q3):.1f}" width="{box_w:.1f}" '
                f'height="{max(to_y(q1) - to_y(q3), 0.5):.1f}" fill="{color}" fill-opacity="0.2" stroke="{color}"/>'
            )
            lines.append(
                f'<line class="median" x1="{left:.1f}" y1="{to_y(median):.1f}" x2="{left + box_w:.1f}" '
                f'y2="{to_y(median):.1f}" stroke="{color}" stroke-width="2.5"/>'
            )
            # Every image as a point to the right of its box, spread by a fixed (deterministic) jitter.
            for k, value in enumerate(data):
                jitter = ((k * 0.618034) % 1.0 - 0.5) * box_w * 0.5
                lines.append(
                    f'<circle class="sample" cx="{centre + box_w * 0.85 + jitter:.1f}" cy="{to_y(value):.1f}" '
                    f'r="2.5" fill="{color}" fill-opacity="0.7"/>'
                )
        lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Curve:
    """One adaptive model's trade-off: a marker per knob value at (cost, PSNR), ``tags`` naming them."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    tags: tuple[str, ...]  # e.g. "eta=0.3", written beside each marker


class _Legend:
    """The names of a trade-off plot's curves and points, stacked in its lower right corner (curves rise
    to the upper right, so that corner is the emptiest); an entry is its marker and its name."""

    ROW = 16

    def __init__(self, labels: Sequence[str], *, upper: bool = False) -> None:
        """``upper``: in the upper right corner instead (falling curves: training losses)."""
        self.count = len(labels)
        self.width = 30 + 6.5 * max((len(label) for label in labels), default=0)
        self.right = WIDTH - MARGIN_RIGHT - 8
        self.bottom = MARGIN_TOP + 8 + self.ROW * self.count + 6 if upper else HEIGHT - MARGIN_BOTTOM - 8

    def covers(self, x: float, y: float) -> bool:
        height = self.ROW * self.count + 6
        return self.right - self.width <= x <= self.right and self.bottom - height <= y <= self.bottom

    def box(self) -> list[str]:
        if not self.count:
            return []
        height = self.ROW * self.count + 6
        return [
            f'<rect class="legend" x="{self.right - self.width:.1f}" y="{self.bottom - height:.1f}" '
            f'width="{self.width:.1f}" height="{height}" fill="white" fill-opacity="0.85" stroke="#ccc"/>'
        ]

    def entry(self, index: int, label: str, color: str, marker: str) -> list[str]:
        y = self.bottom - self.ROW * (self.count - index) + 5
        x = self.right - self.width + 12
        return [
            f'<g transform="translate({x:.1f} {y + 5:.1f})">{marker}</g>',
            f'<text class="legend-label" x="{x + 12:.1f}" y="{y + 9:.1f}" fill="{color}">{escape(label)}</text>',
        ]


def _linear_plot(xs: Sequence[float], ys: Sequence[float], *, title: str, x_label: str, y_label: str,
                 y_digits: int | None = None) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    """The frame and both linear axes of a plot covering ``xs`` and ``ys``: (SVG lines, to_x, to_y).
    ``y_digits``: the y ticks' decimals (None: as many as write every tick exactly)."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    x_low, x_high, x_ticks = _linear_ticks(min(xs, default=0.0), max(xs, default=1.0))
    y_low, y_high, y_ticks = _linear_ticks(min(ys, default=0.0), max(ys, default=1.0))

    def to_x(value: float) -> float:
        return MARGIN_LEFT + (value - x_low) / (x_high - x_low) * plot_w

    def to_y(value: float) -> float:
        return MARGIN_TOP + (y_high - value) / (y_high - y_low) * plot_h

    lines = _frame(title, x_label, y_label)
    _y_axis(lines, y_ticks, to_y, digits=_tick_digits(y_ticks) if y_digits is None else y_digits)
    _x_axis(lines, x_ticks, to_x, MARGIN_TOP + plot_h)
    return lines, to_x, to_y


def curves_svg(
    curves: Sequence[Curve], references: Sequence[Point], *, title: str, x_label: str, y_label: str, note: str = ""
) -> str:
    """Trade-off curves (linear axes, a line through the markers in the order given) and reference
    points (``Point.latency_ms`` is not drawn), named in a legend; returns the SVG document."""
    xs = [x for c in curves for x in c.xs] + [p.x for p in references]
    ys = [y for c in curves for y in c.ys] + [p.y for p in references]
    lines, to_x, to_y = _linear_plot(xs, ys, title=title, x_label=x_label, y_label=y_label, y_digits=2)
    legend = _Legend([c.label for c in curves] + [p.label for p in references])
    lines += legend.box()
    for index, curve in enumerate(curves):
        color = PALETTE[index % len(PALETTE)]
        coords = [(to_x(x), to_y(y)) for x, y in zip(curve.xs, curve.ys)]
        lines.append(f'<g class="curve" data-model="{_attr(curve.label)}">')
        lines.append(f"<title>{escape(curve.label)}</title>")
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        lines.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        labelled: list[tuple[float, float]] = []
        for (x, y), value_x, value_y, tag in zip(coords, curve.xs, curve.ys, curve.tags):
            lines.append(
                f'<circle class="marker" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(curve.label)} {escape(tag)}: x {value_x:.4g}, PSNR {value_y:.2f} dB</title></circle>"
            )
            # Knob values that land on one spot (the same routing) are named once; the tooltips name each.
            if tag and all(abs(x - lx) > 12 or abs(y - ly) > 10 for lx, ly in labelled):
                labelled.append((x, y))
                lines.append(
                    f'<text class="marker-label" x="{x + 5:.1f}" y="{y + 12:.1f}" font-size="9" fill="{color}">'
                    f"{escape(tag)}</text>"
                )
        lines += legend.entry(index, curve.label, color, f'<circle cx="0" cy="0" r="3.5" fill="{color}"/>')
        lines.append("</g>")
    for index, point in enumerate(references):
        color = PALETTE[(len(curves) + index) % len(PALETTE)]
        x, y = to_x(point.x), to_y(point.y)
        lines.append(f'<g class="point" data-model="{_attr(point.label)}">')
        lines.append(f"<title>{escape(point.label)}: x {point.x:.4g}, PSNR {point.y:.2f} dB</title>")
        lines.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}"/>')
        square = f'<rect x="-4" y="-4" width="8" height="8" fill="{color}"/>'
        lines += legend.entry(len(curves) + index, point.label, color, square)
        lines.append("</g>")
    return _close(lines, note)


@dataclass(frozen=True)
class Series:
    """One line of a :func:`series_svg` plot: ``ys`` against ``xs``, in the order given."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]


# Up to this many points a series also gets a marker per point (a short run's few validations).
_MARKED_POINTS = 40


def series_svg(series: Sequence[Series], *, title: str, x_label: str, y_label: str, note: str = "") -> str:
    """Lines on linear axes, y ticks written with the decimals they need (a learning rate of 2.5e-4 as
    0.00025); a legend when there are several lines; returns the SVG document."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    finite = [(x, y) for line in series for x, y in zip(line.xs, line.ys) if math.isfinite(x) and math.isfinite(y)]
    x_low, x_high, x_ticks = _linear_ticks(min((x for x, _ in finite), default=0.0),
                                           max((x for x, _ in finite), default=1.0))
    y_low, y_high, y_ticks = _linear_ticks(min((y for _, y in finite), default=0.0),
                                           max((y for _, y in finite), default=1.0))

    def to_x(value: float) -> float:
        return MARGIN_LEFT + (value - x_low) / (x_high - x_low) * plot_w

    def to_y(value: float) -> float:
        return MARGIN_TOP + (y_high - value) / (y_high - y_low) * plot_h

    lines = _frame(title, x_label, y_label)
    _y_axis(lines, y_ticks, to_y, digits=_tick_digits(y_ticks))
    _x_axis(lines, x_ticks, to_x, MARGIN_TOP + plot_h)
    labels = [line.label for line in series] if len(series) > 1 else []
    # The legend goes to the right-hand corner that the lines cross less (the upper one for falling losses).
    traced = []
    for line in series:
        coords = [(to_x(x), to_y(y)) for x, y in zip(line.xs, line.ys) if math.isfinite(x) and math.isfinite(y)]
        traced += [(ax + (bx - ax) * t / 8, ay + (by - ay) * t / 8)
                   for (ax, ay), (bx, by) in zip(coords, coords[1:]) for t in range(8)] + coords[-1:]
    lower, upper = _Legend(labels), _Legend(labels, upper=True)
    legend = upper if sum(upper.covers(*p) for p in traced) < sum(lower.covers(*p) for p in traced) else lower
    lines += legend.box()
    for index, line in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        coords = [(to_x(x), to_y(y)) for x, y in zip(line.xs, line.ys) if math.isfinite(x) and math.isfinite(y)]
        lines.append(f'<g class="series" data-series="{_attr(line.label)}">')
        lines.append(f"<title>{escape(line.label)}</title>")
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        lines.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if len(coords) <= _MARKED_POINTS:
            lines += [f'<circle class="marker" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords]
        if len(series) > 1:
            lines += legend.entry(index, line.label, color,
                                  f'<line x1="-5" y1="0" x2="5" y2="0" stroke="{color}" stroke-width="2"/>')
        lines.append("</g>")
    return _close(lines, note)


@dataclass(frozen=True)
class Mark:
    """One labelled value of :func:`bars_svg` (``x`` unused) or :func:`xy_svg`, with the half-width of its
    interval (``error``, drawn as an error bar; None: none drawn)."""

    label: str
    x: float
    y: float
    error: float | None = None


def _error_bar(x: float, low_y: float, high_y: float, color: str) -> list[str]:
    """A vertical interval from ``high_y`` to ``low_y`` (SVG coordinates) with caps."""
    return [
        f'<line class="error" x1="{x:.1f}" y1="{high_y:.1f}" x2="{x:.1f}" y2="{low_y:.1f}" stroke="{color}"/>',
        *(f'<line x1="{x - 5:.1f}" y1="{y:.1f}" x2="{x + 5:.1f}" y2="{y:.1f}" stroke="{color}"/>'
          for y in (low_y, high_y)),
    ]


def bars_svg(marks: Sequence[Mark], *, title: str, y_label: str, x_label: str = "method",
             y_range: tuple[float, float] | None = None, note: str = "") -> str:
    """One bar per mark (its ``y``) with its error bar; bars rise from 0, or from the bottom of ``y_range``
    (e.g. (1, 5) for a MOS) when 0 is outside it. One ``<g class="bar">`` carrying ``data-label`` each."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    if y_range is not None:
        y_low, y_high = y_range
        y_ticks = [y_low + k * _nice_step(y_high - y_low) for k in range(100)]
        y_ticks = [t for t in y_ticks if t <= y_high + 1e-9]
    else:
        ends = [v for m in marks for v in (m.y - (m.error or 0.0), m.y + (m.error or 0.0)) if math.isfinite(v)]
        y_low, y_high, y_ticks = _linear_ticks(min(ends + [0.0]), max(ends + [0.0]))

    def to_y(value: float) -> float:
        return MARGIN_TOP + (y_high - min(max(value, y_low), y_high)) / (y_high - y_low) * plot_h

    lines = _frame(title, x_label, y_label)
    _y_axis(lines, y_ticks, to_y, digits=_tick_digits(y_ticks))
    baseline = to_y(0.0)
    slot = plot_w / max(1, len(marks))
    bar_w = min(60.0, slot * 0.6)
    bottom = MARGIN_TOP + plot_h
    for index, mark in enumerate(marks):
        color = PALETTE[index % len(PALETTE)]
        centre = MARGIN_LEFT + slot * (index + 0.5)
        lines.append(f'<g class="bar" data-label="{_attr(mark.label)}">')
        interval = "" if mark.error is None else f" ± {mark.error:.3g}"
        lines.append(f"<title>{escape(mark.label)}: {mark.y:.3f}{interval}</title>")
        top = to_y(mark.y)
        lines.append(
            f'<rect x="{centre - bar_w / 2:.1f}" y="{min(top, baseline):.1f}" width="{bar_w:.1f}" '
            f'height="{max(abs(baseline - top), 0.5):.1f}" fill="{color}" fill-opacity="0.6" stroke="{color}"/>'
        )
        if mark.error is not None:
            lines += _error_bar(centre, to_y(mark.y - mark.error), to_y(mark.y + mark.error), "#222")
        lines.append(f'<text class="tick" x="{centre:.1f}" y="{bottom + 16}" text-anchor="middle">'
                     f"{escape(mark.label)}</text>")
        lines.append("</g>")
    return _close(lines, note)


def xy_svg(marks: Sequence[Mark], *, title: str, x_label: str, y_label: str, note: str = "") -> str:
    """Labelled points on linear axes (a metric against the MOS), each with its vertical error bar; one
    ``<g class="point">`` carrying ``data-label`` each."""
    ends = [v for m in marks for v in (m.y - (m.error or 0.0), m.y + (m.error or 0.0))]
    lines, to_x, to_y = _linear_plot([m.x for m in marks], ends, title=title, x_label=x_label, y_label=y_label)
    for index, mark in enumerate(marks):
        color = PALETTE[index % len(PALETTE)]
        x, y = to_x(mark.x), to_y(mark.y)
        lines.append(f'<g class="point" data-label="{_attr(mark.label)}">')
        lines.append(f"<title>{escape(mark.label)}: x {mark.x:.4g}, y {mark.y:.3f}</title>")
        if mark.error is not None:
            lines += _error_bar(x, to_y(mark.y - mark.error), to_y(mark.y + mark.error), color)
        lines.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/>')
        anchor, label_x = ("end", x - 7) if x + 7 + 6.5 * len(mark.label) > WIDTH - MARGIN_RIGHT else ("start", x + 7)
        lines.append(f'<text class="point-label" x="{label_x:.1f}" y="{y - 6:.1f}" text-anchor="{anchor}" '
                     f'fill="{color}">{escape(mark.label)}</text>')
        lines.append("</g>")
    return _close(lines, note)
