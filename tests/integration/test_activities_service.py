"""Activities on a real database: scheduling against rooms, registration, waitlist, 200 at once."""

import asyncio
import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest

from library.accounts.principal import Principal
from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import feed_service, service
from library.activities.service import EventInput, Refused
from library.activities.tables import Event, Occurrence, Registration
from library.branches.tables import Branch
from library.demo import load_demo
from library.errors import InvalidInput, NotPermitted
from library.notices.tables import Notice
from tests.support import connection_pool

NOW = dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.timezone.utc)


def librarian_of(branch_id: int) -> Principal:
    return Principal(kind="staff", id=0, uuid="t", name="周晓琳", language="zh_CN", role="librarian",
                     branch_ids=frozenset({branch_id}))


@pytest.fixture
async def zx():
    await load_demo(dt.date(2026, 6, 20), books=False)
    await Event.delete(force=True)  # the demo's own programme; these tests plan their own
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    return librarian_of(branch["id"])


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def club(**changes) -> EventInput:
    values = dict(branch_code="ZX", title_zh="绘本俱乐部", title_en="Picture-book club",
                  first_start=dt.datetime(2026, 7, 4, 10, 0), duration_minutes=60, capacity=25, room_code="KIDS",
                  age_min=4, age_max=6, rrule="FREQ=WEEKLY;BYDAY=SA;UNTIL=20260829T235959",
                  moved={dt.datetime(2026, 8, 1, 10, 0): dt.datetime(2026, 8, 2, 10, 0)},
                  registration_opens_at=dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.timezone.utc))
    values.update(changes)
    return EventInput(**values)


async def sessions_of(event_uuid: str) -> list[dict]:
    return await service.occurrences_of(event_uuid)


async def test_the_summer_club_is_scheduled_and_an_overlap_is_refused_by_name(zx):
    event = await service.schedule_event(zx, club(), NOW)
    sessions = await sessions_of(event)
    assert len(sessions) == 9 and sessions[4]["local_start"] == dt.datetime(2026, 8, 2, 10, 0)
    with pytest.raises(Refused) as refused:
        await service.schedule_event(zx, club(title_zh="知识讲堂", rrule=None, moved={}, capacity=20,
                                              first_start=dt.datetime(2026, 7, 11, 10, 30)), NOW)
    [reason] = refused.value.refusals
    assert reason.code == "room_taken" and "绘本俱乐部 2026-07-11 10:00" in reason.params["other"]
    assert len(await Occurrence.select(Occurrence.id)) == 9  # nothing half-written


async def test_forty_seats_do_not_fit_a_room_of_thirty(zx):
    with pytest.raises(Refused) as refused:
        await service.schedule_event(zx, club(capacity=40, rrule=None, moved={}), NOW)
    assert [r.code for r in refused.value.refusals] == ["over_room_capacity"]


async def test_outside_opening_hours_needs_an_override(zx):
    late = club(rrule=None, moved={}, first_start=dt.datetime(2026, 7, 4, 21, 0))
    with pytest.raises(Refused) as refused:
        await service.schedule_event(zx, late, NOW)
    assert [r.code for r in refused.value.refusals] == ["outside_opening_hours"]
    late.override_comment = "夏夜故事会，已报备"
    assert await service.schedule_event(zx, late, NOW)


async def test_a_series_without_an_end_is_refused(zx):
    with pytest.raises(InvalidInput) as refused:
        await service.schedule_event(zx, club(rrule="FREQ=WEEKLY;BYDAY=SA", moved={}), NOW)
    assert refused.value.code == "rrule_unbounded"


async def test_find_a_room_for_twenty_five_on_friday_evening(zx):
    friday = dt.datetime(2026, 7, 10, 19, 0)
    await service.schedule_event(zx, club(title_zh="亲子阅读", rrule=None, moved={}, first_start=friday,
                                          age_min=None, age_max=None), NOW)
    rooms = await service.find_rooms("ZX", friday, friday + dt.timedelta(hours=1), 25)
    assert [room["code"] for room in rooms] == ["STUDY"]


