from __future__ import annotations

from enum import Enum

from piccolo.columns import (
    JSONB,
    UUID,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Text,
    Time,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table


def _utc_now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


class BranchKind(str, Enum):
    central = "central"
    branch = "branch"
    smart_study_room = "smart_study_room"


class Branch(Table):
    """A library of the city network: the central library, a branch, a smart study room."""

    uuid = UUID(unique=True)
    code = Varchar(length=16, unique=True, required=True)
    name_zh = Varchar(length=100, required=True)
    name_en = Varchar(length=100, required=True)
    kind = Varchar(length=24, choices=BranchKind, default=BranchKind.branch)
    address_zh = Text(default="")
    address_en = Text(default="")
    time_zone = Varchar(length=64, default="Asia/Shanghai")
    # Some rooms (a 24-hour study room) stay open through the Golden Week.
    closes_on_public_holidays = Boolean(default=True)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)
    # Closures kept every year on days the official calendar of that year decides, for a
    # branch that stays open on other holidays: ["spring_festival_eve_and_day"] (rules.YearlyClosure).
    yearly_closures = JSONB(default=[])


class OpeningPeriod(Table):
    """One opening period on one weekday (0 = Monday); a weekday without one is closed."""

    branch = ForeignKey(references=Branch, null=False)
    weekday = Integer(required=True)
    opens = Time(required=True)
    closes = Time(required=True)

    opening_period_weekday_check = Check((weekday >= 0) & (weekday <= 6))
    opening_period_order_check = Check('"closes" > "opens"')


class CalendarException(Table):
    """A day a branch departs from its weekly hours: a local closure or a special opening."""

    branch = ForeignKey(references=Branch, null=False)
    day = Date(required=True)
    is_open = Boolean(default=False)
    reason_zh = Varchar(length=200, default="")
    reason_en = Varchar(length=200, default="")
    created_by = Varchar(length=64, default="")
    created_at = Timestamptz(default=TimestamptzNow())

    calendar_exception_branch_day_unique = Unique([branch, day])


class Room(Table):
    """A room events can be booked into; capacity is the number of seats allowed."""

    uuid = UUID(unique=True)
    # Rooms carry bookings: a branch with rooms is never deleted by accident.
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    code = Varchar(length=32, required=True)
    name_zh = Varchar(length=100, required=True)
    name_en = Varchar(length=100, required=True)
    capacity = Integer(required=True)
    features = JSONB(default=[])
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    room_branch_code_unique = Unique([branch, code])
    room_capacity_check = Check(capacity > 0)


class AuditEntry(Table):
    """Who changed what, when: every state change of every domain writes one."""

    at = Timestamptz(default=TimestamptzNow())
    actor = Varchar(length=100, default="")
    action = Varchar(length=64, required=True)
    subject = Varchar(length=200, default="")
    detail = JSONB(default={})


class PeriodicLease(Table):
    """Which process runs a periodic job (the notice round, change-log compaction) this interval.

    Every worker of every instance on one database tries to claim the lease when its timer
    fires; the database lets one win (`library.branches.leases.claim`), so a job runs once
    per interval, not once per worker.
    """

    name = Varchar(length=64, unique=True, required=True)
    holder = Varchar(length=200, default="")
    held_until = Timestamptz(required=True)
