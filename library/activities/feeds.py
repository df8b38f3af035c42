"""iCalendar feeds (RFC 5545) built with the icalendar package.

A series is one VEVENT with its RRULE in the branch's time zone, EXDATEs for cancelled
sessions and one overriding VEVENT (same UID, RECURRENCE-ID) per moved session, so a phone
calendar shows exactly the sessions the site shows. A reader's feed lists their sessions
one by one (a registration is for a session, not for a series).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, vRecur
from icalendar import Event as VEvent

from library.activities.recurrence import expand, to_utc


PRODID = "-//Jiaxing Library Network//Activities//ZH"


def _calendar(name: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    return calendar


def _local(value: dt.datetime, zone: str) -> dt.datetime:
    return value.replace(tzinfo=ZoneInfo(zone))


def _base(uid: str, summary: str, description: str, location: str, start: dt.datetime, end: dt.datetime,
          stamp: dt.datetime) -> VEvent:
    event = VEvent()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("summary", summary)
    if description:
        event.add("description", description)
    if location:
        event.add("location", location)
    event.add("dtstart", start)
    event.add("dtend", end)
    return event


def series_feed(name: str, events: list[dict[str, Any]], sessions: list[dict[str, Any]],
                stamp: dt.datetime, room_id: int | None = None) -> bytes:
    """`events`: rows of event; `sessions`: their occurrences (original and actual starts, room,
    status). `room_id`: the feed of one room — only the sessions held there, wherever their
    series is held: a series planned in the room lists its sessions moved elsewhere as EXDATEs,
    and a session moved into the room from another room's series is a VEVENT of its own."""
    calendar = _calendar(name)
    by_event: dict[int, list[dict[str, Any]]] = {}
    for session in sessions:
        by_event.setdefault(session["event"], []).append(session)
    for event in events:
        zone = event["time_zone"]
        own = sorted(by_event.get(event["id"], []), key=lambda s: s["original_start"])
        if not own:
            continue
        uid = f"{event['uuid']}@library"
        summary = event["title_zh"] or event["title_en"]
        if event["title_zh"] and event["title_en"]:
            summary = f"{event['title_zh']} / {event['title_en']}"
        description = event["description_zh"] or event["description_en"]
        branch = event.get("branch_name_zh")

        def where(room_name: str | None) -> str:
            return " ".join(part for part in (branch, room_name) if part)

        if room_id is not None and event["room"] != room_id:
            # Planned elsewhere: only its sessions moved into this room, each on its own.
            for session in own:
                if session["room"] == room_id and session["status"] != "cancelled":
                    calendar.add_component(_base(
                        f"{session['uuid']}@library", summary, description, where(session.get("room_name_zh")),
                        _local(session["local_start"], zone), _local(session["local_end"], zone), stamp))
            continue
        if room_id is not None:  # its sessions moved to another room are not this room's
            own = [{**s, "status": "elsewhere"} if s["room"] != room_id and s["status"] != "cancelled" else s
                   for s in own]
        duration = dt.timedelta(minutes=event["duration_minutes"])
        if not event["rrule"]:
            # One session: as it is now (moved in time or room with it).
            [session] = own[:1]
            if session["status"] not in ("cancelled", "elsewhere"):
                calendar.add_component(_base(uid, summary, description, where(session.get("room_name_zh")),
                                             _local(session["local_start"], zone), _local(session["local_end"], zone),
                                             stamp))
            continue
        first = _local(event["first_start"], zone)
        main = _base(uid, summary, description, where(event.get("room_name_zh")), first, first + duration, stamp)
        generated = expand(event["first_start"], duration, event["rrule"], None)
        main.add("rrule", _rrule_value(event["rrule"], to_utc(generated[-1].original_start, zone)))
        for session in own:
            if session["status"] in ("cancelled", "elsewhere"):
                main.add("exdate", _local(session["original_start"], zone))
        # Sessions the series gives but the site does not have (cancelled or skipped when planned).
        planned = {session["original_start"] for session in own}
        for session in generated:
            if session.original_start not in planned:
                main.add("exdate", _local(session.original_start, zone))
        calendar.add_component(main)
        for session in own:
            if session["status"] in ("cancelled", "elsewhere"):
                continue
            moved = session["local_start"] != session["original_start"] or (
                session["local_end"] - session["local_start"]) != duration or session["room"] != event["room"]
            if moved:
                override = _base(uid, summary, description, where(session.get("room_name_zh")),
                                 _local(session["local_start"], zone), _local(session["local_end"], zone), stamp)
                override.add("recurrence-id", _local(session["original_start"], zone))
                calendar.add_component(override)
    return _finished(calendar)


def _rrule_value(text: str, last: dt.datetime) -> vRecur:
    """The series' rule as a calendar app must read it. RFC 5545 wants UNTIL in UTC when DTSTART
    has a time zone; ours is a bare date or a floating end of day, which apps read each their
    own way (a bare date as the start or the end of that day, a floating time as UTC). The
    last session the site expanded (`last`, UTC) is the one unambiguous end."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    rule = vRecur.from_ical(text)
    if "UNTIL" in rule:
        rule["UNTIL"] = [last]
    return rule


def _finished(calendar: Calendar) -> bytes:
    # Every TZID used gets its VTIMEZONE (RFC 5545 3.2.19): an app need not know Asia/Shanghai.
    calendar.add_missing_timezones()
    return calendar.to_ical()


def sessions_feed(name: str, sessions: list[dict[str, Any]], stamp: dt.datetime) -> bytes:
    """One VEVENT per session (a reader's registrations)."""
    calendar = _calendar(name)
    for session in sessions:
        zone = session["time_zone"]
        summary = session["title_zh"] or session["title_en"]
        event = _base(f"{session['uuid']}@library", summary, "", session.get("room_name_zh") or "",
                      _local(session["local_start"], zone), _local(session["local_end"], zone), stamp)
        calendar.add_component(event)
    return _finished(calendar)


def patron_feed_token(secret: str, patron_uuid: str) -> str:
    """A reader's private feed address: phone calendars cannot sign in, so the URL is the key."""
    return hmac.new(secret.encode(), f"feed:{patron_uuid}".encode(), hashlib.sha256).hexdigest()[:32]


def patron_feed_url(secret: str, patron_uuid: str) -> str:
    """The address a reader gives her phone's calendar (it carries its own key)."""
    return f"/activities/feeds/readers/{patron_uuid}.ics?token={patron_feed_token(secret, patron_uuid)}"