async def test_a_mother_registers_both_children_and_the_youngest_is_refused_politely(zx):
    event = await service.schedule_event(zx, club(), NOW)
    first = (await sessions_of(event))[0]
    mother = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "ZX10000001").first())["id"])
    with pytest.raises(Refused) as refused:
        await service.register(mother, str(first["uuid"]), ["ZX10000002", "ZX10000003"], NOW)
    [reason] = refused.value.refusals
    assert reason.code == "too_young" and reason.params["name"] == "李小宇" and reason.params["age"] == 3
    assert await Registration.count() == 0
    [outcome] = await service.register(mother, str(first["uuid"]), ["ZX10000002"], NOW)
    assert outcome.status == "confirmed"
    with pytest.raises(Refused) as again:
        await service.register(mother, str(first["uuid"]), ["ZX10000002"], NOW)
    assert [r.code for r in again.value.refusals] == ["already_registered"]
    stranger = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "JX20000001").first())["id"])
    with pytest.raises(NotPermitted):
        await service.register(stranger, str(first["uuid"]), ["ZX10000002"], NOW)


async def test_a_parent_too_early_reads_when_registration_opens_on_the_branch_clock(zx):
    """Opening at 01:00 UTC is 09:00 in Jiaxing: that is what the refusal says, in each language."""
    from library.errors import reason_views
    from library.i18n import current_language

    event = await service.schedule_event(zx, club(), NOW)
    first = (await sessions_of(event))[0]
    mother = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "ZX10000001").first())["id"])
    with pytest.raises(Refused) as refused:
        await service.register(mother, str(first["uuid"]), ["ZX10000002"], NOW - dt.timedelta(minutes=5))
    [reason] = refused.value.refusals
    assert reason.code == "registration_not_open" and reason.params == {"opens_at": "2026-06-20 09:00"}
    for language, said in (("en", "Registration opens at 2026-06-20 09:00."), ("zh_CN", "2026-06-20 09:00")):
        token = current_language.set(language)
        try:
            message = reason_views([reason])[0]["message"]
        finally:
            current_language.reset(token)
        assert said in message and "+00:00" not in message and "T01:00" not in message
    assert await Registration.count() == 0


async def _readers(count: int) -> list[Principal]:
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    await Patron.insert(*[Patron(card_number=f"ZX9{n:07d}", name=f"读者{n}", category="adult",
                                 home_branch=branch["id"], expires_on=dt.date(2029, 1, 1), pin_hash="-",
                                 email=f"r{n}@example.org") for n in range(count)])
    rows = await Patron.select(Patron.id, Patron.uuid, Patron.name, Patron.card_number).where(
        Patron.card_number.like("ZX9%")).order_by(Patron.card_number)
    return [Principal(kind="patron", id=r["id"], uuid=str(r["uuid"]), name=r["name"], language="zh_CN")
            for r in rows]


async def test_two_hundred_at_once_for_twenty_five_seats(zx):
    event = await service.schedule_event(zx, club(title_zh="暑期故事会", rrule=None, moved={}, age_min=None,
                                                  age_max=None), NOW)
    session = str((await sessions_of(event))[0]["uuid"])
    readers = await _readers(200)
    async with connection_pool():  # as the server runs: 200 requests share 20 connections on PostgreSQL
        results = await asyncio.gather(*[service.register(r, session, [f"ZX9{n:07d}"], NOW)
                                         for n, r in enumerate(readers)], return_exceptions=True)
    assert all(isinstance(result, list) for result in results), [r for r in results if not isinstance(r, list)][:3]
    rows = await service.waitlist(session)
    confirmed = [row for row in rows if row["status"] == "confirmed"]
    waiting = [row for row in rows if row["status"] == "waitlisted"]
    assert len(confirmed) == 25 and len(waiting) == 175
    # Seats went to the first 25 arrivals; the waitlist is the rest, in arrival order.
    assert [row["arrival"] for row in rows] == list(range(1, 201))
    assert {row["arrival"] for row in confirmed} == set(range(1, 26))
    detail = await service.occurrence_detail(session)
    assert (detail["confirmed"], detail["waitlisted"], detail["seats_left"]) == (25, 175, 0)


async def test_a_cancellation_gives_the_seat_to_the_first_in_line_who_is_told(zx):
    event = await service.schedule_event(zx, club(title_zh="手工课", rrule=None, moved={}, age_min=None,
                                                  age_max=None, capacity=2), NOW)
    session = str((await sessions_of(event))[0]["uuid"])
    readers = await _readers(4)
    outcomes = [(await service.register(r, session, [f"ZX9{n:07d}"], NOW))[0] for n, r in enumerate(readers)]
    assert [o.status for o in outcomes] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [o.position for o in outcomes[2:]] == [1, 2]
    promoted = await service.cancel_registration(readers[0], outcomes[0].registration, NOW)
    assert promoted == [outcomes[2].registration]
    statuses = {row["card_number"]: row["status"] for row in await service.waitlist(session)}
    assert statuses == {"ZX90000000": "cancelled", "ZX90000001": "confirmed", "ZX90000002": "confirmed",
                        "ZX90000003": "waitlisted"}
    notice = await Notice.select(Notice.kind, Notice.to_address, Notice.subject).where(
        Notice.kind == "seat_confirmed").first()
    assert notice == {"kind": "seat_confirmed", "to_address": "r2@example.org", "subject": notice["subject"]}
    assert "手工课" in notice["subject"]


