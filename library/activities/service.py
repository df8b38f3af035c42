"""Activities: scheduling sessions into rooms, registration with a waitlist. One transaction per operation.

Concurrency: booking a room first touches the room's row (a row lock on PostgreSQL, the
write lock on SQLite), so two librarians cannot both book the last free hour; a seat is
taken by one conditional UPDATE of the session's counters, which also numbers the
arrival — the waitlist's order.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from library import audit, spreadsheet
from library.accounts.principal import Principal
from library.accounts.rules import age_on
from library.accounts.service import normalise_card_number
from library.activities import notices, recurrence, rules
from library.activities.tables import Event, Occurrence
from library.branches.public_holidays import public_calendar
from library.branches.service import calendars_for, check_calendar_day
from library.db import is_unique_violation, read_transaction, run_in_write_transaction
from library.errors import CirculationRefused, Conflict, InvalidInput, NotFound, NotPermitted
from library.notices import outbox
from library.notices.worker import Step
from library.settings import Settings

T = TypeVar("T")

ACTIVE = ("confirmed", "offered", "waitlisted")
KINDS = ("reading_club", "lecture", "workshop", "performance", "summer_reading", "other")
TITLE_LIMIT = 200

log = logging.getLogger("library.activities")


class Refused(CirculationRefused):
    """A scheduling or registration refusal with every reason (the same shape as circulation's)."""


def _uuid(value: str, missing: str) -> str:
    try:
        return str(uuid_module.UUID(str(value)))
    except ValueError:
        raise NotFound(missing) from None


async def _rows(sql: str, *args: Any) -> list[dict[str, Any]]:
    return await Occurrence.raw(sql, *args)


async def _first(sql: str, *args: Any) -> dict[str, Any] | None:
    rows = await Occurrence.raw(sql, *args)
    return rows[0] if rows else None


# --- scheduling ---------------------------------------------------------------------------


@dataclass
class EventInput:
    branch_code: str
    title_zh: str
    first_start: dt.datetime  # local wall-clock
    duration_minutes: int
    capacity: int
    room_code: str | None = None
    title_en: str = ""
    kind: str = "reading_club"
    description_zh: str = ""
    description_en: str = ""
    host: str = ""
    age_min: int | None = None
    age_max: int | None = None
    registration_required: bool = True
    registration_opens_at: dt.datetime | None = None
    registration_closes_at: dt.datetime | None = None
    offer_minutes: int | None = None
    rrule: str | None = None
    cancelled: list[dt.datetime] = field(default_factory=list)
    moved: dict[dt.datetime, dt.datetime] = field(default_factory=dict)
    setup_minutes: int = 0
    teardown_minutes: int = 0
    override_comment: str | None = None
    # A series skips the days its branch is closed (a public holiday, a closure): they are listed
    # after planning (`skipped_days`), not refused as outside opening hours.
    skip_closed_days: bool = True
    # A programme groups sessions: its per-child limit counts across them.
    programme_uuid: str | None = None


def _validate(data: EventInput) -> None:
    data.title_zh = (data.title_zh or "").strip()
    data.title_en = (data.title_en or "").strip()
    if not data.title_zh and not data.title_en:
        raise InvalidInput("required", field="title_zh")
    for name in ("title_zh", "title_en"):
        if len(getattr(data, name)) > TITLE_LIMIT:
            raise InvalidInput("too_long", field=name, limit=TITLE_LIMIT)
    if data.kind not in KINDS:
        raise InvalidInput("invalid_choice", field="kind")
    check_calendar_day(data.first_start.date(), "day")  # 9999-12-31 is a typo or a probe, not a plan
    if not 1 <= data.capacity <= 2000:
        raise InvalidInput("number_out_of_range", field="capacity", low=1, high=2000)
    if not 5 <= data.duration_minutes <= 24 * 60:
        raise InvalidInput("number_out_of_range", field="duration_minutes", low=5, high=24 * 60)
    for name in ("setup_minutes", "teardown_minutes"):
        if not 0 <= getattr(data, name) <= 240:
            raise InvalidInput("number_out_of_range", field=name, low=0, high=240)
    for name in ("age_min", "age_max"):
        value = getattr(data, name)
        if value is not None and not 0 <= value <= 120:
            raise InvalidInput("number_out_of_range", field=name, low=0, high=120)
    if data.age_min is not None and data.age_max is not None and data.age_min > data.age_max:
        raise InvalidInput("age_range_reversed", field="age_min")
    if (data.registration_opens_at and data.registration_closes_at
            and data.registration_closes_at <= data.registration_opens_at):
        raise InvalidInput("ends_before_start", field="registration_closes_at")


async def _room(branch_id: int, code: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    room = await _first("SELECT id, code, name_zh, name_en, capacity FROM room WHERE branch = {} AND code = {}",
                        branch_id, code.strip().upper())
    if room is None:
        raise NotFound("room_not_found", field="room", code=code)
    return room


async def _bookings(room_ids: list[int], start: dt.datetime, end: dt.datetime,
                    margin: dt.timedelta = dt.timedelta(hours=8)) -> list[rules.Booking]:
    """Live sessions in these rooms around [start, end] (the margin covers the longest buffers)."""
    if not room_ids:
        return []
    marks = ", ".join("{}" for _ in room_ids)
    rows = await _rows(
        "SELECT o.uuid, o.room, o.starts_at, o.ends_at, e.setup_minutes, e.teardown_minutes, e.title_zh, "
        "e.title_en, o.local_start FROM occurrence o JOIN event e ON e.id = o.event "
        f"WHERE o.room IN ({marks}) AND o.status = 'scheduled' AND o.ends_at > {{}} AND o.starts_at < {{}}",
        *room_ids, start - margin, end + margin)
    return [rules.Booking(row["room"], row["starts_at"], row["ends_at"], dt.timedelta(minutes=row["setup_minutes"]),
                          dt.timedelta(minutes=row["teardown_minutes"]),
                          label=f"{row['title_zh'] or row['title_en']} {row['local_start']:%Y-%m-%d %H:%M}",
                          key=str(row["uuid"])) for row in rows]


async def schedule_event(principal: Principal, data: EventInput, now: dt.datetime) -> str:
    """Plan an event (one session or a series): every session fits its room, or nothing is saved."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    _validate(data)
    duration = dt.timedelta(minutes=data.duration_minutes)

    async def work() -> str:
        branch = await _first("SELECT id, code, time_zone, closes_on_public_holidays FROM branch WHERE code = {}",
                              (data.branch_code or "").strip().upper())
        if branch is None:
            raise NotFound("branch_not_found", field="branch", code=data.branch_code)
        if not principal.works_for(branch["id"]):
            raise NotPermitted("not_your_branch", code=branch["code"])
        room = await _room(branch["id"], data.room_code)
        programme_id = None
        if data.programme_uuid:
            found = await _first("SELECT id FROM programme WHERE uuid = {}", _uuid(data.programme_uuid,
                                                                               "programme_not_found"))
            if found is None:
                raise NotFound("programme_not_found", field="programme")
            programme_id = found["id"]
        try:
            sessions = recurrence.expand(
                data.first_start, duration, data.rrule, room["id"] if room else None,
                cancelled=frozenset(data.cancelled),
                moved={when: recurrence.Moved(to) for when, to in data.moved.items()})
        except recurrence.RecurrenceProblem as problem:
            raise InvalidInput(problem.code, field="rrule", **problem.params) from None
        if not sessions:  # every session of the series cancelled
            raise InvalidInput("rrule_empty", field="rrule")
        zone = branch["time_zone"]
        if room is not None:
            # Touch the room first: concurrent bookings of it queue here.
            await _rows("UPDATE room SET updated_at = {} WHERE id = {}", now, room["id"])
            first, last = sessions[0].start_utc(zone), sessions[-1].end_utc(zone)
            existing = await _bookings([room["id"]], first, last)
            calendar = (await calendars_for([branch], sessions[0].start.date(), sessions[-1].end.date()))[branch["id"]]
            public = public_calendar(sessions[0].start.date(), sessions[-1].end.date())
            facts = rules.RoomFacts(room["id"], room["capacity"], room["name_zh"])
            if data.rrule and data.skip_closed_days:
                sessions = [s for s in sessions if rules.day_is_open(s.start.date(), calendar, public)]
                if not sessions:  # every session of the series on a closed day
                    raise InvalidInput("rrule_empty", field="rrule")
            problems: list[rules.Refusal] = []
            for session in sessions:
                booking = rules.Booking(room["id"], session.start_utc(zone), session.end_utc(zone),
                                        dt.timedelta(minutes=data.setup_minutes),
                                        dt.timedelta(minutes=data.teardown_minutes))
                refusals = rules.booking_refusals(
                    booking, data.capacity, facts, existing,
                    opening_hours_ok=rules.within_opening_hours(session.start, session.end, calendar, public))
                for refusal in refusals:
                    if refusal.code in ("room_taken", "outside_opening_hours"):
                        refusal = rules.Refusal(refusal.code, {**refusal.params,
                                                               "day": f"{session.start:%Y-%m-%d %H:%M}"})
                    if refusal not in problems:
                        problems.append(refusal)
            comment = (data.override_comment or "").strip()
            standing = [r for r in problems if not (comment and r.overridable)]
            if standing:
                raise Refused(problems[:12])
        event_uuid = str(uuid_module.uuid4())
        await Event.insert(Event(
            uuid=event_uuid, branch=branch["id"], room=room["id"] if room else None, kind=data.kind,
            programme=programme_id,
            title_zh=data.title_zh, title_en=data.title_en, description_zh=data.description_zh,
            description_en=data.description_en, host=data.host, age_min=data.age_min, age_max=data.age_max,
            capacity=data.capacity, registration_required=data.registration_required,
            registration_opens_at=data.registration_opens_at, registration_closes_at=data.registration_closes_at,
            offer_minutes=data.offer_minutes, time_zone=zone, first_start=data.first_start,
            duration_minutes=data.duration_minutes, rrule=(data.rrule or "").strip() or None,
            setup_minutes=data.setup_minutes, teardown_minutes=data.teardown_minutes,
            created_by=principal.audit_name))
        event = await Event.select(Event.id).where(Event.uuid == event_uuid).first()
        await Occurrence.insert(*[Occurrence(
            uuid=str(uuid_module.uuid4()), event=event["id"], room=session.room_id,
            original_start=session.original_start, local_start=session.start, local_end=session.end,
            starts_at=session.start_utc(zone), ends_at=session.end_utc(zone), capacity=data.capacity,
            moved=session.moved) for session in sessions])
        await audit.record(principal.audit_name, "event.scheduled", f"event:{event_uuid}", sessions=len(sessions),
                           override=(data.override_comment or "").strip() or None)
        return event_uuid

    return await run_in_write_transaction(work)


async def skipped_days(event_uuid: str) -> list[dt.date]:
    """The days a series' rule gives that have no session (skipped as closed when it was planned,
    or never planned): what the planner is shown after planning."""
    event = await _first("SELECT id, first_start, duration_minutes, rrule FROM event WHERE uuid = {}",
                         _uuid(event_uuid, "occurrence_not_found"))
    if event is None or not event["rrule"]:
        return []
    planned = {row["original_start"] for row in await _rows(
        "SELECT original_start FROM occurrence WHERE event = {}", event["id"])}
    duration = dt.timedelta(minutes=event["duration_minutes"])
    return [session.original_start.date() for session in recurrence.expand(event["first_start"], duration,
                                                                             event["rrule"], None)
            if session.original_start not in planned]


async def find_rooms(branch_code: str, local_start: dt.datetime, local_end: dt.datetime,
                     head_count: int) -> list[dict[str, Any]]:
    """Rooms of a branch free at that time and big enough, smallest first."""
    if local_end <= local_start:
        raise InvalidInput("ends_before_start", field="end")
    async with read_transaction():
        branch = await _first("SELECT id, time_zone FROM branch WHERE code = {}", (branch_code or "").upper())
        if branch is None:
            raise NotFound("branch_not_found", code=branch_code)
        rooms = await _rows("SELECT id, code, name_zh, name_en, capacity FROM room WHERE branch = {}", branch["id"])
        start = recurrence.to_utc(local_start, branch["time_zone"])
        end = recurrence.to_utc(local_end, branch["time_zone"])
        bookings = await _bookings([room["id"] for room in rooms], start, end)
    facts = rules.free_rooms([rules.RoomFacts(r["id"], r["capacity"], r["code"]) for r in rooms], bookings,
                             start, end, head_count)
    by_id = {room["id"]: room for room in rooms}
    return [{"code": by_id[f.id]["code"], "name_zh": by_id[f.id]["name_zh"], "name_en": by_id[f.id]["name_en"],
             "capacity": f.capacity} for f in facts]


# --- registration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    name: str
    card_number: str
    status: str  # confirmed | waitlisted
    registration: str
    position: int | None = None  # in the waitlist


async def _take_place(occurrence_id: int) -> dict[str, Any]:
    """One statement takes a seat if one is free, else a waitlist place, and numbers the arrival
    (raw SQL: Piccolo's update cannot set columns from CASE expressions over the row)."""
    taken = await _first(
        "UPDATE occurrence SET arrivals = arrivals + 1, "
        "last_outcome = CASE WHEN confirmed < capacity THEN 'confirmed' ELSE 'waitlisted' END, "
        "waitlisted = waitlisted + CASE WHEN confirmed < capacity THEN 0 ELSE 1 END, "
        "confirmed = confirmed + CASE WHEN confirmed < capacity THEN 1 ELSE 0 END "
        "WHERE id = {} AND status = 'scheduled' RETURNING arrivals, last_outcome, waitlisted", occurrence_id)
    if taken is None:
        raise Refused([rules.Refusal("session_cancelled")])
    return taken


async def _insert_registrations(rows: list[tuple[Any, ...]]) -> None:
    """(uuid, occurrence, patron, registered_by, status, arrival, created_at, confirmed_at,
    updated_at) each: one statement for all."""
    if rows:
        await _rows(
            "INSERT INTO registration (uuid, occurrence, patron, registered_by, status, arrival, created_at, "
            "confirmed_at, offer_expires_at, cancelled_at, checked_in_at, updated_at) VALUES "
            + ", ".join("({}, {}, {}, {}, {}, {}, {}, {}, NULL, NULL, NULL, {})" for _ in rows),
            *[value for row in rows for value in row])


async def _registering(work: Callable[[], Awaitable[T]]) -> T:
    """A registration's transaction; a second registration of the same child for the same
    session, raced past the checks, is refused by the database's unique pair."""
    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Refused([rules.Refusal("already_registered", {"name": ""})]) from None
        raise


async def register(principal: Principal, occurrence_uuid: str, card_numbers: list[str],
                   now: dt.datetime) -> list[Outcome]:
    """A guardian registers linked children (or an adult themself) in one step.

    Every child is checked first (age on the day, duplicates, the window, a programme's
    limit); if any is refused, nobody is registered and every reason is given. Then each
    child, in the order given, takes a seat or the next place in the waitlist.
    """
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")
    cards = [normalise_card_number(card) for card in card_numbers if card and card.strip()]
    cards = list(dict.fromkeys(cards))
    if not cards:
        raise InvalidInput("choose_someone", field="patrons")
    if not principal.is_patron and not principal.is_staff:
        raise NotPermitted("sign_in_required")

    async def work() -> list[Outcome]:
        occurrence = await _first(
            "SELECT o.id, o.status, o.starts_at, o.local_start, o.event, e.age_min, e.age_max, e.time_zone, "
            "e.registration_required, e.registration_opens_at, e.registration_closes_at, e.programme, "
            "e.status AS event_status, p.per_child_session_limit FROM occurrence o JOIN event e ON e.id = o.event "
            "LEFT JOIN programme p ON p.id = e.programme WHERE o.uuid = {}", occurrence_uuid)
        if occurrence is None:
            raise NotFound("occurrence_not_found")
        marks = ", ".join("{}" for _ in cards)
        people = await _rows(f"SELECT id, name, card_number, birth_date FROM patron WHERE card_number IN ({marks})",
                             *cards)
        by_card = {person["card_number"]: person for person in people}
        for card in cards:
            person = by_card.get(card)
            if person is None or not (principal.is_staff or person["id"] == principal.id
                                      or person["id"] in principal.children_ids):
                raise NotPermitted("not_guardian")
        ids = [by_card[card]["id"] for card in cards]
        id_marks = ", ".join("{}" for _ in ids)
        registered = {row["patron"] for row in await _rows(
            f"SELECT patron FROM registration WHERE occurrence = {{}} AND patron IN ({id_marks}) "
            "AND status IN ('confirmed', 'offered', 'waitlisted', 'attended', 'no_show')", occurrence["id"], *ids)}
        in_programme: dict[int, int] = {}
        if occurrence["programme"] is not None and occurrence["per_child_session_limit"] is not None:
            for row in await _rows(
                    "SELECT r.patron, count(*) AS n FROM registration r JOIN occurrence o ON o.id = r.occurrence "
                    f"JOIN event e ON e.id = o.event WHERE e.programme = {{}} AND r.patron IN ({id_marks}) "
                    "AND r.status IN ('confirmed', 'offered', 'waitlisted', 'attended') GROUP BY r.patron",
                    occurrence["programme"], *ids):
                in_programme[row["patron"]] = row["n"]
        session = rules.SessionFacts(
            status="cancelled" if "cancelled" in (occurrence["status"], occurrence["event_status"]) else "scheduled",
            starts_at=occurrence["starts_at"], age_min=occurrence["age_min"], age_max=occurrence["age_max"],
            registration_required=occurrence["registration_required"],
            opens_at=occurrence["registration_opens_at"], closes_at=occurrence["registration_closes_at"],
            per_person_limit=occurrence["per_child_session_limit"])
        day = occurrence["local_start"].date()
        refusals: list[rules.Refusal] = []
        for card in cards:
            person = by_card[card]
            registrant = rules.Registrant(
                person["id"], person["name"], age_on(person["birth_date"], day) if person["birth_date"] else None,
                already_registered=person["id"] in registered,
                sessions_in_programme=in_programme.get(person["id"], 0))
            for refusal in rules.registration_refusals(session, registrant, now):
                if refusal not in refusals:
                    refusals.append(refusal)
        if refusals:
            raise Refused([_on_the_wall_clock(refusal, occurrence["time_zone"]) for refusal in refusals])
        outcomes = []
        rows: list[tuple[Any, ...]] = []
        for card in cards:
            person = by_card[card]
            taken = await _take_place(occurrence["id"])
            registration_uuid = str(uuid_module.uuid4())
            status = taken["last_outcome"]
            rows.append((registration_uuid, occurrence["id"], person["id"],
                         principal.id if principal.is_patron else None, status, taken["arrivals"], now,
                         now if status == "confirmed" else None, now))
            outcomes.append(Outcome(person["name"], person["card_number"], status, registration_uuid,
                                    taken["waitlisted"] if status == "waitlisted" else None))
        await _insert_registrations(rows)
        await notices.queue_registered({o.registration: o.position for o in outcomes}, now)
        return outcomes

    return await _registering(work)


# --- a whole series or programme in one step -----------------------------------------------


@dataclass
class ProgrammePlan:
    """What registering these children for these sessions would give now (the preview), or gave."""

    scope: str  # "series" | "programme"
    title_zh: str
    title_en: str
    sessions: list[dict[str, Any]]  # the sessions still to come, in time order
    children: list[dict[str, Any]]  # {patron_id, name, card_number}, in the order given
    lines: list[rules.PlanLine]
    time_zone: str = "Asia/Shanghai"

    @property
    def refusals(self) -> list[rules.Refusal]:
        found: list[rules.Refusal] = []
        for line in self.lines:
            for refusal in line.refusals:
                if refusal not in found:
                    found.append(refusal)
        return found

    def line(self, session: str, patron_id: int) -> rules.PlanLine | None:
        return next((x for x in self.lines if x.session == session and x.patron_id == patron_id), None)


SCOPES = {
    # A series: the event a session belongs to (one session, or an RRULE's occurrences).
    "series": ("SELECT id, title_zh, title_en FROM event WHERE uuid = {}", "e.id = {}", "event_not_found"),
    # A programme: every event grouped under it (event.programme), each with its sessions.
    "programme": ("SELECT id, title_zh, title_en FROM programme WHERE uuid = {}", "e.programme = {}",
                  "programme_not_found"),
}


async def _programme_facts(principal: Principal, scope: str, scope_uuid: str, cards: list[str],
                           chosen: list[str] | None, now: dt.datetime) -> ProgrammePlan:
    """Load what the plan needs (in the caller's transaction) and decide it (rules.programme_plan).

    `chosen`: the session uuids the family kept in the preview; each must be one of the scope's
    sessions still to come (a forged list is refused whole, nothing is registered)."""
    if scope not in SCOPES:
        raise NotFound("programme_not_found")
    find, where, missing = SCOPES[scope]
    head = await _first(find, _uuid(scope_uuid, missing))
    if head is None:
        raise NotFound(missing)
    sessions = await _rows(
        "SELECT o.id, o.uuid, o.status, o.starts_at, o.local_start, o.local_end, o.capacity, o.confirmed, "
        "o.waitlisted, e.age_min, e.age_max, e.time_zone, e.registration_required, e.registration_opens_at, "
        "e.registration_closes_at, e.programme, e.title_zh, e.title_en, p.per_child_session_limit, "
        "r.name_zh AS room_name_zh, r.name_en AS room_name_en FROM occurrence o JOIN event e ON e.id = o.event "
        "LEFT JOIN programme p ON p.id = e.programme LEFT JOIN room r ON r.id = o.room "
        f"WHERE {where} AND o.status = 'scheduled' AND e.status = 'scheduled' AND e.registration_required "
        "AND o.starts_at > {} ORDER BY o.starts_at, o.id", head["id"], now)
    for row in sessions:
        row["uuid"] = str(row["uuid"])
    if chosen is not None:
        known = {row["uuid"] for row in sessions}
        keys = list(dict.fromkeys(key.strip() for key in chosen if key and key.strip()))
        if not keys:
            raise InvalidInput("choose_a_session", field="session")
        if any(key not in known for key in keys):  # known keys are canonical uuids: anything else is not one
            raise InvalidInput("session_not_in_programme", field="session")
        sessions = [row for row in sessions if row["uuid"] in keys]
    if not sessions:
        raise Conflict("programme_no_sessions")
    if not cards:
        raise InvalidInput("choose_someone", field="patrons")
    marks = ", ".join("{}" for _ in cards)
    people = await _rows(f"SELECT id, name, card_number, birth_date FROM patron WHERE card_number IN ({marks})", *cards)
    by_card = {person["card_number"]: person for person in people}
    for card in cards:
        person = by_card.get(card)
        # Someone else's child, or a card that does not exist: the same answer, nothing told.
        if person is None or not (principal.is_staff or person["id"] == principal.id
                                  or person["id"] in principal.children_ids):
            raise NotPermitted("not_guardian")
    children = [by_card[card] for card in cards]
    ids = [person["id"] for person in children]
    id_marks = ", ".join("{}" for _ in ids)
    session_marks = ", ".join("{}" for _ in sessions)
    registered = {(row["occurrence"], row["patron"]) for row in await _rows(
        f"SELECT occurrence, patron FROM registration WHERE occurrence IN ({session_marks}) AND patron IN ({id_marks}) "
        "AND status IN ('confirmed', 'offered', 'waitlisted', 'attended', 'no_show')",
        *[row["id"] for row in sessions], *ids)}
    in_programme: dict[int, int] = {}
    programmes = {row["programme"] for row in sessions if row["programme"] is not None
                  and row["per_child_session_limit"] is not None}
    if len(programmes) == 1:
        for row in await _rows(
                "SELECT r.patron, count(*) AS n FROM registration r JOIN occurrence o ON o.id = r.occurrence "
                f"JOIN event e ON e.id = o.event WHERE e.programme = {{}} AND r.patron IN ({id_marks}) "
                "AND r.status IN ('confirmed', 'offered', 'waitlisted', 'attended') GROUP BY r.patron",
                next(iter(programmes)), *ids):
            in_programme[row["patron"]] = row["n"]
    by_key = {row["uuid"]: row for row in sessions}
    by_id = {person["id"]: person for person in children}

    def registrant(key: str, patron_id: int) -> rules.Registrant:
        person, session = by_id[patron_id], by_key[key]
        age = age_on(person["birth_date"], session["local_start"].date()) if person["birth_date"] else None
        return rules.Registrant(patron_id, person["name"], age, already_registered=(session["id"], patron_id) in registered)

    facts = [rules.ProgrammeSession(row["uuid"], rules.SessionFacts(
        status="scheduled", starts_at=row["starts_at"], age_min=row["age_min"], age_max=row["age_max"],
        registration_required=row["registration_required"], opens_at=row["registration_opens_at"],
        closes_at=row["registration_closes_at"], per_person_limit=row["per_child_session_limit"]),
        max(0, row["capacity"] - row["confirmed"]), row["waitlisted"]) for row in sessions]
    lines = rules.programme_plan(facts, [(p["id"], p["name"]) for p in children], registrant, in_programme, now)
    zone = sessions[0]["time_zone"]
    lines = [replace(line, refusals=tuple(_on_the_wall_clock(r, zone) for r in line.refusals)) for line in lines]
    return ProgrammePlan(scope, head["title_zh"], head["title_en"], sessions,
                         [{"patron_id": p["id"], "name": p["name"], "card_number": p["card_number"]} for p in children],
                         lines, zone)


def _cards(card_numbers: list[str]) -> list[str]:
    return list(dict.fromkeys(normalise_card_number(card) for card in card_numbers if card and card.strip()))


async def preview_programme(principal: Principal, scope: str, scope_uuid: str, card_numbers: list[str],
                            now: dt.datetime, sessions: list[str] | None = None) -> ProgrammePlan:
    """What registering these children for the whole series or programme (or the sessions kept)
    would give now: a seat, a waitlist place, already registered, or refused with the reasons."""
    if not principal.is_patron and not principal.is_staff:
        raise NotPermitted("sign_in_required")
    async with read_transaction():
        return await _programme_facts(principal, scope, scope_uuid, _cards(card_numbers), sessions, now)


async def register_programme(principal: Principal, scope: str, scope_uuid: str, card_numbers: list[str],
                             sessions: list[str] | None, now: dt.datetime) -> ProgrammePlan:
    """A guardian registers children for every session still to come of a series or programme
    (or the ones kept in the preview) in one step.

    The decision, as the page states it: **per session, not all or nothing**. Each child gets a
    seat in each session that has one and a waitlist place (in arrival order) in each that is
    full, exactly as if each session had been registered for on its own at that moment; a
    session the child already holds is left as it is. Refusals are all or nothing: if any child
    may not register for any kept session (age, window, the programme's per-child limit), nobody
    is registered and every reason is given, so the parent can drop that session in the preview.

    Capacity and order: one conditional UPDATE per seat (as in `register`), sessions taken in id
    order so that two families' transactions lock them in the same order (no deadlock on
    PostgreSQL) and a family's arrival is in the same place in every session's queue.
    Returns the plan with each line's real outcome.
    """
    if not principal.is_patron and not principal.is_staff:
        raise NotPermitted("sign_in_required")
    cards = _cards(card_numbers)

    async def work() -> ProgrammePlan:
        plan = await _programme_facts(principal, scope, scope_uuid, cards, sessions, now)
        if plan.refusals:
            raise Refused(plan.refusals[:20])
        by_key = {row["uuid"]: row for row in plan.sessions}
        wanted = [line for line in plan.lines if line.outcome in ("seat", "waitlist")]
        order = {row["id"]: n for n, row in enumerate(sorted(plan.sessions, key=lambda row: row["id"]))}
        child_order = {child["patron_id"]: n for n, child in enumerate(plan.children)}
        done: dict[tuple[str, int], rules.PlanLine] = {}
        rows: list[tuple[Any, ...]] = []
        for line in sorted(wanted, key=lambda x: (order[by_key[x.session]["id"]], child_order[x.patron_id])):
            session = by_key[line.session]
            taken = await _take_place(session["id"])
            status = taken["last_outcome"]
            rows.append((str(uuid_module.uuid4()), session["id"], line.patron_id,
                         principal.id if principal.is_patron else None, status, taken["arrivals"], now,
                         now if status == "confirmed" else None, now))
            done[(line.session, line.patron_id)] = replace(
                line, outcome="seat" if status == "confirmed" else "waitlist",
                position=taken["waitlisted"] if status == "waitlisted" else None)
        await _insert_registrations(rows)  # every seat and waitlist place taken above
        plan.lines = [done.get((line.session, line.patron_id), line) for line in plan.lines]
        if done and principal.is_patron:
            await notices.queue_programme(principal.id, plan, f"programme_registered:{uuid_module.uuid4()}", now)
        return plan

    return await _registering(work)


async def cancel_registration(principal: Principal, registration_uuid: str, now: dt.datetime) -> list[str]:
    """Cancel a seat or a waitlist place; a freed seat goes to the first in the waitlist (who is told).

    Returns the registrations promoted.
    """
    registration_uuid = _uuid(registration_uuid, "registration_not_found")

    async def work() -> list[str]:
        row = await _first("SELECT r.id, r.patron, r.registered_by, r.status, r.occurrence FROM registration r "
                           "WHERE r.uuid = {}", registration_uuid)
        if row is None or not (principal.is_staff or row["patron"] == principal.id
                               or row["patron"] in principal.children_ids):
            raise NotFound("registration_not_found")
        if row["status"] not in ACTIVE:
            raise Conflict("registration_not_active", status=row["status"])
        await _rows("UPDATE registration SET status = 'cancelled', cancelled_at = {}, updated_at = {} WHERE id = {}",
                    now, now, row["id"])
        if row["status"] == "waitlisted":
            await _rows("UPDATE occurrence SET waitlisted = waitlisted - 1 WHERE id = {}", row["occurrence"])
            return []
        await _rows("UPDATE occurrence SET confirmed = confirmed - 1 WHERE id = {}", row["occurrence"])
        return await _promote(row["occurrence"], now)

    return await run_in_write_transaction(work)


async def _promote(occurrence_id: int, now: dt.datetime) -> list[str]:
    """Fill free seats from the waitlist, first-fit in arrival order (see rules.py)."""
    occurrence = await _first(
        "SELECT o.capacity, o.confirmed, o.starts_at, o.local_start, e.offer_minutes, e.title_zh, e.title_en, "
        "o.status FROM occurrence o JOIN event e ON e.id = o.event WHERE o.id = {}", occurrence_id)
    if occurrence["status"] != "scheduled" or occurrence["starts_at"] <= now:
        return []
    free = occurrence["capacity"] - occurrence["confirmed"]
    if free <= 0:
        return []
    waiting = await _rows("SELECT id, uuid, patron, registered_by, arrival FROM registration "
                          "WHERE occurrence = {} AND status = 'waitlisted' ORDER BY arrival", occurrence_id)
    chosen = set(rules.promote([rules.Waiting(w["id"], (w["arrival"],)) for w in waiting], free))
    promoted = []
    for entry in waiting:
        if entry["id"] not in chosen:
            continue
        took = await _rows("UPDATE occurrence SET confirmed = confirmed + 1, waitlisted = waitlisted - 1 "
                           "WHERE id = {} AND confirmed < capacity RETURNING confirmed", occurrence_id)
        if not took:
            break
        offer_until = (now + dt.timedelta(minutes=occurrence["offer_minutes"])
                       if occurrence["offer_minutes"] else None)
        await _rows("UPDATE registration SET status = {}, confirmed_at = {}, offer_expires_at = {}, updated_at = {} "
                    "WHERE id = {}", "offered" if offer_until else "confirmed", None if offer_until else now,
                    offer_until, now, entry["id"])
        promoted.append(str(entry["uuid"]))
        # The guardian who registered the child is told (else the reader themself).
        await outbox.queue(notices.OFFERED if offer_until else notices.PROMOTED,
                           entry["registered_by"] or entry["patron"], f"promoted:{entry['uuid']}", now,
                           title=notices.Localized(occurrence["title_zh"], occurrence["title_en"]),
                           day=occurrence["local_start"].date(), time=f"{occurrence['local_start']:%H:%M}")
    return promoted


async def occurrence_detail(occurrence_uuid: str) -> dict[str, Any]:
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")
    row = await _first(
        "SELECT o.uuid, o.local_start, o.local_end, o.capacity, o.confirmed, o.waitlisted, o.status, o.moved, "
        "e.uuid AS event_uuid, e.title_zh, e.title_en, e.description_zh, e.description_en, e.age_min, e.age_max, "
        "e.kind, e.host, e.registration_required, e.registration_opens_at, e.registration_closes_at, "
        "b.code AS branch_code, b.name_zh AS branch_name_zh, b.name_en AS branch_name_en, "
        "r.name_zh AS room_name_zh, r.name_en AS room_name_en, e.rrule, pg.uuid AS programme_uuid, "
        "pg.title_zh AS programme_title_zh, pg.title_en AS programme_title_en FROM occurrence o "
        "JOIN event e ON e.id = o.event JOIN branch b ON b.id = e.branch LEFT JOIN room r ON r.id = o.room "
        "LEFT JOIN programme pg ON pg.id = e.programme WHERE o.uuid = {}", occurrence_uuid)
    if row is None:
        raise NotFound("occurrence_not_found")
    view = dict(row)
    view["uuid"], view["event_uuid"] = str(row["uuid"]), str(row["event_uuid"])
    view["programme_uuid"] = str(row["programme_uuid"]) if row["programme_uuid"] else None
    view["seats_left"] = max(0, row["capacity"] - row["confirmed"])
    return view


async def waitlist(occurrence_uuid: str) -> list[dict[str, Any]]:
    """Registrations of a session in arrival order (staff lists, tests)."""
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")
    return await _rows(
        "SELECT r.uuid, r.status, r.arrival, p.card_number, p.name FROM registration r "
        "JOIN occurrence o ON o.id = r.occurrence JOIN patron p ON p.id = r.patron WHERE o.uuid = {} "
        "ORDER BY r.arrival", occurrence_uuid)


async def occurrences_of(event_uuid: str) -> list[dict[str, Any]]:
    event_uuid = _uuid(event_uuid, "event_not_found")
    return await _rows(
        "SELECT o.uuid, o.local_start, o.local_end, o.capacity, o.confirmed, o.waitlisted, o.status, o.moved "
        "FROM occurrence o JOIN event e ON e.id = o.event WHERE e.uuid = {} ORDER BY o.starts_at", event_uuid)



# --- what people see ------------------------------------------------------------------------


@dataclass
class SessionFilters:
    branch: str | None = None
    kind: str | None = None
    age: int | None = None


async def upcoming(filters: SessionFilters, start: dt.datetime, end: dt.datetime,
                   limit: int = 300) -> list[dict[str, Any]]:
    """Sessions between start and end (UTC) for the public calendar, with seats left."""
    where = ["o.starts_at >= {}", "o.starts_at < {}", "e.status = 'scheduled'"]
    args: list[Any] = [start, end]
    if filters.branch:
        where.append("b.code = {}")
        args.append(filters.branch.upper())
    if filters.kind:
        where.append("e.kind = {}")
        args.append(filters.kind)
    if filters.age is not None:
        where.append("(e.age_min IS NULL OR e.age_min <= {}) AND (e.age_max IS NULL OR e.age_max >= {})")
        args += [filters.age, filters.age]
    rows = await _rows(
        "SELECT o.uuid, o.local_start, o.local_end, o.capacity, o.confirmed, o.waitlisted, o.status, o.moved, "
        "e.uuid AS event_uuid, e.title_zh, e.title_en, e.kind, e.age_min, e.age_max, e.registration_required, "
        "e.time_zone, b.code AS branch_code, b.name_zh AS branch_name_zh, b.name_en AS branch_name_en, "
        "r.code AS room_code, r.name_zh AS room_name_zh, r.name_en AS room_name_en "
        "FROM occurrence o JOIN event e ON e.id = o.event JOIN branch b ON b.id = e.branch "
        f"LEFT JOIN room r ON r.id = o.room WHERE {' AND '.join(where)} ORDER BY o.starts_at LIMIT {int(limit)}",
        *args)
    views = []
    for row in rows:
        view = dict(row)
        view["uuid"], view["event_uuid"] = str(row["uuid"]), str(row["event_uuid"])
        view["seats_left"] = max(0, row["capacity"] - row["confirmed"])
        views.append(view)
    return views


async def registrations_of(principal: Principal, now: dt.datetime) -> list[dict[str, Any]]:
    """A reader's (and their children's) registrations for sessions still to come."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    ids = [principal.id, *sorted(principal.children_ids)]
    marks = ", ".join("{}" for _ in ids)
    rows = await _rows(
        "SELECT r.uuid, r.status, r.arrival, r.offer_expires_at, p.name, p.card_number, o.uuid AS session_uuid, "
        "o.local_start, o.status AS session_status, e.title_zh, e.title_en, "
        "(SELECT count(*) FROM registration w WHERE w.occurrence = r.occurrence AND w.status = 'waitlisted' "
        "AND w.arrival < r.arrival) AS ahead "
        "FROM registration r JOIN patron p ON p.id = r.patron JOIN occurrence o ON o.id = r.occurrence "
        f"JOIN event e ON e.id = o.event WHERE r.patron IN ({marks}) AND o.ends_at > {{}} "
        "AND r.status IN ('confirmed', 'offered', 'waitlisted') ORDER BY o.starts_at", *ids, now)
    return [{**row, "uuid": str(row["uuid"]), "session_uuid": str(row["session_uuid"]),
             "position": row["ahead"] + 1 if row["status"] == "waitlisted" else None} for row in rows]


@dataclass(frozen=True)
class CheckedIn:
    """One scan at the door: who came in now, who was in already (with the local time they
    came), and who else on the card stays out, with the reason."""

    card_number: str
    holder: str
    checked_in: list[dict[str, Any]]
    already: list[dict[str, Any]]
    turned_away: list[rules.Refusal]


def _on_the_wall_clock(refusal: rules.Refusal, zone: str) -> rules.Refusal:
    """A rule's UTC times as the branch's local time, the way the librarian at the door reads them."""
    return rules.Refusal(refusal.code, {
        key: f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}" if isinstance(value, dt.datetime) else value
        for key, value in refusal.params.items()})


async def check_in(principal: Principal, occurrence_uuid: str, card_number: str, now: dt.datetime,
                   window: rules.CheckInWindow) -> CheckedIn:
    """Staff scan a card at the door: the holder's seat, and the seats of every child linked to
    the card, are marked attended, within the check-in window (`rules.check_in` decides).
    Scanning twice is harmless: the second scan says who is in already."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")
    card = normalise_card_number(card_number)
    if not card:
        raise InvalidInput("required", field="card")

    async def work() -> CheckedIn:
        occurrence = await _first(
            "SELECT o.id, o.status, o.starts_at, o.ends_at, e.status AS event_status, e.registration_required, "
            "e.time_zone, e.branch, b.code AS branch_code FROM occurrence o JOIN event e ON e.id = o.event "
            "JOIN branch b ON b.id = e.branch WHERE o.uuid = {}", occurrence_uuid)
        if occurrence is None:
            raise NotFound("occurrence_not_found")
        if not principal.works_for(occurrence["branch"]):
            raise NotPermitted("not_your_branch", code=occurrence["branch_code"])
        holder = await _first("SELECT id, name FROM patron WHERE card_number = {}", card)
        if holder is None:
            raise NotFound("patron_not_found", field="card", card_number=card)
        children = [row["child"] for row in await _rows("SELECT child FROM guardian_link WHERE guardian = {}",
                                                        holder["id"])]
        ids = [holder["id"], *children]
        marks = ", ".join("{}" for _ in ids)
        rows = await _rows(
            "SELECT r.id, r.uuid, r.patron, r.status, r.arrival, r.offer_expires_at, p.name, p.card_number "
            f"FROM registration r JOIN patron p ON p.id = r.patron WHERE r.occurrence = {{}} AND r.patron IN ({marks})",
            occurrence["id"], *ids)
        rows.sort(key=lambda row: (row["patron"] != holder["id"], row["arrival"], row["id"]))  # the holder first
        by_id = {row["id"]: row for row in rows}
        cancelled = "cancelled" in (occurrence["status"], occurrence["event_status"])
        decision = rules.check_in(
            rules.DoorSession(status="cancelled" if cancelled else "scheduled", starts_at=occurrence["starts_at"],
                              ends_at=occurrence["ends_at"], registration_required=occurrence["registration_required"]),
            window, holder["name"],
            [rules.Attendee(row["id"], row["patron"], row["name"], row["status"], row["offer_expires_at"])
             for row in rows],
            now, family=bool(children))
        zone = occurrence["time_zone"]
        if decision.refusals:
            raise Refused([_on_the_wall_clock(refusal, zone) for refusal in decision.refusals])
        admitted, already = [], [attendee.registration_id for attendee in decision.already]
        for attendee in decision.admit:
            # Conditional: of two scans at once, one checks in and the other finds them in already.
            took = await _rows(
                "UPDATE registration SET status = 'attended', checked_in_at = {}, "
                "confirmed_at = COALESCE(confirmed_at, {}), offer_expires_at = NULL, updated_at = {} "
                "WHERE id = {} AND status IN ('confirmed', 'offered', 'no_show') RETURNING id",
                now, now, now, attendee.registration_id)
            (admitted if took else already).append(attendee.registration_id)
        came: dict[int, Any] = {key: now for key in admitted}
        if already:
            marks = ", ".join("{}" for _ in already)
            found = await _rows(f"SELECT id, status, checked_in_at FROM registration WHERE id IN ({marks})", *already)
            came |= {row["id"]: row["checked_in_at"] for row in found}
            # A seat lost in the same instant (an offer lapsing) is not "in already".
            already = [key for key in already if any(row["id"] == key and row["status"] == "attended" for row in found)]
        if admitted:
            await audit.record(principal.audit_name, "session.checked_in", f"session:{occurrence_uuid}",
                               registrations=[str(by_id[key]["uuid"]) for key in admitted])

        def person(key: int) -> dict[str, Any]:
            row = by_id[key]
            at = came.get(key)
            return {"name": row["name"], "card_number": row["card_number"],
                    "checked_in_at": at.astimezone(ZoneInfo(zone)).replace(tzinfo=None) if at else None}

        return CheckedIn(card, holder["name"], [person(key) for key in admitted], [person(key) for key in already],
                         list(decision.turned_away))

    return await run_in_write_transaction(work)


async def week_grid(principal: Principal, branch_code: str, monday: dt.date) -> dict[str, Any]:
    """Every room of a branch over a week, with its sessions (for planning)."""
    async with read_transaction():
        branch = await _first("SELECT id, code, time_zone, name_zh, name_en FROM branch WHERE code = {}",
                              (branch_code or "").upper())
        if branch is None:
            raise NotFound("branch_not_found", code=branch_code)
        rooms = await _rows("SELECT id, code, name_zh, name_en, capacity FROM room WHERE branch = {} ORDER BY code",
                            branch["id"])
        start = recurrence.to_utc(dt.datetime.combine(monday, dt.time()), branch["time_zone"])
        sessions = await _rows(
            "SELECT o.uuid, o.room, o.local_start, o.local_end, o.confirmed, o.capacity, e.title_zh, e.title_en "
            "FROM occurrence o JOIN event e ON e.id = o.event JOIN room r ON r.id = o.room "
            "WHERE r.branch = {} AND o.status = 'scheduled' AND o.starts_at >= {} AND o.starts_at < {} "
            "ORDER BY o.starts_at", branch["id"], start, start + dt.timedelta(days=7))
    days = [monday + dt.timedelta(days=n) for n in range(7)]
    grid = []
    for room in rooms:
        grid.append({**room, "days": [[{**s, "uuid": str(s["uuid"])} for s in sessions
                                       if s["room"] == room["id"] and s["local_start"].date() == day]
                                      for day in days]})
    return {"branch": branch, "days": days, "rooms": grid}


async def cancel_session(principal: Principal, occurrence_uuid: str, now: dt.datetime) -> int:
    """Cancel one session of a series (it becomes an EXDATE in the feeds); its registrations end."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")

    async def work() -> int:
        row = await _first("SELECT o.id, o.status, e.branch FROM occurrence o JOIN event e ON e.id = o.event "
                           "WHERE o.uuid = {}", occurrence_uuid)
        if row is None:
            raise NotFound("occurrence_not_found")
        if not principal.works_for(row["branch"]):
            raise NotPermitted("not_your_branch", code="")
        if row["status"] == "cancelled":
            raise Conflict("session_cancelled")
        await _rows("UPDATE occurrence SET status = 'cancelled', updated_at = {} WHERE id = {}", now, row["id"])
        ended = await _rows("UPDATE registration SET status = 'cancelled', cancelled_at = {}, updated_at = {} "
                            "WHERE occurrence = {} AND status IN ('confirmed', 'offered', 'waitlisted') RETURNING id",
                            now, now, row["id"])
        if ended:
            marks = ", ".join("{}" for _ in ended)
            await notices.queue_for_registrations(notices.CANCELLED, f"r.id IN ({marks})",
                                                  [e["id"] for e in ended], "session_cancelled:{uuid}", now)
        await audit.record(principal.audit_name, "session.cancelled", f"session:{occurrence_uuid}",
                           registrations=len(ended))
        return len(ended)

    return await run_in_write_transaction(work)


async def move_session(principal: Principal, occurrence_uuid: str, local_start: dt.datetime, local_end: dt.datetime,
                       room_code: str | None, now: dt.datetime, capacity: int | None = None,
                       override_comment: str | None = None) -> None:
    """Move one session (another time, another room, another size): the same rules as planning,
    and never into a room smaller than the seats already confirmed."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    occurrence_uuid = _uuid(occurrence_uuid, "occurrence_not_found")
    if local_end <= local_start:
        raise InvalidInput("ends_before_start", field="end")
    check_calendar_day(local_start.date(), "day")

    async def work() -> None:
        row = await _first(
            "SELECT o.id, o.uuid, o.room, o.capacity, o.confirmed, o.status, o.local_start, o.local_end, e.branch, "
            "e.setup_minutes, "
            "e.teardown_minutes, b.time_zone, b.closes_on_public_holidays, b.code AS branch_code "
            "FROM occurrence o JOIN event e ON e.id = o.event JOIN branch b ON b.id = e.branch WHERE o.uuid = {}",
            occurrence_uuid)
        if row is None:
            raise NotFound("occurrence_not_found")
        if not principal.works_for(row["branch"]):
            raise NotPermitted("not_your_branch", code=row["branch_code"])
        if row["status"] == "cancelled":
            raise Conflict("session_cancelled")
        room = await _room(row["branch"], room_code) if room_code else (
            await _first("SELECT id, code, name_zh, name_en, capacity FROM room WHERE id = {}", row["room"])
            if row["room"] else None)
        seats = capacity or row["capacity"]
        start, end = recurrence.to_utc(local_start, row["time_zone"]), recurrence.to_utc(local_end, row["time_zone"])
        problems: list[rules.Refusal] = []
        if seats < row["confirmed"]:
            problems.append(rules.Refusal("fewer_seats_than_registered", {"confirmed": row["confirmed"],
                                                                         "capacity": seats}))
        if room is not None:
            await _rows("UPDATE room SET updated_at = {} WHERE id = {}", now, room["id"])
            branch = {"id": row["branch"], "closes_on_public_holidays": row["closes_on_public_holidays"]}
            calendar = (await calendars_for([branch], local_start.date(), local_end.date()))[row["branch"]]
            booking = rules.Booking(room["id"], start, end, dt.timedelta(minutes=row["setup_minutes"]),
                                    dt.timedelta(minutes=row["teardown_minutes"]), key=str(row["uuid"]))
            for refusal in rules.booking_refusals(
                    booking, seats, rules.RoomFacts(room["id"], room["capacity"], room["name_zh"]),
                    await _bookings([room["id"]], start, end), confirmed=row["confirmed"],
                    opening_hours_ok=rules.within_opening_hours(local_start, local_end, calendar,
                                                                public_calendar(local_start.date(), local_end.date()))):
                if refusal.code in ("room_taken", "outside_opening_hours"):
                    refusal = rules.Refusal(refusal.code, {**refusal.params, "day": f"{local_start:%Y-%m-%d %H:%M}"})
                if refusal not in problems:
                    problems.append(refusal)
        comment = (override_comment or "").strip()
        if [r for r in problems if not (comment and r.overridable)]:
            raise Refused(problems)
        await _rows("UPDATE occurrence SET local_start = {}, local_end = {}, starts_at = {}, ends_at = {}, room = {}, "
                    "capacity = {}, moved = {}, updated_at = {} WHERE id = {}", local_start, local_end, start, end,
                    room["id"] if room else None, seats, True, now, row["id"])
        # Everyone with a seat or a place in the queue hears of a new time or room (once per move;
        # more seats alone is no news to them).
        moved = (local_start, local_end, room["id"] if room else None) != (row["local_start"], row["local_end"],
                                                                           row["room"])
        if moved:
            await notices.queue_for_registrations(
                notices.MOVED, "r.occurrence = {} AND r.status IN ('confirmed', 'offered', 'waitlisted')", [row["id"]],
                "session_moved:{uuid}:{start:%Y-%m-%dT%H:%M}:" + (room["code"] if room else ""), now)
        await audit.record(principal.audit_name, "session.moved", f"session:{occurrence_uuid}",
                           start=local_start.isoformat(), room=room["code"] if room else None, override=comment or None)
        if seats > row["confirmed"]:
            await _promote(row["id"], now)

    await run_in_write_transaction(work)


async def accept_offer(principal: Principal, registration_uuid: str, now: dt.datetime) -> None:
    """A family takes the seat offered to them from the waitlist before the offer lapses."""
    registration_uuid = _uuid(registration_uuid, "registration_not_found")

    async def work() -> None:
        row = await _first("SELECT id, patron, status, offer_expires_at FROM registration WHERE uuid = {}",
                           registration_uuid)
        if row is None or not (principal.is_staff or row["patron"] == principal.id
                               or row["patron"] in principal.children_ids):
            raise NotFound("registration_not_found")
        if row["status"] != "offered" or (row["offer_expires_at"] and row["offer_expires_at"] <= now):
            raise Conflict("offer_lapsed")
        await _rows("UPDATE registration SET status = 'confirmed', confirmed_at = {}, offer_expires_at = NULL, "
                    "updated_at = {} WHERE id = {}", now, now, row["id"])

    await run_in_write_transaction(work)


async def lapse_offers(now: dt.datetime) -> int:
    """Offers not taken in time lapse; their seats pass to the next on the waitlist."""
    async def work() -> int:
        lapsed = await _rows("UPDATE registration SET status = 'cancelled', cancelled_at = {}, updated_at = {} "
                             "WHERE status = 'offered' AND offer_expires_at <= {} RETURNING occurrence", now, now, now)
        for row in lapsed:
            await _rows("UPDATE occurrence SET confirmed = confirmed - 1 WHERE id = {}", row["occurrence"])
        for occurrence in {row["occurrence"] for row in lapsed}:
            await _promote(occurrence, now)
        return len(lapsed)

    return await run_in_write_transaction(work)


async def attendance_csv(principal: Principal, event_uuid: str, now: dt.datetime, programme: bool = False) -> str:
    """Attendance per session of an event (or of every event of a programme, `programme=True`):
    registered, attended, no-shows (past sessions), waitlist."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    missing = "programme_not_found" if programme else "event_not_found"
    event_uuid = _uuid(event_uuid, missing)
    # An unknown one is a 404, not an empty spreadsheet that looks like an event nobody came to.
    if await _first(f"SELECT id FROM {'programme' if programme else 'event'} WHERE uuid = {{}}", event_uuid) is None:
        raise NotFound(missing)
    which = "e.programme = (SELECT id FROM programme WHERE uuid = {})" if programme else "e.uuid = {}"
    rows = await _rows(
        "SELECT e.title_zh, e.title_en, o.local_start, o.capacity, o.status AS session_status, o.ends_at, "
        "sum(CASE WHEN r.status IN ('confirmed', 'offered', 'attended', 'no_show') THEN 1 ELSE 0 END) AS registered, "
        "sum(CASE WHEN r.status = 'attended' THEN 1 ELSE 0 END) AS attended, "
        "sum(CASE WHEN r.status = 'waitlisted' THEN 1 ELSE 0 END) AS waiting "
        "FROM occurrence o JOIN event e ON e.id = o.event LEFT JOIN registration r ON r.occurrence = o.id "
        f"WHERE {which} GROUP BY o.id, e.title_zh, e.title_en, o.local_start, o.capacity, o.status, o.ends_at "
        "ORDER BY o.local_start", event_uuid)
    lines: list[list[object]] = [["event", "session", "status", "capacity", "registered", "attended", "no_shows",
                                  "waitlisted"]]
    for row in rows:
        registered, attended = int(row["registered"] or 0), int(row["attended"] or 0)
        past = row["ends_at"] <= now
        lines.append([row["title_zh"] or row["title_en"], f"{row['local_start']:%Y-%m-%d %H:%M}",
                      row["session_status"], row["capacity"], registered, attended,
                      registered - attended if past else "", int(row["waiting"] or 0)])
    return spreadsheet.csv_text(lines)


async def _lapse_offers_step(now: dt.datetime, settings: Settings) -> dict[str, int]:
    return {"offers_lapsed": await lapse_offers(now)}


# Activities' part of the notice round (library.notices.worker), wired in by library.app and
# library.cli: seat offers not taken in time first (a seat that passes on queues its notice for
# this round), then the reminders of tomorrow's sessions.
NOTICE_STEPS = (Step("lapse seat offers", _lapse_offers_step),
                Step("queue session reminders", notices.queue_session_reminders))
