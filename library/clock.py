"""The only place that reads the clock; everything below receives `now` or `today`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

_source: Callable[[], dt.datetime] | None = None


def now_utc() -> dt.datetime:
    return _source() if _source else dt.datetime.now(dt.timezone.utc)


def today_in(time_zone: str) -> dt.date:
    return now_utc().astimezone(ZoneInfo(time_zone)).date()


def set_clock(source: Callable[[], dt.datetime] | None) -> None:
    """Tests (and demos of a given day) set the time the pages believe it is; None restores the real clock."""
    global _source
    _source = source