async def test_the_branch_feed_expands_to_the_sessions_the_site_shows(zx):
    from icalendar import Calendar

    event = await service.schedule_event(zx, club(), NOW)
    sessions = await sessions_of(event)
    await service.cancel_session(zx, str(sessions[2]["uuid"]), NOW)  # 18 July
    ics = await feed_service.feed("ZX", None, NOW)
    [series] = [v for v in Calendar.from_ical(ics).walk("VEVENT") if "RRULE" in v]
    start = series["DTSTART"].dt
    assert str(start.tzinfo) == "Asia/Shanghai" and start.hour == 10
    from_feed = sorted(_feed_sessions(ics))
    from_site = sorted(s["local_start"] for s in await sessions_of(event) if s["status"] == "scheduled")
    assert from_feed == from_site and len(from_site) == 8
    assert dt.datetime(2026, 8, 2, 10, 0) in from_feed and dt.datetime(2026, 7, 18, 10, 0) not in from_feed


def _feed_sessions(ics: bytes) -> dict[dt.datetime, str]:
    """What a calendar app shows from a feed: every session's local start -> its location, as
    an iCalendar expander we did not write (recurring-ical-events) reads the series, its
    EXDATEs and its overrides."""
    import recurring_ical_events
    from icalendar import Calendar

    zone = ZoneInfo("Asia/Shanghai")
    shown: dict[dt.datetime, str] = {}
    for vevent in recurring_ical_events.of(Calendar.from_ical(ics)).between(dt.date(2000, 1, 1), dt.date(2100, 1, 1)):
        shown[vevent["DTSTART"].dt.astimezone(zone).replace(tzinfo=None)] = str(vevent.get("LOCATION", ""))
    return shown


async def test_a_session_moved_to_another_room_is_in_that_rooms_feed_only(zx):
    """A weekly club in the children's area (KIDS); one Saturday it moves to the craft room
    (CRAFT), same hour: ?room=CRAFT lists that session alone, ?room=KIDS every other one, and
    the branch's feed all of them, the moved one at its new room."""
    event = await service.schedule_event(zx, club(moved={}), NOW)
    sessions = await sessions_of(event)
    moved = sessions[3]
    await service.move_session(zx, str(moved["uuid"]), moved["local_start"], moved["local_end"], "CRAFT", NOW,
                               capacity=20)  # the craft room seats 20
    everything = _feed_sessions(await feed_service.feed("ZX", None, NOW))
    kids = _feed_sessions(await feed_service.feed("ZX", "KIDS", NOW))
    craft = _feed_sessions(await feed_service.feed("ZX", "CRAFT", NOW))
    starts = sorted(s["local_start"] for s in sessions)
    assert sorted(everything) == starts and len(starts) == 9
    assert list(craft) == [moved["local_start"]] and "手工教室" in craft[moved["local_start"]]
    assert sorted(kids) == [when for when in starts if when != moved["local_start"]]
    assert "手工教室" in everything[moved["local_start"]]
    assert all("手工教室" not in location for when, location in everything.items() if when != moved["local_start"])


async def test_a_weekly_series_across_the_autumn_holidays_skips_the_closed_saturdays_and_says_so(zx):
    """Issue 18, part 5: the Zhenxing room closes on public holidays. A Saturday club planned from
    mid-September to mid-October is planned without 26 September (the Mid-Autumn break, 25-27)
    and 3 October (National Day), which are listed, instead of the whole series being refused
    as outside opening hours; 10 October, a make-up working Saturday, is kept."""
    autumn = dict(first_start=dt.datetime(2026, 9, 19, 10, 0), rrule="FREQ=WEEKLY;BYDAY=SA;UNTIL=20261017T235959",
                  moved={})
    event = await service.schedule_event(zx, club(**autumn), NOW)
    days = [s["local_start"].date() for s in await sessions_of(event)]
    assert days == [dt.date(2026, 9, 19), dt.date(2026, 10, 10), dt.date(2026, 10, 17)]
    assert await service.skipped_days(event) == [dt.date(2026, 9, 26), dt.date(2026, 10, 3)]
    # Asked to plan on closed days too, the same series is refused, naming the days.
    with pytest.raises(Refused) as refused:
        await service.schedule_event(zx, club(**{**autumn, "first_start": dt.datetime(2026, 9, 19, 14, 0)},
                                              title_zh="下午场", skip_closed_days=False), NOW)
    assert [(r.code, r.params.get("day")) for r in refused.value.refusals] == [
        ("outside_opening_hours", "2026-09-26 14:00"), ("outside_opening_hours", "2026-10-03 14:00")]


