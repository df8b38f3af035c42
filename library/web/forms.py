"""Turning submitted text into values, with the reason when it cannot be done."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from library.errors import InvalidInput


def parse_date(value: str | None, field: str) -> dt.date:
    if not value or not value.strip():
        raise InvalidInput("required", field=field)
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("invalid_date", field=field) from None


def parse_optional_date(value: str | None, field: str) -> dt.date | None:
    if not value or not value.strip():
        return None
    return parse_date(value, field)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: an open redirect would hand sign-ins to a phishing page."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
