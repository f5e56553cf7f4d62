"""Draw a training-loss curve as a small standalone SVG (no matplotlib: it is not a dependency).

The model card embeds the file; the Hub renders SVG images in markdown. Non-finite losses (a run
that hit NaN) are skipped rather than breaking the drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_W, _H = 640, 320
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 60, 20, 30, 45


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def step_ticks(lo: float, hi: float, n: int = 5) -> list[int]:
    """Whole steps, each once, at a round spacing (1, 2, 5, 10, 20...): steps 1-3 read "1, 2, 3",
    never "1, 2, 2, 2, 3"."""
    first, last = math.ceil(lo), math.floor(hi)
    if last <= first:
        return [first]
    raw = (last - first) / (n - 1)
    spacing = next(m * 10**e for e in range(0, 12) for m in (1, 2, 5) if m * 10**e >= raw)
    start = math.ceil(first / spacing) * spacing
    ticks = list(range(start, last + 1, spacing))
    return [first, *ticks] if first not in ticks and start - first > spacing / 2 else ticks


def _fmt(v: float) -> str:
    return f"{v:.3g}"


HELDOUT_COLOUR = "#d97706"


def loss_svg(history: Sequence[tuple[int, float]], *, title: str = "Training loss",
             heldout: Sequence[tuple[int, float]] = (), best_step: int | None = None) -> str:
    """Return an SVG document plotting loss (y) against step (x).

    `heldout`: the held-out loss after each epoch, drawn as a second, dotted line with a legend;
    `best_step` (the epoch whose adapter was kept) is ringed. Raises ValueError when there is no
    finite training point: the caller decides to omit the image.
    """
    pts = [(float(s), float(v)) for s, v in history if math.isfinite(v)]
    if not pts:
        raise ValueError("no finite loss values to draw")
    held = [(float(s), float(v)) for s, v in heldout if math.isfinite(v)]
    xs, ys = [p[0] for p in pts + held], [p[1] for p in pts + held]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def px(x: float) -> float:
        return _PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return _PAD_T + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{title}: step against loss">',
        f"<title>{title}</title>",
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-family="sans-serif" font-size="14">'
        f"{title}</text>",
    ]
    for t in _ticks(y0, y1):  # horizontal grid + y labels
        y = py(t)
        parts.append(f'<line x1="{_PAD_L}" y1="{y:.1f}" x2="{_W - _PAD_R}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-family="sans-serif" '
                     f'font-size="11">{_fmt(t)}</text>')
    for t in step_ticks(min(xs), max(xs)):
        x = px(t)
        parts.append(f'<text x="{x:.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle" '
                     f'font-family="sans-serif" font-size="11">{t}</text>')
    parts.append(f'<line x1="{_PAD_L}" y1="{_H - _PAD_B}" x2="{_W - _PAD_R}" y2="{_H - _PAD_B}" '
                 f'stroke="black"/>')
    parts.append(f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_H - _PAD_B}" stroke="black"/>')
    parts.append(f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle" font-family="sans-serif" '
                 f'font-size="12">step</text>')
    parts.append(f'<text x="14" y="{_H / 2}" text-anchor="middle" font-family="sans-serif" font-size="12" '
                 f'transform="rotate(-90 14 {_H / 2})">loss</text>')
    coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
    if len(pts) == 1:
        parts.append(f'<circle cx="{px(xs[0]):.1f}" cy="{py(ys[0]):.1f}" r="3" fill="#4f46e5"/>')
    else:
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#4f46e5" stroke-width="2"/>')
    if held:
        c = HELDOUT_COLOUR
        hc = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in held)
        parts.append(f'<polyline points="{hc}" fill="none" stroke="{c}" stroke-width="2" '
                     'stroke-dasharray="5 4"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>' for x, y in held]
        for x, y in held:
            if best_step is not None and round(x) == best_step:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="7" fill="none" stroke="{c}" '
                             'stroke-width="2"><title>kept adapter</title></circle>')
        lx, ty = _W - _PAD_R - 170, _PAD_T + 8
        font = 'font-family="sans-serif" font-size="11"'
        parts.append(f'<line x1="{lx}" y1="{ty}" x2="{lx + 20}" y2="{ty}" stroke="#4f46e5" stroke-width="2"/>'
                     f'<text x="{lx + 26}" y="{ty + 4}" {font}>training</text>')
        parts.append(f'<line x1="{lx}" y1="{ty + 16}" x2="{lx + 20}" y2="{ty + 16}" stroke="{c}" '
                     f'stroke-width="2" stroke-dasharray="5 4"/>'
                     f'<text x="{lx + 26}" y="{ty + 20}" {font}>held-out (each epoch)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
