"""The only place that reads the clock; everything below receives `now` or `today`."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def today_in(time_zone: str) -> dt.date:
    return now_utc().astimezone(ZoneInfo(time_zone)).date()
