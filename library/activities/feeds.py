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

from icalendar import Calendar
from icalendar import Event as VEvent

from library.activities.recurrence import expand


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
                stamp: dt.datetime) -> bytes:
    """`events`: rows of event; `sessions`: their occurrences (original and actual starts, status)."""
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
        location = " ".join(part for part in (event.get("branch_name_zh"), event.get("room_name_zh")) if part)
        duration = dt.timedelta(minutes=event["duration_minutes"])
        first = _local(event["first_start"], zone)
        main = _base(uid, summary, event["description_zh"] or event["description_en"], location, first,
                     first + duration, stamp)
        if event["rrule"]:
            main.add("rrule", _rrule_value(event["rrule"]))
            for session in own:
                if session["status"] == "cancelled":
                    main.add("exdate", _local(session["original_start"], zone))
            # Sessions the series gives but the site does not have (cancelled when planned).
            planned = {session["original_start"] for session in own}
            for generated in expand(event["first_start"], duration, event["rrule"], None):
                if generated.original_start not in planned:
                    main.add("exdate", _local(generated.original_start, zone))
        calendar.add_component(main)
        for session in own:
            if session["status"] == "cancelled":
                continue
            moved = session["local_start"] != session["original_start"] or (
                session["local_end"] - session["local_start"]) != duration
            if event["rrule"] and moved:
                override = _base(uid, summary, "", location, _local(session["local_start"], zone),
                                 _local(session["local_end"], zone), stamp)
                override.add("recurrence-id", _local(session["original_start"], zone))
                calendar.add_component(override)
    return calendar.to_ical()


def _rrule_value(text: str) -> dict[str, Any]:
    from icalendar import vRecur

    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    return vRecur.from_ical(text)


def sessions_feed(name: str, sessions: list[dict[str, Any]], stamp: dt.datetime) -> bytes:
    """One VEVENT per session (a reader's registrations)."""
    calendar = _calendar(name)
    for session in sessions:
        zone = session["time_zone"]
        summary = session["title_zh"] or session["title_en"]
        event = _base(f"{session['uuid']}@library", summary, "", session.get("room_name_zh") or "",
                      _local(session["local_start"], zone), _local(session["local_end"], zone), stamp)
        calendar.add_component(event)
    return calendar.to_ical()


def patron_feed_token(secret: str, patron_uuid: str) -> str:
    """A reader's private feed address: phone calendars cannot sign in, so the URL is the key."""
    return hmac.new(secret.encode(), f"feed:{patron_uuid}".encode(), hashlib.sha256).hexdigest()[:32]

