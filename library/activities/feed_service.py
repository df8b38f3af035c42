"""The iCalendar feeds' queries: a branch's (or a room's) series with their exceptions, and a
reader's own sessions with their children's. The feeds themselves are built in feeds.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import uuid as uuid_module

from library.accounts.tables import GuardianLink, Patron
from library.activities.feeds import patron_feed_token, series_feed, sessions_feed
from library.activities.tables import Event, Occurrence, Registration
from library.branches.tables import Branch, Room
from library.db import read_transaction
from library.errors import NotFound

# A reader's feed lists the sessions they hold a seat in: not a waitlist place, which is no
# appointment (the account page shows those beside it).
SEATED = ["confirmed", "offered", "attended"]
# DTSTAMP is the time the feed was made, different on every request: left out of the entity tag,
# which must change when a session does and only then.
_STAMP_LINE = re.compile(rb"^DTSTAMP[:;].*\r?\n", re.MULTILINE)


def feed_etag(body: bytes) -> str:
    """The feed's entity tag, for `ETag`: a calendar app that polls gets a 304 until a session changes."""
    return '"' + hashlib.sha256(_STAMP_LINE.sub(b"", body)).hexdigest()[:32] + '"'


async def feed(branch_code: str, room_code: str | None, stamp: dt.datetime) -> bytes:
    """The iCalendar feed of a branch (or one of its rooms): every series with its exceptions."""
    async with read_transaction():
        branch = await Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en).where(
            Branch.code == (branch_code or "").strip().upper()).first()
        if branch is None:
            raise NotFound("branch_not_found", code=branch_code)
        room = None
        if room_code:
            room = await Room.select(Room.id, Room.code, Room.name_zh, Room.name_en).where(
                (Room.branch == branch["id"]) & (Room.code == room_code.strip().upper())).first()
            if room is None:
                raise NotFound("room_not_found", field="room", code=room_code)
        events = await Event.select(
            Event.id, Event.uuid, Event.room, Event.title_zh, Event.title_en, Event.description_zh,
            Event.description_en, Event.time_zone, Event.first_start, Event.duration_minutes, Event.rrule,
            Event.branch.name_zh.as_alias("branch_name_zh"), Event.room.name_zh.as_alias("room_name_zh"),
        ).where((Event.branch == branch["id"]) & (Event.status == "scheduled")).order_by(Event.id)
        sessions = await Occurrence.select(
            Occurrence.uuid, Occurrence.event, Occurrence.room, Occurrence.room.name_zh.as_alias("room_name_zh"),
            Occurrence.original_start, Occurrence.local_start, Occurrence.local_end, Occurrence.status,
        ).where(Occurrence.event.branch == branch["id"])
    name = f"{branch['name_zh']}{' · ' + room['name_zh'] if room else ''}"
    return series_feed(name, events, sessions, stamp, room["id"] if room else None)


async def patron_feed(patron_uuid: str, token: str, secret: str, stamp: dt.datetime) -> bytes:
    """A reader's registrations (and their children's) as a private feed."""
    try:
        patron_uuid = str(uuid_module.UUID(str(patron_uuid)))
    except ValueError:
        raise NotFound("patron_not_found", card_number="?") from None
    if not hmac.compare_digest(patron_feed_token(secret, patron_uuid), token or ""):
        raise NotFound("patron_not_found", card_number="?")
    async with read_transaction():
        patron = await Patron.select(Patron.id, Patron.name).where(Patron.uuid == patron_uuid).first()
        if patron is None:
            raise NotFound("patron_not_found", card_number="?")
        children = [row["child"] for row in await GuardianLink.select(GuardianLink.child).where(
            GuardianLink.guardian == patron["id"])]
        seats = await Registration.select(
            Registration.occurrence.uuid.as_alias("uuid"), Registration.occurrence.local_start.as_alias("local_start"),
            Registration.occurrence.local_end.as_alias("local_end"),
            Registration.occurrence.event.time_zone.as_alias("time_zone"),
            Registration.occurrence.event.title_zh.as_alias("title_zh"),
            Registration.occurrence.event.title_en.as_alias("title_en"),
            Registration.occurrence.room.name_zh.as_alias("room_name_zh"),
            Registration.occurrence.starts_at.as_alias("starts_at"),
        ).where(Registration.patron.is_in([patron["id"], *children]) & Registration.status.is_in(SEATED)
                & (Registration.occurrence.status == "scheduled")
                & (Registration.occurrence.event.status == "scheduled")).order_by(Registration.occurrence.starts_at)
    # A mother and her daughter in the same session: one appointment in the calendar.
    sessions = list({row["uuid"]: row for row in seats}.values())
    return sessions_feed(patron["name"], sessions, stamp)
