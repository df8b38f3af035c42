"""The Jinja environment (autoescaped, translated) and the one way pages are rendered."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request
from litestar.response import Template

from library import i18n
from library.settings import PROJECT_ROOT
from library.web.auth import principal_of

TEMPLATE_DIR = PROJECT_ROOT / "templates"


def _format_hours(hours: list[tuple[dt.time, dt.time]]) -> str:
    return ", ".join(f"{i18n.format_time(opens)}–{i18n.format_time(closes)}" for opens, closes in hours)


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        date=lambda value, format="medium": i18n.format_date(value, format) if value else "",
        time=lambda value: i18n.format_time(value) if value else "",
        datetime=lambda value: i18n.format_datetime(value) if value else "",
        hours=_format_hours,
        weekday=i18n.format_weekday,
        urlquote=lambda value: quote(str(value), safe=""),
    )
    env.globals.update(localized=i18n.localized, current_language=i18n.current_language.get, timedelta=dt.timedelta,
                       colon=i18n.colon, comma=i18n.comma)
    return env


def page(request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> Template:
    """Render a page with what every page needs: who is signed in, the language, the path.

    `headers`: a form re-shown for a refusal carries the refusal's headers, as the error pages
    do (`library.web.errors.refusal_headers`: `Retry-After` on a 429).
    """
    context.setdefault("principal", principal_of(request))
    context.setdefault("language", i18n.current_language.get())
    context.setdefault("path", request.url.path)
    context.setdefault("query", request.url.query)
    return Template(template_name=template, context=context, status_code=status_code, headers=headers)
