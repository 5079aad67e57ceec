"""Charts as server-rendered SVG: no JavaScript, no build step, readable without colour (labels
carry the numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2f6f8f", "#c2571a", "#3c8d40", "#8e44ad", "#b8860b", "#555555")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # a share, 0..1; None when there is nothing to count yet
    detail: str = ""  # e.g. "13 of 20"
    reference: float | None = None  # the field's reference point, drawn as a tick


def _pct(v: float) -> str:
    return f"{round(v * 100)}%"


def share_bars(bars: Sequence[Bar], title: str, width: int = 560) -> str:
    """Horizontal 0-100% bars, one per row, with an optional reference tick and its label."""
    row, label_w, pad = 46, 210, 8
    plot_w = width - label_w - 100
    height = row * len(bars) + 24
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, b in enumerate(bars):
        y = i * row + pad
        out.append(f'<text x="0" y="{y + 15}" class="lbl">{escape(b.label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="20" fill="#eceff1"/>')
        if b.value is not None:
            w = max(0.0, min(1.0, b.value)) * plot_w
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="20" fill="{PALETTE[0]}"/>')
        text = _pct(b.value) if b.value is not None else "no data yet"
        out.append(f'<text x="{label_w + plot_w + 6}" y="{y + 15}" class="val">{escape(text)}</text>')
        if b.detail:
            out.append(f'<text x="{label_w}" y="{y + 34}" class="note">{escape(b.detail)}</text>')
        if b.reference is not None:
            x = label_w + b.reference * plot_w
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 4}" y2="{y + 24}" stroke="{PALETTE[1]}" stroke-width="3"/>'
            )
            out.append(f'<text x="{x + 4:.1f}" y="{y + 34}" class="ref">reference {escape(_pct(b.reference))}</text>')
    out.append("</svg>")
    return "".join(out)


def rating_lines(rows: Sequence[dict[str, object]], names: dict[str, str], width: int = 560) -> str:
    """Average rating per period, one line per clinician (``bot.stats.ratings_over_time`` rows)."""
    if not rows:
        return '<p class="empty">No ratings in this period yet.</p>'
    periods = sorted({str(r["period"]) for r in rows})
    series: dict[str, dict[str, float]] = {}
    for r in rows:
        key = str(r["clinician"] or "")
        avg = r["average"]
        series.setdefault(key, {})[str(r["period"])] = float(avg) if isinstance(avg, int | float) else 0.0
    top = max(5.0, *(v for s in series.values() for v in s.values()))
    left, right, top_pad, bottom = 34, 16, 12, 40
    legend_h = 18 * len(series)
    height = 200 + legend_h
    plot_h = 200 - top_pad - bottom
    plot_w = width - left - right

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / len(periods))

    def y(v: float) -> float:
        return top_pad + plot_h - (v / top) * plot_h

    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg"><title>Average rating per clinician over time</title>'
    ]
    for tick in range(0, int(top) + 1):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" class="axis" text-anchor="end">{tick}</text>'
        )
    step = max(1, len(periods) // 6)
    for i, p in enumerate(periods):
        if i % step == 0:
            out.append(
                f'<text x="{x(i):.1f}" y="{200 - bottom + 16}" class="axis" text-anchor="middle">{escape(p)}</text>'
            )
    for n, (clin, pts) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        coords = [(x(i), y(pts[p]), pts[p]) for i, p in enumerate(periods) if p in pts]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for cx, cy, v in coords:
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}"><title>{v:.2f}</title></circle>')
        ly = 200 + 18 * n + 4
        label = names.get(clin, clin) or "no clinician"
        out.append(
            f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 18}" y="{ly + 11}" class="lbl">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
