"""Scheduling, registration and check-in decisions. Pure: plain values in, every reason out.

Rooms: a session books its room from its start minus the setup buffer to its end plus the
teardown buffer; two bookings of one room may touch but not overlap (the model is Indico's
`get_room_bookings_conflicts`, loops over candidate and existing bookings).

Waitlist promotion is **first-fit, in arrival order**: when seats free up, the waiting
registrations are taken in the order they arrived, and each is promoted if it fits. A family
registers its children one registration each, all with the same arrival, so two siblings
waiting together are promoted together when two seats are free; when only one is, the
first child gets it and the other stays first in line — a parent can then cancel and keep
the family together, but no other family waits longer because of them.

Check-in at the door takes a card from a while before a session starts until a while after it
ends (`CheckInWindow`); a guardian's card checks in every linked child with a seat, and the
guardian too when registered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from library.branches.rules import BranchCalendar, PublicCalendar, day_status


@dataclass(frozen=True)
class Refusal:
    code: str
    params: dict = field(default_factory=dict)

    @property
    def overridable(self) -> bool:
        return self.code in OVERRIDABLE


OVERRIDABLE = frozenset({"outside_opening_hours"})


@dataclass(frozen=True)
class Booking:
    """A room taken from `start` to `end` (UTC), with buffers before and after."""

    room_id: int
    start: dt.datetime
    end: dt.datetime
    setup: dt.timedelta = dt.timedelta(0)
    teardown: dt.timedelta = dt.timedelta(0)
    label: str = ""
    # The occurrence this booking is (so an occurrence being moved does not conflict with itself).
    key: str | None = None

    @property
    def blocked_from(self) -> dt.datetime:
        return self.start - self.setup

    @property
    def blocked_until(self) -> dt.datetime:
        return self.end + self.teardown


def overlaps(a: Booking, b: Booking) -> bool:
    """Same room and their blocked times intersect; touching ends are not an overlap."""
    return a.room_id == b.room_id and a.blocked_from < b.blocked_until and b.blocked_from < a.blocked_until


def conflicts(candidate: Booking, existing: Iterable[Booking]) -> list[Booking]:
    """The bookings the candidate overlaps, earliest first (never itself, when it is being moved)."""
    clashing = [other for other in existing
                if (candidate.key is None or other.key != candidate.key) and overlaps(candidate, other)]
    return sorted(clashing, key=lambda other: other.start)


@dataclass(frozen=True)
class RoomFacts:
    id: int
    capacity: int
    name: str = ""


def booking_refusals(candidate: Booking, capacity: int, room: RoomFacts, existing: Iterable[Booking],
                     confirmed: int = 0, opening_hours_ok: bool = True) -> list[Refusal]:
    """Every reason a session cannot take this room at this time with this many seats."""
    refusals = []
    if candidate.end <= candidate.start:
        refusals.append(Refusal("ends_before_start"))
    if capacity < 1:
        refusals.append(Refusal("capacity_too_small"))
    if capacity > room.capacity:
        refusals.append(Refusal("over_room_capacity", {"capacity": capacity, "room": room.name,
                                                       "room_capacity": room.capacity}))
    if confirmed > min(capacity, room.capacity):
        refusals.append(Refusal("fewer_seats_than_registered", {"confirmed": confirmed,
                                                                "capacity": min(capacity, room.capacity)}))
    for other in conflicts(candidate, existing):
        refusals.append(Refusal("room_taken", {"other": other.label, "room": room.name}))
    if not opening_hours_ok:
        refusals.append(Refusal("outside_opening_hours"))
    return refusals


def day_is_open(day: dt.date, calendar: BranchCalendar, public: PublicCalendar) -> bool:
    """Whether the branch opens at all that day (not a holiday it closes on, nor a closure)."""
    return day_status(day, calendar, public).is_open


def within_opening_hours(start: dt.datetime, end: dt.datetime, calendar: BranchCalendar,
                         public: PublicCalendar) -> bool:
    """Local wall-clock start and end on one day, inside one opening period of an open day."""
    if start.date() != end.date():
        return False
    status = day_status(start.date(), calendar, public)
    return status.is_open and any(
        period.opens <= start.time() and end.time() <= period.closes for period in status.hours)


def free_rooms(rooms: Sequence[RoomFacts], bookings: Iterable[Booking], start: dt.datetime, end: dt.datetime,
               head_count: int) -> list[RoomFacts]:
    """"Where can I put 25 people on Friday evening?": rooms big enough and free, smallest first."""
    taken = list(bookings)
    return sorted((room for room in rooms if room.capacity >= head_count
                   and not conflicts(Booking(room.id, start, end), taken)), key=lambda room: (room.capacity, room.id))


# --- registration -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFacts:
    status: str  # scheduled | cancelled
    starts_at: dt.datetime  # UTC
    age_min: int | None
    age_max: int | None
    registration_required: bool
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None
    per_person_limit: int | None = None


@dataclass(frozen=True)
class Registrant:
    patron_id: int
    name: str
    age_on_day: int | None  # None: birth date unknown
    already_registered: bool = False
    sessions_in_programme: int = 0


def registration_refusals(session: SessionFacts, person: Registrant, now: dt.datetime) -> list[Refusal]:
    """Every reason this person may not register for this session now (a full session is not a
    refusal: they join the waitlist)."""
    refusals = []
    if session.status == "cancelled":
        refusals.append(Refusal("session_cancelled"))
    if session.starts_at <= now:
        refusals.append(Refusal("session_past"))
    if not session.registration_required:
        refusals.append(Refusal("no_registration_needed"))
    if session.opens_at is not None and now < session.opens_at:
        # The moment itself: the service shows it on the branch's wall clock (a parent reads
        # "2026-06-20 09:00", not UTC in ISO form).
        refusals.append(Refusal("registration_not_open", {"opens_at": session.opens_at}))
    if session.closes_at is not None and now >= session.closes_at:
        refusals.append(Refusal("registration_closed"))
    if person.age_on_day is not None:
        if session.age_min is not None and person.age_on_day < session.age_min:
            refusals.append(Refusal("too_young", {"name": person.name, "age": person.age_on_day,
                                                  "min": session.age_min, "max": session.age_max}))
        if session.age_max is not None and person.age_on_day > session.age_max:
            refusals.append(Refusal("too_old", {"name": person.name, "age": person.age_on_day,
                                                "min": session.age_min, "max": session.age_max}))
    elif session.age_min is not None or session.age_max is not None:
        refusals.append(Refusal("age_unknown", {"name": person.name}))
    if person.already_registered:
        refusals.append(Refusal("already_registered", {"name": person.name}))
    if session.per_person_limit is not None and person.sessions_in_programme >= session.per_person_limit:
        refusals.append(Refusal("session_limit", {"name": person.name, "limit": session.per_person_limit}))
    return refusals


@dataclass(frozen=True)
class Waiting:
    id: int
    arrived: tuple  # (arrival time, sequence): the order the waitlist keeps


def promote(waiting: Iterable[Waiting], free_seats: int) -> list[int]:
    """Which waiting registrations get the free seats: first-fit in arrival order."""
    chosen = []
    for entry in sorted(waiting, key=lambda entry: entry.arrived):
        if len(chosen) >= free_seats:
            break
        chosen.append(entry.id)
    return chosen


# --- check-in at the door -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckInWindow:
    """When a card is taken at the door: from `opens_before` the start of a session until
    `closes_after` its end (the settings LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE and
    LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER). Late-comers are welcome while the session runs."""

    opens_before: dt.timedelta = dt.timedelta(minutes=60)
    closes_after: dt.timedelta = dt.timedelta(minutes=30)

    def opens_at(self, starts_at: dt.datetime) -> dt.datetime:
        return starts_at - self.opens_before

    def closes_at(self, ends_at: dt.datetime) -> dt.datetime:
        return ends_at + self.closes_after


@dataclass(frozen=True)
class DoorSession:
    status: str  # scheduled | cancelled
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC
    registration_required: bool = True


@dataclass(frozen=True)
class Attendee:
    """A registration the scanned card may check in: the card holder's own, or a linked child's."""

    registration_id: int
    patron_id: int
    name: str
    status: str  # confirmed | offered | waitlisted | attended | no_show | cancelled
    offer_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class CheckIn:
    """What one scan does. `admit` are marked attended now; `already` were checked in before;
    `turned_away` are people on the card who stay out, each with the reason. `refusals` is
    non-empty when nobody is checked in, and then says every reason why."""

    admit: tuple[Attendee, ...] = ()
    already: tuple[Attendee, ...] = ()
    turned_away: tuple[Refusal, ...] = ()
    refusals: tuple[Refusal, ...] = ()


# A registration holding a seat: an offer not yet taken is the family's seat until it lapses,
# and coming to the door takes it; a no-show marked too early is corrected by arriving.
_SEATED = frozenset({"confirmed", "offered", "no_show"})
_PREFERENCE = {"attended": 0, "confirmed": 1, "offered": 1, "no_show": 1, "waitlisted": 2}


def check_in(session: DoorSession, window: CheckInWindow, holder: str, attendees: Sequence[Attendee],
             now: dt.datetime, family: bool = False) -> CheckIn:
    """Who a card checks in at this session now.

    `holder` is the card holder's name; `attendees` are the registrations of the holder and,
    when `family` (the card is a guardian's), of every child linked to it, in the order to
    list them. A person with several registrations (cancelled, then registered again) is
    judged by the one that is still active.
    """
    refusals: list[Refusal] = []
    if session.status == "cancelled":
        refusals.append(Refusal("session_cancelled"))
    opens_at, closes_at = window.opens_at(session.starts_at), window.closes_at(session.ends_at)
    if now < opens_at:
        refusals.append(Refusal("check_in_not_open", {"opens_at": opens_at,
                                                      "minutes": int(window.opens_before.total_seconds() // 60)}))
    elif now > closes_at:
        refusals.append(Refusal("check_in_closed", {"closed_at": closes_at,
                                                    "minutes": int(window.closes_after.total_seconds() // 60)}))
    chosen: dict[int, Attendee] = {}
    for attendee in attendees:
        current = chosen.get(attendee.patron_id)
        if current is None or _PREFERENCE.get(attendee.status, 9) < _PREFERENCE.get(current.status, 9):
            chosen[attendee.patron_id] = attendee
    admit, already, turned_away = [], [], []
    for attendee in chosen.values():
        params = {"name": attendee.name}
        lapsed = attendee.offer_expires_at is not None and attendee.offer_expires_at <= now
        if attendee.status == "attended":
            already.append(attendee)
        elif attendee.status == "offered" and lapsed:
            turned_away.append(Refusal("check_in_offer_lapsed", params))
        elif attendee.status in _SEATED:
            admit.append(attendee)
        elif attendee.status == "waitlisted":
            turned_away.append(Refusal("check_in_waitlisted", params))
        else:
            turned_away.append(Refusal("check_in_registration_cancelled", params))
    if not chosen:
        if not session.registration_required:
            refusals.append(Refusal("no_registration_needed"))
        else:
            refusals.append(Refusal("not_registered_family" if family else "not_registered", {"name": holder}))
    elif refusals or not (admit or already):
        # Nobody goes in (the door is shut, or nobody on the card has a seat): each one hears why.
        refusals.extend(turned_away)
    if refusals:
        return CheckIn(turned_away=tuple(turned_away), refusals=tuple(refusals))
    return CheckIn(tuple(admit), tuple(already), tuple(turned_away))


# --- the calendar's views ------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarSpan:
    """The days a calendar view shows: [first, last), whole weeks from a Monday; `month` the
    month a month view is of (its days outside it are shown, dimmed); `previous` and `next`
    what the arrows go to."""

    first: dt.date
    last: dt.date
    month: dt.date | None
    previous: dt.date | None
    next: dt.date | None


def calendar_span(view: str, day: dt.date, today: dt.date) -> CalendarSpan:
    if view == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return CalendarSpan(monday, monday + dt.timedelta(days=7), None, monday - dt.timedelta(days=7),
                            monday + dt.timedelta(days=7))
    if view == "month":
        month = day.replace(day=1)
        following = (month + dt.timedelta(days=32)).replace(day=1)
        first = month - dt.timedelta(days=month.weekday())
        last = following + dt.timedelta(days=(7 - following.weekday()) % 7)
        return CalendarSpan(first, last, month, (month - dt.timedelta(days=1)).replace(day=1), following)
    return CalendarSpan(today, today + dt.timedelta(days=60), None, None, None)


# --- a whole programme in one step ----------------------------------------------------------


@dataclass(frozen=True)
class ProgrammeSession:
    """One session of a series or programme as registration sees it now."""

    key: str  # the session's uuid
    facts: SessionFacts
    seats_left: int
    waitlisted: int


@dataclass(frozen=True)
class PlanLine:
    """What one child gets at one session: `seat`, `waitlist` (with the place it would be),
    `already` (registered before: left as it is) or `refused` (with the reasons)."""

    session: str
    patron_id: int
    name: str
    outcome: str
    position: int | None = None
    refusals: tuple[Refusal, ...] = ()


def programme_plan(sessions: list[ProgrammeSession], children: list[tuple[int, str]],
                   registrant: Callable[[str, int], Registrant], in_programme: dict[int, int],
                   now: dt.datetime) -> list[PlanLine]:
    """Each child at each session, sessions in order, children in the order given: the outcome a
    registration made now would have. A full session is a waitlist place, not a refusal; a
    session a child is registered for already is left as it is; a programme's per-child limit
    counts the sessions planned here too (`in_programme`: sessions each child holds already).

    The same statement that registers decides seat or waitlist (others may take seats between
    the preview and the confirmation): this is what the parent is shown before confirming.
    """
    lines: list[PlanLine] = []
    planned = dict(in_programme)
    for session in sessions:
        seats, waiting = session.seats_left, session.waitlisted
        for patron_id, name in children:
            person = registrant(session.key, patron_id)
            if person.already_registered:
                lines.append(PlanLine(session.key, patron_id, name, "already"))
                continue
            person = replace(person, sessions_in_programme=planned.get(patron_id, 0))
            refusals = tuple(registration_refusals(session.facts, person, now))
            if refusals:
                lines.append(PlanLine(session.key, patron_id, name, "refused", refusals=refusals))
                continue
            planned[patron_id] = planned.get(patron_id, 0) + 1
            if seats > 0:
                seats -= 1
                lines.append(PlanLine(session.key, patron_id, name, "seat"))
            else:
                waiting += 1
                lines.append(PlanLine(session.key, patron_id, name, "waitlist", position=waiting))
    return lines
