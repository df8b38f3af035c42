"""A bar chart drawn on the server as SVG that a screen reader can read and a phone can show.

Written here rather than taken from a charting library: the pages' Content-Security-Policy
(`style-src 'self'`, no scripts) refuses the inline <style> and tooltips script that pygal puts
in every chart, and matplotlib is a large dependency for bars. This draws one thing — bars over
a series of periods — with presentation attributes and the classes of library.css only:

- `role="img"` with a <title> and a <desc> (what is shown, and the largest value), and a
  <title> on every bar, read out on focus or hover;
- a `viewBox` and no fixed size, so it scales to the width of a phone;
- the same numbers are always in a table beside the chart (the template's job).
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, BOTTOM, TOP, RIGHT = 44, 34, 12, 8


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten at or above the largest value."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(chart_id: str, title: str, labels: list[str], values: list[int], description: str) -> str:
    """The SVG markup of a bar chart; every text escaped. `labels` and `values` pair up."""
    top = _nice_ceiling(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(values), 1)
    bar_w = max(slot * 0.7, 1.0)
    # Label every bar when they fit; otherwise every few (a month's 31 days on a phone).
    every = 1 if len(labels) <= 12 else max(1, len(labels) // 10)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="chart-grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(format(int(top * fraction), ","))}</text>')
    for index, (label, value) in enumerate(zip(labels, values)):
        height = plot_h * value / top
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h - height
        parts.append(f'<rect class="chart-bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}">'
                     f'<title>{escape(label)}: {value}</title></rect>')
        if index % every == 0:
            parts.append(f'<text class="chart-axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
