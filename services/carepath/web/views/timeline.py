"""A CarePlan's Tasks on a time axis: one row per Task from its start to its due date, today marked.

The mark at the due date says the state by shape as well as colour: a filled circle when done, a hollow circle
when due, a cross when late, a dash when closed otherwise; each row also ends with the state in words.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from carepath.web.views.fhir import Resource, due, ended, label, started
from carepath.web.views.i18n import Translator, format_date
from carepath.web.views.svg import root, shorten, text

LEFT, RIGHT, TOP, ROW = 300, 130, 34, 26


def state(task: Resource, now: datetime) -> str:
    """done, late, due or closed."""
    if (end := ended(task)) is not None:
        return end
    moment = due(task)
    return "late" if moment is not None and moment < now else "due"


def _mark(x: float, y: float, kind: str) -> str:
    if kind == "done":
        return f'<circle class="m-done" cx="{x:.1f}" cy="{y}" r="6"/>'
    if kind == "late":
        return (f'<path class="m-late" d="M{x - 6:.1f} {y - 6} L{x + 6:.1f} {y + 6} M{x + 6:.1f} {y - 6} '
                f'L{x - 6:.1f} {y + 6}"/>')  # fmt: skip
    if kind == "closed":
        return f'<path class="m-closed" d="M{x - 6:.1f} {y} L{x + 6:.1f} {y}"/>'
    return f'<circle class="m-due" cx="{x:.1f}" cy="{y}" r="6"/>'


def timeline_svg(tasks: list[Resource], now: datetime, tz: ZoneInfo, t: Translator, width: int = 960) -> str:
    dated = sorted((task for task in tasks if due(task) is not None), key=lambda k: (due(k), label(k)))
    states = [state(task, now) for task in dated]
    title = t("timeline.title", n=len(dated), done=states.count("done"), due=states.count("due"),
              late=states.count("late"))  # fmt: skip
    starts = [started(task) or due(task) for task in dated]
    moments = [m for m in (*starts, *(due(task) for task in dated), now) if m is not None]
    first, last = min(moments) - timedelta(days=1), max(moments) + timedelta(days=1)
    span = (last - first).total_seconds() or 1.0
    plot = width - LEFT - RIGHT

    def x_of(moment: datetime) -> float:
        return LEFT + plot * (moment - first).total_seconds() / span

    height = TOP + ROW * max(len(dated), 1) + 30
    body = [f'<line class="axis" x1="{LEFT}" y1="{TOP - 8}" x2="{LEFT + plot}" y2="{TOP - 8}"/>']
    for tick in (first + timedelta(days=1), last - timedelta(days=1)):
        body.append(f'<text class="tick" x="{x_of(tick):.1f}" y="{TOP - 14}" text-anchor="middle">'
                    f"{text(format_date(tick, t.lang, tz, with_time=False))}</text>")  # fmt: skip
    today_x = x_of(now)
    body.append(f'<line class="today" x1="{today_x:.1f}" y1="{TOP - 8}" x2="{today_x:.1f}" y2="{height - 24}"/>'
                f'<text class="today-label" x="{today_x:.1f}" y="{height - 8}" text-anchor="middle">'
                f'{text(t("timeline.today"))}</text>')  # fmt: skip
    for row, (task, kind, start) in enumerate(zip(dated, states, starts, strict=True)):
        y = TOP + ROW * row + ROW // 2
        end = due(task)
        assert end is not None and start is not None
        words = t(f"timeline.{kind}")
        when = format_date(end, t.lang, tz)
        body.append(
            f'<g class="row {kind}"><title>{text(label(task))}: {text(words)}, {text(when)}</title>'
            f'<text class="name" x="{LEFT - 10}" y="{y + 4}" text-anchor="end">{text(shorten(label(task), 42))}</text>'
            f'<line class="bar" x1="{x_of(start):.1f}" y1="{y}" x2="{x_of(end):.1f}" y2="{y}"/>'
            f"{_mark(x_of(end), y, kind)}"
            f'<text class="state" x="{LEFT + plot + 10}" y="{y + 4}">{text(words)}</text></g>'
        )
    return root(width, height, title, title, body, "timeline")
