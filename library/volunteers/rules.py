"""Pure decisions about shifts: plain values in, a reason code (and its parameters) out, `now`
passed in. The head count itself is kept by the database (library.volunteers.service.sign_up)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("desk", "after_school", "activity_helper")
MAX_HEAD_COUNT = 50
# A volunteer may check in a little before the shift (to take over the desk), not the day before.
CHECK_IN_EARLY_MINUTES = 30
# A corrected day of service: longer than this is a typing mistake, not a shift.
MAX_SERVICE_HOURS = 16
VOLUNTEER_ROLE = "volunteer"


@dataclass(frozen=True)
class Refusal:
    code: str
    params: dict[str, Any] = field(default_factory=dict)


def is_volunteer(role: str | None) -> bool:
    return role == VOLUNTEER_ROLE


def plan_refusal(kind: str, local_start: dt.datetime, local_end: dt.datetime, needed: int) -> Refusal | None:
    """Whether a planned shift makes sense: a known kind, an end after the start on the same day,
    a head count a branch could really need."""
    if kind not in KINDS:
        return Refusal("shift_bad_kind")
    if local_end <= local_start or local_end.date() != local_start.date():
        return Refusal("shift_bad_times")
    if not 1 <= needed <= MAX_HEAD_COUNT:
        return Refusal("shift_bad_head_count", {"limit": MAX_HEAD_COUNT})
    return None


def change_refusal(starts_at: dt.datetime, now: dt.datetime) -> Refusal | None:
    """Signing up and withdrawing close when the shift starts: after that the staff correct."""
    return Refusal("shift_started") if now >= starts_at else None


def check_in_refusal(starts_at: dt.datetime, ends_at: dt.datetime, checked_in_at: dt.datetime | None,
                     now: dt.datetime, time_zone: dt.tzinfo) -> Refusal | None:
    if checked_in_at is not None:
        return Refusal("shift_checked_in_already", {"time": f"{checked_in_at.astimezone(time_zone):%H:%M}"})
    if not starts_at - dt.timedelta(minutes=CHECK_IN_EARLY_MINUTES) <= now <= ends_at:
        return Refusal("shift_check_in_closed", {"minutes": CHECK_IN_EARLY_MINUTES})
    return None


def check_out_refusal(checked_in_at: dt.datetime | None, checked_out_at: dt.datetime | None,
                      time_zone: dt.tzinfo) -> Refusal | None:
    if checked_in_at is None:
        return Refusal("shift_not_checked_in")
    if checked_out_at is not None:
        return Refusal("shift_checked_out_already", {"time": f"{checked_out_at.astimezone(time_zone):%H:%M}"})
    return None


def correction_refusal(checked_in_at: dt.datetime, checked_out_at: dt.datetime | None) -> Refusal | None:
    if checked_out_at is not None and not (
            checked_in_at <= checked_out_at <= checked_in_at + dt.timedelta(hours=MAX_SERVICE_HOURS)):
        return Refusal("shift_bad_correction", {"hours": MAX_SERVICE_HOURS})
    return None


def served_minutes(checked_in_at: dt.datetime | None, checked_out_at: dt.datetime | None) -> int:
    """Whole minutes between check-in and check-out; nothing until both are there."""
    if checked_in_at is None or checked_out_at is None or checked_out_at < checked_in_at:
        return 0
    return int((checked_out_at - checked_in_at).total_seconds() // 60)


def hours(minutes: int) -> float:
    """Service hours (志愿服务时长) as reported: tenths of an hour, rounded half up."""
    return int(minutes * 10 / 60 + 0.5) / 10


def hours_by_person_and_month(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """rows: {volunteer, name, month ("2026-03"), minutes}; one line per volunteer and month,
    sorted by month then name, each with its shifts, minutes and hours."""
    lines: dict[tuple[str, Any], dict[str, Any]] = defaultdict(lambda: {"shifts": 0, "minutes": 0})
    for row in rows:
        line = lines[(row["month"], row["volunteer"])]
        line.update(month=row["month"], volunteer=row["volunteer"], name=row["name"])
        line["shifts"] += 1
        line["minutes"] += row["minutes"]
    out = sorted(lines.values(), key=lambda line: (line["month"], line["name"], str(line["volunteer"])))
    for line in out:
        line["hours"] = hours(line["minutes"])
    return out
