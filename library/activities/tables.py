"""Activities: events and their sessions (occurrences) in rooms, registrations, reading programmes.

Seats are counted on the occurrence row (`confirmed`), taken and given back with
conditional UPDATEs and a check constraint, so a session is never overbooked whatever the
concurrency; `arrivals` numbers every registration attempt in the order the database saw
it, which is the order of the waitlist.
"""

from __future__ import annotations

from enum import Enum

from piccolo.columns import (JSONB, UUID, Boolean, Date, ForeignKey, Integer, Text, Timestamp, Timestamptz,
                             Varchar)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from library.accounts.tables import Patron
from library.branches.tables import Branch, Room, _utc_now
from library.catalog.tables import Record


class EventKind(str, Enum):
    reading_club = "reading_club"
    lecture = "lecture"
    workshop = "workshop"
    performance = "performance"
    summer_reading = "summer_reading"
    other = "other"


class Programme(Table):
    """A programme groups sessions (a per-child limit applies across it) and can run a reading challenge."""

    uuid = UUID(unique=True)
    branch = ForeignKey(references=Branch, null=True, on_delete=OnDelete.restrict)
    title_zh = Varchar(length=200, required=True)
    title_en = Varchar(length=200, default="")
    starts_on = Date(required=True)
    ends_on = Date(required=True)
    # Reading challenge: "books" or "minutes"; goals per age group [{"min": 3, "max": 6, "goal": 10}].
    goal_kind = Varchar(length=16, default="books")
    goals = JSONB(default=[])
    # Badges at these milestones (counted in the goal's unit).
    badges = JSONB(default=[])
    per_child_session_limit = Integer(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    programme_dates_check = Check('"ends_on" >= "starts_on"')


class Event(Table):
    """What is put on: one session or a series (RRULE) in the branch's wall-clock time."""

    uuid = UUID(unique=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    room = ForeignKey(references=Room, null=True, on_delete=OnDelete.restrict)
    programme = ForeignKey(references=Programme, null=True, on_delete=OnDelete.set_null)
    kind = Varchar(length=24, choices=EventKind, default=EventKind.reading_club)
    title_zh = Varchar(length=200, required=True)
    title_en = Varchar(length=200, default="")
    description_zh = Text(default="")
    description_en = Text(default="")
    host = Varchar(length=100, default="")
    age_min = Integer(null=True, default=None)
    age_max = Integer(null=True, default=None)
    capacity = Integer(required=True)
    registration_required = Boolean(default=True)
    registration_opens_at = Timestamptz(null=True, default=None)
    registration_closes_at = Timestamptz(null=True, default=None)
    # Minutes a promoted family has to take an offered seat; null: promoted straight to confirmed.
    offer_minutes = Integer(null=True, default=None)
    time_zone = Varchar(length=64, default="Asia/Shanghai")
    first_start = Timestamp(required=True)  # local wall-clock
    duration_minutes = Integer(required=True)
    rrule = Text(null=True, default=None)
    setup_minutes = Integer(default=0)
    teardown_minutes = Integer(default=0)
    status = Varchar(length=16, default="scheduled")
    created_by = Varchar(length=160, default="")
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    event_numbers_check = Check(
        '"capacity" > 0 AND "duration_minutes" > 0 AND "setup_minutes" >= 0 AND "teardown_minutes" >= 0 '
        'AND ("age_min" IS NULL OR "age_max" IS NULL OR "age_min" <= "age_max")')


class Occurrence(Table):
    """One session of an event, editable on its own (moved, another room, cancelled)."""

    uuid = UUID(unique=True)
    event = ForeignKey(references=Event, null=False, on_delete=OnDelete.cascade)
    room = ForeignKey(references=Room, null=True, on_delete=OnDelete.restrict)
    # The start the series gave it (RECURRENCE-ID), local wall-clock.
    original_start = Timestamp(required=True)
    local_start = Timestamp(required=True)
    local_end = Timestamp(required=True)
    starts_at = Timestamptz(required=True, index=True)
    ends_at = Timestamptz(required=True)
    capacity = Integer(required=True)
    confirmed = Integer(default=0)
    waitlisted = Integer(default=0)
    arrivals = Integer(default=0)
    # What the last registration attempt got (read back in the same statement that took it).
    last_outcome = Varchar(length=16, default="")
    status = Varchar(length=16, default="scheduled")
    moved = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    occurrence_seats_check = Check('"confirmed" >= 0 AND "confirmed" <= "capacity" AND "waitlisted" >= 0')
    occurrence_series_unique = Unique([event, original_start])


class RegistrationStatus(str, Enum):
    confirmed = "confirmed"
    offered = "offered"
    waitlisted = "waitlisted"
    cancelled = "cancelled"
    attended = "attended"
    no_show = "no_show"


class Registration(Table):
    """A seat (or a place in the queue) for one person at one session."""

    uuid = UUID(unique=True)
    occurrence = ForeignKey(references=Occurrence, null=False, on_delete=OnDelete.cascade)
    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    registered_by = ForeignKey(references=Patron, null=True, on_delete=OnDelete.set_null)
    status = Varchar(length=16, choices=RegistrationStatus, default=RegistrationStatus.confirmed)
    arrival = Integer(required=True)
    created_at = Timestamptz(required=True)
    confirmed_at = Timestamptz(null=True, default=None)
    offer_expires_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    checked_in_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class ReadingLog(Table):
    """A book a child read during a programme: from the catalogue, free text, or a loan."""

    uuid = UUID(unique=True)
    programme = ForeignKey(references=Programme, null=False, on_delete=OnDelete.cascade)
    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    record = ForeignKey(references=Record, null=True, on_delete=OnDelete.set_null)
    title = Varchar(length=300, required=True)
    minutes = Integer(null=True, default=None)
    read_on = Date(required=True)
    # "manual", or "loan" when logged from a borrowed book (then `source_key` is the loan).
    source = Varchar(length=16, default="manual")
    source_key = Varchar(length=64, null=True, default=None, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())


class ProgrammeParticipant(Table):
    """A child taking part in a programme's challenge; the guardian may opt in to log loans."""

    programme = ForeignKey(references=Programme, null=False, on_delete=OnDelete.cascade)
    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    log_loans = Boolean(default=False)
    joined_at = Timestamptz(default=TimestamptzNow())

    programme_participant_unique = Unique([programme, patron])
