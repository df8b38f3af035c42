"""Translation: Babel catalogs, the request's language, and locale-aware formatting.

Message ids are English. The language of the current request lives in a context
variable set by the middleware, so templates, services' messages and error pages
all speak the reader's language without passing it around.
"""

from __future__ import annotations

import datetime as dt
import gettext as gettext_module
import io
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.dates import format_time as babel_format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from library.settings import LANGUAGES, PACKAGE_ROOT

LOCALE_DIR = PACKAGE_ROOT / "locale"
DOMAIN = "messages"

current_language: ContextVar[str] = ContextVar("current_language", default="zh_CN")


@lru_cache(maxsize=None)
def translations(language: str) -> gettext_module.NullTranslations:
    """The compiled catalog; compiled in memory from the .po when `make` has not run yet."""
    mo_path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    po_path = mo_path.with_suffix(".po")
    if mo_path.exists() and (not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime):
        with mo_path.open("rb") as handle:
            return gettext_module.GNUTranslations(handle)
    if po_path.exists():
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return gettext_module.GNUTranslations(buffer)
    return gettext_module.NullTranslations()


def gettext(message: str) -> str:
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated later, where it is shown."""
    return message


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags in order of preference (q-values respected, q=0 dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip()
        if not tag or tag == "*":
            continue
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def supported_language(tag: str | None) -> str | None:
    """Map a language tag to one we serve: any Chinese reads zh_CN, any English en."""
    if not tag:
        return None
    normalised = tag.replace("-", "_")
    if normalised in LANGUAGES:
        return normalised
    primary = normalised.split("_")[0].lower()
    if primary == "zh":
        return "zh_CN"
    if primary == "en":
        return "en"
    return None


def choose_language(
    explicit: str | None, account: str | None, accept_language: str | None, default: str
) -> str:
    """The reader's explicit choice, else their account's, else the browser's, else the default."""
    for candidate in (explicit, account):
        chosen = supported_language(candidate)
        if chosen:
            return chosen
    for tag in parse_accept_language(accept_language):
        chosen = supported_language(tag)
        if chosen:
            return chosen
    return default


def babel_locale(language: str | None = None) -> Locale:
    return _parsed_locale(language or current_language.get())


@lru_cache(maxsize=16)
def _parsed_locale(language: str) -> Locale:
    # Parsed once a language: Locale.parse takes about 0.2 ms, and a page formats many dates.
    return Locale.parse(language)


def format_date(value: dt.date, format: str = "medium") -> str:
    return babel_format_date(value, format=format, locale=babel_locale())


def format_time(value: dt.time, format: str = "short") -> str:
    if current_language.get() == "zh_CN":
        return value.strftime("%H:%M")
    return babel_format_time(value, format=format, locale=babel_locale())


def format_datetime(value: dt.datetime, time_zone: str = "Asia/Shanghai") -> str:
    """A moment (stored in UTC) as the wall-clock time where the library is."""
    from zoneinfo import ZoneInfo

    local = value.astimezone(ZoneInfo(time_zone)) if value.tzinfo else value
    return f"{format_date(local.date())} {format_time(local.time())}"


def format_weekday(weekday: int) -> str:
    """0 = Monday, in the reader's language."""
    return babel_locale().days["format"]["wide"][weekday]


def colon() -> str:
    """What joins a label to what it labels: "李小米：" in Chinese, "Li Xiaomi: " in English."""
    return "：" if current_language.get() == "zh_CN" else ": "


def comma() -> str:
    """What separates the parts of a list in a sentence: "，" in Chinese, ", " in English."""
    return "，" if current_language.get() == "zh_CN" else ", "


def localized(zh: str, en: str) -> str:
    """Pick the name stored in both languages; fall back to the other one if empty."""
    if current_language.get() == "zh_CN":
        return zh or en
    return en or zh


def language_dir() -> Path:
    return LOCALE_DIR
