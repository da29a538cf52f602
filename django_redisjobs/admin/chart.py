"""The overview's chart of outcomes per minute or hour, drawn as inline SVG.

No chart library: bars are rects, colours come from the admin's CSS variables
(so dark mode follows), and every number is formatted by `format_html`.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 720
HEIGHT = 160
_TOP = 16
_BOTTOM = 20
_LEFT = 36
# Each series: the counters it sums, its label and the CSS colour of its bars.
SERIES = (
    (("succeeded",), "succeeded", "#3f9c4f"),
    (("dead", "retrying"), "failed (dead or retried)", "var(--error-fg, #ba2121)"),
)


def bars_svg(
    buckets: Sequence[dict[str, int]],
    first_ms: int,
    step_ms: int,
    label: str,
    time_format: str = "%H:%M UTC",
) -> SafeString:
    """An SVG of stacked bars, one per bucket (oldest left), with the highest
    count on the axis and a time label at each end."""
    totals = [[sum(b[k] for k in names) for names, _, _ in SERIES] for b in buckets]
    peak = max((sum(t) for t in totals), default=0) or 1
    plot_w = WIDTH - _LEFT
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(len(buckets), 1)
    rects = []
    for index, parts in enumerate(totals):
        base = float(HEIGHT - _BOTTOM)
        for (_, name, colour), count in zip(SERIES, parts, strict=True):
            if not count:
                continue
            height = plot_h * count / peak
            base -= height
            rects.append(
                (
                    f"{_LEFT + index * slot + 1:.1f}",
                    f"{base:.1f}",
                    f"{max(slot - 2, 1):.1f}",
                    f"{height:.1f}",
                    colour,
                    f"{count} {name}",
                )
            )
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" style="fill:{}">'
        "<title>{}</title></rect>",
        rects,
    )
    start = _clock(first_ms, time_format)
    end = _clock(first_ms + step_ms * len(buckets), time_format)
    return format_html(
        '<svg class="redisjobs-chart" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="{label}" preserveAspectRatio="none">'
        '<line x1="{left}" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        '<text x="0" y="{top}" class="tick">{peak}</text>'
        '<text x="0" y="{base}" class="tick">0</text>'
        "{bars}"
        '<text x="{left}" y="{h}" class="tick">{start}</text>'
        '<text x="{w}" y="{h}" class="tick" text-anchor="end">{end}</text>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT - 4,
        left=_LEFT,
        base=HEIGHT - _BOTTOM,
        top=_TOP + 4,
        peak=peak if any(map(sum, totals)) else 0,
        bars=bars,
        start=start,
        end=end,
        label=label,
    )


def legend() -> list[tuple[str, str]]:
    """(label, colour) per series, for the chart's key."""
    return [(name, colour) for _, name, colour in SERIES]


def _clock(ms: int, time_format: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(time_format)
