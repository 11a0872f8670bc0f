"""Inline SVG shared by the timeline and the pathway drawing: escaped text and a root element that is an image
with a title (`<svg role="img">` + `<title>`), so screen readers announce it and it prints without script."""

from __future__ import annotations

from html import escape


def text(value: object) -> str:
    return escape(str(value), quote=True)


def root(width: int, height: int, title: str, desc: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="{css_class}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="{css_class}-t {css_class}-d">'
        f'<title id="{css_class}-t">{text(title)}</title><desc id="{css_class}-d">{text(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
