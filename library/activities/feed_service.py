"""The iCalendar feeds' queries: a branch's (or a room's) series with their exceptions, and a
reader's own sessions with their children's. The feeds themselves are built in feeds.py."""

from __future__ import annotations

import datetime as dt
import hmac

from library.activities.feeds import patron_feed_token, series_feed, sessions_feed
from library.activities.service import _first, _room, _rows, _uuid
from library.db import read_transaction
from library.errors import NotFound


async def feed(branch_code: str, room_code: str | None, stamp: dt.datetime) -> bytes:
    """The iCalendar feed of a branch (or one of its rooms): every series with its exceptions."""
    async with read_transaction():
        branch = await _first("SELECT id, code, name_zh, name_en FROM branch WHERE code = {}",
                              (branch_code or "").upper())
        if branch is None:
            raise NotFound("branch_not_found", code=branch_code)
        room = await _room(branch["id"], room_code) if room_code else None
        events = await _rows(
            "SELECT e.id, e.uuid, e.room, e.title_zh, e.title_en, e.description_zh, e.description_en, e.time_zone, "
            "e.first_start, e.duration_minutes, e.rrule, b.name_zh AS branch_name_zh, r.name_zh AS room_name_zh "
            "FROM event e JOIN branch b ON b.id = e.branch LEFT JOIN room r ON r.id = e.room "
            "WHERE e.branch = {} AND e.status = 'scheduled'", branch["id"])
        sessions = await _rows(
            "SELECT o.uuid, o.event, o.room, r.name_zh AS room_name_zh, o.original_start, o.local_start, "
            "o.local_end, o.status FROM occurrence o JOIN event e ON e.id = o.event "
            "LEFT JOIN room r ON r.id = o.room WHERE e.branch = {}", branch["id"])
    name = f"{branch['name_zh']}{' · ' + room['name_zh'] if room else ''}"
    return series_feed(name, events, sessions, stamp, room["id"] if room else None)


async def patron_feed(patron_uuid: str, token: str, secret: str, stamp: dt.datetime) -> bytes:
    """A reader's registrations (and their children's) as a private feed."""
    patron_uuid = _uuid(patron_uuid, "patron_not_found")
    if not hmac.compare_digest(patron_feed_token(secret, patron_uuid), token or ""):
        raise NotFound("patron_not_found", card_number="?")
    patron = await _first("SELECT id, name FROM patron WHERE uuid = {}", patron_uuid)
    if patron is None:
        raise NotFound("patron_not_found", card_number="?")
    children = [row["child"] for row in await _rows("SELECT child FROM guardian_link WHERE guardian = {}",
                                                    patron["id"])]
    ids = [patron["id"], *children]
    marks = ", ".join("{}" for _ in ids)
    sessions = await _rows(
        "SELECT DISTINCT o.uuid, o.local_start, o.local_end, e.time_zone, e.title_zh, e.title_en, "
        "r.name_zh AS room_name_zh FROM registration g JOIN occurrence o ON o.id = g.occurrence "
        "JOIN event e ON e.id = o.event LEFT JOIN room r ON r.id = o.room "
        f"WHERE g.patron IN ({marks}) AND g.status IN ('confirmed', 'offered', 'attended') "
        "AND o.status = 'scheduled'", *ids)
    return sessions_feed(patron["name"], sessions, stamp)
