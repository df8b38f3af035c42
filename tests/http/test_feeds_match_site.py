"""Issue 18, part 4: the iCalendar feeds say exactly what the site says, for every branch, every
room and a reader, once a librarian has moved sessions of a weekly series (in time, and into
another room) and cancelled one.

The feeds are read back by `recurring-ical-events`, the expander phone calendars' servers are
built like, not by our own code that wrote them: an RRULE, EXDATE or RECURRENCE-ID that only we
understand would pass a test that reads the feed with our code."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar

from library.accounts.tables import Patron
from library.activities import listings, service
from library.activities.feeds import patron_feed_token
from library.activities.service import EventInput, SessionFilters
from library.branches.tables import Branch, Room
from tests.http.conftest import FROZEN_NOW
from tests.http.families import LIBRARIAN, reader, register, session_at, sessions_of, signed_in
from tests.support import sign_in_patron

ZONE = ZoneInfo("Asia/Shanghai")
START = FROZEN_NOW - dt.timedelta(days=1)
END = FROZEN_NOW + dt.timedelta(days=120)


def expanded(body: bytes) -> set[tuple[dt.datetime, dt.datetime, str]]:
    """Every session a calendar app would show: (local start, local end, Chinese title)."""
    calendar = Calendar.from_ical(body)
    found = set()
    for event in recurring_ical_events.of(calendar).between(START, END):
        start, end = event["DTSTART"].dt, event["DTEND"].dt
        found.add((start.astimezone(ZONE).replace(tzinfo=None), end.astimezone(ZONE).replace(tzinfo=None),
                   str(event["SUMMARY"]).split(" / ")[0]))
    return found


def conforms(body: bytes) -> None:
    """What RFC 5545 asks and apps differ on when it is not met: a VTIMEZONE for every TZID, and
    UNTIL in UTC beside a DTSTART with a time zone (a bare date is read as the start of its day
    by some apps and as the end by others)."""
    calendar = Calendar.from_ical(body)
    zones = {str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")}
    for event in calendar.walk("VEVENT"):
        assert event["DTSTART"].params.get("TZID") in zones, event["DTSTART"].to_ical()
        if "RRULE" in event and "UNTIL" in event["RRULE"]:
            until = event["RRULE"]["UNTIL"][0]
            assert isinstance(until, dt.datetime) and until.utcoffset() == dt.timedelta(0), event["RRULE"].to_ical()


def held(sessions) -> set[tuple[dt.datetime, dt.datetime, str]]:
    return {(s["local_start"], s["local_end"], s["title_zh"]) for s in sessions}


async def test_every_feed_lists_exactly_the_sessions_the_site_lists(app, client):
    club = [row["original_start"] for row in await sessions_of("周六绘本俱乐部")]
    moved_room, moved_time, cancelled, kept = club[1], club[2], club[3], club[5]

    # The family first: 李小米 in three Saturdays (one to be moved to another room, one to be
    # moved in time, one to be cancelled), her mother in a one-seat session someone else took.
    await sign_in_patron(client)
    for original in (moved_room, moved_time, cancelled, kept):
        await register(client, await session_at("周六绘本俱乐部", original), "ZX10000002")
    small = moved_room.date() + dt.timedelta(days=4)  # a Wednesday (the Tuesday before is a closure)
    await service.schedule_event(LIBRARIAN, EventInput(
        branch_code="ZX", title_zh="家长沙龙", title_en="Parents' evening", kind="lecture", capacity=1,
        first_start=dt.datetime.combine(small, dt.time(19, 0)), duration_minutes=60, room_code="TALK"), FROZEN_NOW)
    salon = await session_at("家长沙龙", dt.datetime.combine(small, dt.time(19, 0)))
    async with signed_in(app, "ZX10000004") as outsider:
        await register(outsider, salon, "ZX10000004")
    waiting = await register(client, salon, "ZX10000001")
    assert "候补" in waiting or "waitlist" in waiting.lower()

    # Series written the three ways the site writes an end: a bare date on a session's own day
    # (which ends the series before that session: the site expands in wall-clock time from
    # midnight), the planning form's end of day, and a count. The first starts on a closure, so
    # its DTSTART is a session the site never had.
    closure = dt.date(2026, 12, 15)
    for title, rule in (("周二手工坊", "FREQ=WEEKLY;UNTIL=20261229"),
                        ("周二故事会", "FREQ=WEEKLY;UNTIL=20261229T235959"),
                        ("周二绘画课", "FREQ=WEEKLY;COUNT=3")):
        start = {"周二手工坊": 14, "周二故事会": 16, "周二绘画课": 18}[title]
        await service.schedule_event(LIBRARIAN, EventInput(
            branch_code="ZX", title_zh=title, kind="workshop", capacity=8, rrule=rule, room_code="STUDIO",
            first_start=dt.datetime.combine(closure, dt.time(start, 0)), duration_minutes=60), FROZEN_NOW)

    # Then the librarian: one Saturday into the study room, one to Friday afternoon, one cancelled.
    await service.move_session(LIBRARIAN, await session_at("周六绘本俱乐部", moved_room), moved_room,
                               moved_room + dt.timedelta(hours=1), "STUDY", FROZEN_NOW)
    friday = moved_time - dt.timedelta(days=1) + dt.timedelta(hours=6)
    await service.move_session(LIBRARIAN, await session_at("周六绘本俱乐部", moved_time), friday,
                               friday + dt.timedelta(hours=1), None, FROZEN_NOW)
    await service.cancel_session(LIBRARIAN, await session_at("周六绘本俱乐部", cancelled), FROZEN_NOW)

    site = [s for s in await service.upcoming(SessionFilters(), START, END) if s["status"] != "cancelled"]
    assert {(s["local_start"], s["room_code"]) for s in site if s["title_zh"] == "周六绘本俱乐部"} >= {
        (moved_room, "STUDY"), (friday, "KIDS")}
    assert not any(s["local_start"] == cancelled for s in site)

    branches = await Branch.select(Branch.id, Branch.code)
    assert len(branches) >= 3
    for branch in branches:
        answer = await client.get(f"/activities/feeds/{branch['code']}.ics")
        assert answer.status_code == 200
        listed = [s for s in site if s["branch_code"] == branch["code"]]
        assert expanded(answer.content) == held(listed), branch["code"]
        conforms(answer.content)
        for room in await Room.select(Room.code).where(Room.branch == branch["id"]):
            answer = await client.get(f"/activities/feeds/{branch['code']}.ics", params={"room": room["code"]})
            assert answer.status_code == 200
            in_room = [s for s in listed if s["room_code"] == room["code"]]
            assert expanded(answer.content) == held(in_room), (branch["code"], room["code"])
    # The adversary of the old feed: the moved Saturday is the study room's, not the kids' space's.
    kids = expanded((await client.get("/activities/feeds/ZX.ics", params={"room": "KIDS"})).content)
    study = expanded((await client.get("/activities/feeds/ZX.ics", params={"room": "STUDY"})).content)
    assert (moved_room, moved_room + dt.timedelta(hours=1), "周六绘本俱乐部") in study - kids
    assert (friday, friday + dt.timedelta(hours=1), "周六绘本俱乐部") in kids
    assert not any(start == cancelled for start, _, _ in kids | study)

    # The page a parent reads lists the same sessions (its list view: the next 60 days).
    page = await client.get("/activities", params={"branch": "ZX"})
    shown = set(re.findall(r'data-session="([0-9a-f-]+)" data-status="scheduled"', page.text))
    horizon = FROZEN_NOW + dt.timedelta(days=60)
    assert shown == {s["uuid"] for s in site if s["branch_code"] == "ZX"
                     and s["local_start"].replace(tzinfo=ZONE) < horizon}

    # The reader: the family's seats as "My account" lists them, the waitlist place left out.
    account = await client.get("/account")
    feed_link = html.unescape(re.search(r'href="(/activities/feeds/readers/[^"]+)"', account.text).group(1))
    mine = await client.get(feed_link)
    assert mine.status_code == 200
    family = await listings.family_registrations(await reader("ZX10000001"), FROZEN_NOW)
    seated = [r for r in family["upcoming"] if r["status"] in ("confirmed", "offered")]
    assert expanded(mine.content) == held(seated)
    conforms(mine.content)
    assert {r["local_start"] for r in seated} == {moved_room, friday, kept}
    assert any(r["status"] == "waitlisted" and r["position"] == 1 for r in family["upcoming"])

    # Every reader, with a seat or without: their private feed is their account page's seats.
    secret = app.state.settings.secret_key
    for card in [row["card_number"] for row in await Patron.select(Patron.card_number)]:
        someone = await reader(card)
        answer = await client.get(f"/activities/feeds/readers/{someone.uuid}.ics",
                                  params={"token": patron_feed_token(secret, someone.uuid)})
        listed = (await listings.family_registrations(someone, FROZEN_NOW))["upcoming"]
        assert expanded(answer.content) == held(r for r in listed if r["status"] in ("confirmed", "offered")), card