async def test_moving_a_session_keeps_the_rules_and_never_shrinks_below_the_registered(zx):
    event = await service.schedule_event(zx, club(title_zh="手工课", rrule=None, moved={}, age_min=None,
                                                  age_max=None, capacity=20, room_code="STUDY"), NOW)
    session = str((await sessions_of(event))[0]["uuid"])
    readers = await _readers(18)
    for n, reader in enumerate(readers):
        await service.register(reader, session, [f"ZX9{n:07d}"], NOW)
    start = dt.datetime(2026, 7, 4, 15, 0)
    with pytest.raises(Refused) as refused:
        await service.move_session(zx, session, start, start + dt.timedelta(hours=1), "CRAFT", NOW, capacity=15)
    assert [r.code for r in refused.value.refusals] == ["fewer_seats_than_registered"]
    await service.move_session(zx, session, start, start + dt.timedelta(hours=1), "CRAFT", NOW)
    detail = await service.occurrence_detail(session)
    assert detail["room_name_zh"] == "手工教室" and detail["local_start"] == start and detail["moved"]


async def test_an_offered_seat_lapses_to_the_next_family(zx):
    event = await service.schedule_event(zx, club(title_zh="故事会", rrule=None, moved={}, age_min=None,
                                                  age_max=None, capacity=1, offer_minutes=60), NOW)
    session = str((await sessions_of(event))[0]["uuid"])
    first, second, third = await _readers(3)
    [seat] = await service.register(first, session, ["ZX90000000"], NOW)
    [wait2] = await service.register(second, session, ["ZX90000001"], NOW)
    [wait3] = await service.register(third, session, ["ZX90000002"], NOW)
    await service.cancel_registration(first, seat.registration, NOW)
    statuses = {r["card_number"]: r["status"] for r in await service.waitlist(session)}
    assert statuses["ZX90000001"] == "offered" and statuses["ZX90000002"] == "waitlisted"
    assert await service.lapse_offers(NOW + dt.timedelta(minutes=61)) == 1
    statuses = {r["card_number"]: r["status"] for r in await service.waitlist(session)}
    assert statuses["ZX90000001"] == "cancelled" and statuses["ZX90000002"] == "offered"
    await service.accept_offer(third, wait3.registration, NOW + dt.timedelta(minutes=62))
    assert {r["card_number"]: r["status"] for r in await service.waitlist(session)}["ZX90000002"] == "confirmed"
    text = await service.attendance_csv(zx, event, NOW + dt.timedelta(days=30))
    session_row = _csv_rows(text)[1]
    assert session_row[0] == "故事会" and session_row[2:] == ["scheduled", "1", "1", "0", "1", "0"]


async def test_a_programme_limits_sessions_per_child(zx):
    from library.activities.challenge import ProgrammeInput, create_programme

    programme = await create_programme(zx, ProgrammeInput(title_zh="暑期阅读", starts_on=dt.date(2026, 7, 1),
                                                          ends_on=dt.date(2026, 8, 31), per_child_session_limit=2))
    event = await service.schedule_event(zx, club(programme_uuid=programme), NOW)
    sessions = [str(s["uuid"]) for s in await sessions_of(event)]
    mother = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "ZX10000001").first())["id"])
    for session in sessions[:2]:
        await service.register(mother, session, ["ZX10000002"], NOW)
    with pytest.raises(Refused) as refused:
        await service.register(mother, sessions[2], ["ZX10000002"], NOW)
    assert [(r.code, r.params["limit"]) for r in refused.value.refusals] == [("session_limit", 2)]
    report = _csv_rows(await service.attendance_csv(zx, programme, NOW, programme=True))
    assert len(report) == 1 + 9 and report[1][:6] == ["绘本俱乐部", "2026-07-04 10:00", "scheduled", "25", "1", "0"]
