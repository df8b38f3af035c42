"""A series of sessions: an RRULE expanded into occurrences, in the branch's wall-clock time.

Times of a series are local wall-clock times with the branch's time zone: a club "every
Saturday 10:00" stays at 10:00 whatever the UTC offset does. Expansion is pure (python-
dateutil's rrule), bounded, and keeps the per-occurrence exceptions of RFC 5545: a cancelled
date (EXDATE) and a moved session (an override keyed by its original start, RECURRENCE-ID).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

# A series longer than this is almost always a typo (or a rule without an end).
MAX_OCCURRENCES = 400
MAX_SPAN = dt.timedelta(days=3 * 366)


@dataclass(frozen=True)
class Moved:
    """One session of a series held at another time (or in another room)."""

    start: dt.datetime  # local wall-clock
    room_id: int | None = None


@dataclass(frozen=True)
class Occurrence:
    original_start: dt.datetime  # local; the RECURRENCE-ID of a moved session
    start: dt.datetime  # local wall-clock
    end: dt.datetime  # local wall-clock
    room_id: int | None
    moved: bool = False

    def start_utc(self, time_zone: str) -> dt.datetime:
        return to_utc(self.start, time_zone)

    def end_utc(self, time_zone: str) -> dt.datetime:
        return to_utc(self.end, time_zone)


def to_utc(local: dt.datetime, time_zone: str) -> dt.datetime:
    """A wall-clock time in a zone, in UTC (a time that falls in a DST gap moves forward)."""
    return local.replace(tzinfo=ZoneInfo(time_zone)).astimezone(dt.timezone.utc)


class RecurrenceProblem(ValueError):
    """Why a series cannot be expanded, as a reason code the UI translates."""

    def __init__(self, code: str, **params) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def expand(start: dt.datetime, duration: dt.timedelta, rule: str | None, room_id: int | None,
           cancelled: frozenset[dt.datetime] = frozenset(), moved: Mapping[dt.datetime, Moved] | None = None,
           limit: int = MAX_OCCURRENCES) -> list[Occurrence]:
    """The sessions of a one-off event (`rule` None) or a series, in order of their start.

    `rule` is an RRULE without DTSTART ("FREQ=WEEKLY;BYDAY=SA;UNTIL=20260829"). It must end
    (COUNT or UNTIL) and yield at most `limit` sessions within MAX_SPAN; otherwise a
    `RecurrenceProblem` says which.
    """
    if start.tzinfo is not None:
        raise ValueError("series are expanded in local wall-clock time (naive datetimes)")
    if duration <= dt.timedelta(0):
        raise RecurrenceProblem("ends_before_start")
    moved = dict(moved or {})
    if rule is None or not rule.strip():
        starts = [start]
    else:
        text = rule.strip()
        if text.upper().startswith("RRULE:"):
            text = text[6:]
        upper = text.upper()
        if "COUNT=" not in upper and "UNTIL=" not in upper:
            raise RecurrenceProblem("rrule_unbounded")
        try:
            parsed = rrulestr(text, dtstart=start, ignoretz=True)
        except (ValueError, TypeError) as error:
            raise RecurrenceProblem("rrule_invalid", detail=str(error)) from None
        horizon = start + MAX_SPAN
        starts = []
        for when in parsed:
            if when > horizon or len(starts) >= limit:
                raise RecurrenceProblem("rrule_too_many", limit=limit)
            starts.append(when)
        if not starts:
            raise RecurrenceProblem("rrule_empty")
    result = []
    for original in starts:
        if original in cancelled:
            continue
        change = moved.get(original)
        begins = change.start if change else original
        room = change.room_id if change and change.room_id is not None else room_id
        result.append(Occurrence(original, begins, begins + duration, room, moved=change is not None))
    return sorted(result, key=lambda occurrence: occurrence.start)
