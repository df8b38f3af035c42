"""What a family sees of its activities on "My account": the sessions the reader and each
linked child are registered for (to come and past, with attendance), and the reading
challenges running now. Reads only; the writes (register, cancel, accept) are in service.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from library.accounts.principal import Principal
from library.activities.tables import Programme, Registration
from library.db import read_transaction
from library.errors import NotPermitted

# A seat held (or a place in the queue) for a session still to come.
HELD = ("confirmed", "offered", "waitlisted")
# What a past registration says about the day: in the room or not. A seat never checked in
# (still "confirmed" or "offered" after the session) was a no-show.
SEATED = ("attended", "confirmed", "offered", "no_show")
HISTORY_LIMIT = 50

_r = Registration
_COLUMNS = (
    _r.uuid, _r.status, _r.arrival, _r.offer_expires_at, _r.occurrence.as_alias("occurrence_id"),
    _r.patron.as_alias("patron_id"), _r.patron.name.as_alias("name"), _r.patron.card_number.as_alias("card_number"),
    _r.occurrence.uuid.as_alias("session_uuid"), _r.occurrence.local_start.as_alias("local_start"),
    _r.occurrence.local_end.as_alias("local_end"), _r.occurrence.status.as_alias("session_status"),
    _r.occurrence.moved.as_alias("moved"), _r.occurrence.event.title_zh.as_alias("title_zh"),
    _r.occurrence.event.title_en.as_alias("title_en"), _r.occurrence.event.time_zone.as_alias("time_zone"),
    _r.occurrence.event.branch.name_zh.as_alias("branch_name_zh"),
    _r.occurrence.event.branch.name_en.as_alias("branch_name_en"),
    _r.occurrence.room.name_zh.as_alias("room_name_zh"), _r.occurrence.room.name_en.as_alias("room_name_en"),
)


def attendance(status: str) -> str:
    """A past registration with a seat, as the family's history reads it."""
    return "attended" if status == "attended" else "no_show"


def _view(row: dict[str, Any], me: int, now: dt.datetime) -> dict[str, Any]:
    view = {**row, "uuid": str(row["uuid"]), "session_uuid": str(row["session_uuid"]), "is_me": row["patron_id"] == me,
            "position": None, "offer_until": None, "offer_open": False}
    if row["status"] == "offered" and row["offer_expires_at"] is not None:
        # The deadline on the branch's wall clock, like the session's own time.
        view["offer_until"] = row["offer_expires_at"].astimezone(ZoneInfo(row["time_zone"])).replace(tzinfo=None)
        view["offer_open"] = row["offer_expires_at"] > now
    elif row["status"] == "offered":
        view["offer_open"] = True
    return view


async def family_registrations(principal: Principal, now: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """The registrations of a reader and of every child linked to them.

    `upcoming`: sessions not yet over where a seat or a waitlist place is held, soonest first,
    plus those the library cancelled (a family must hear of that, not just see it vanish);
    `past`: sessions over where a seat was held, latest first, each `attended` or `no_show`.
    """
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    family = [principal.id, *sorted(principal.children_ids)]
    async with read_transaction():
        upcoming = await Registration.select(*_COLUMNS).where(
            Registration.patron.is_in(family) & (Registration.occurrence.ends_at > now)
            & (Registration.occurrence.event.status == "scheduled")
            & (Registration.status.is_in(list(HELD))
               | ((Registration.status == "cancelled") & (Registration.occurrence.status == "cancelled")))
        ).order_by(Registration.occurrence.starts_at, Registration.arrival)
        past = await Registration.select(*_COLUMNS).where(
            Registration.patron.is_in(family) & (Registration.occurrence.ends_at <= now)
            & (Registration.occurrence.status == "scheduled") & (Registration.occurrence.event.status == "scheduled")
            & Registration.status.is_in(list(SEATED))
        ).order_by(Registration.occurrence.starts_at, ascending=False).limit(HISTORY_LIMIT)
        waiting = [row["occurrence_id"] for row in upcoming if row["status"] == "waitlisted"]
        queue = await Registration.select(Registration.occurrence, Registration.arrival).where(
            Registration.occurrence.is_in(waiting) & (Registration.status == "waitlisted")) if waiting else []
    upcoming_views = []
    for row in upcoming:
        view = _view(row, principal.id, now)
        if row["status"] == "waitlisted":
            # Arrival numbers the queue: those before us still waiting are ahead of us.
            view["position"] = 1 + sum(1 for other in queue if other["occurrence"] == row["occurrence_id"]
                                       and other["arrival"] < row["arrival"])
        if row["status"] == "cancelled":
            view["status"] = "session_cancelled"
        upcoming_views.append(view)
    return {"upcoming": upcoming_views,
            "past": [{**_view(row, principal.id, now), "attendance": attendance(row["status"])} for row in past]}


def challengers(household: dict[str, Any]) -> list[dict[str, Any]]:
    """Whose reading challenge the account page links to: a guardian follows each child's; a
    child signed in on their own card, their own; an adult without children, nobody's."""
    if household["children"]:
        return household["children"]
    return [household["me"]] if household["me"]["category"] == "child" else []


async def running_challenges(today: dt.date) -> list[dict[str, Any]]:
    """Reading challenges under way today (one card works at every branch, so all of them)."""
    rows = await Programme.select(Programme.uuid, Programme.title_zh, Programme.title_en, Programme.starts_on,
                                  Programme.ends_on).where(
        (Programme.starts_on <= today) & (Programme.ends_on >= today)).order_by(Programme.starts_on)
    return [{**row, "uuid": str(row["uuid"])} for row in rows]
