"""What activities tell families: their messages, and the reminder the day before a session.

The guardian who registered a child is told (else the reader who registered themself), in
that reader's language; every kind here is one a reader may turn off (/account/notices).
Each notice's key names the registration (and, for a move or a reminder, the new time or
the day), so a notice is queued once however often its cause is seen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from library.activities.tables import Occurrence
from library.db import read_transaction
from library.i18n import N_, current_language, format_date, translations
from library.notices import messages, outbox
from library.notices.messages import Localized, Message
from library.settings import Settings

CONFIRMED = Message(
    "registration_confirmed", N_("Registered: {title}"),
    N_("Dear {name},\n\n{child} has a seat at \"{title}\" on {day} at {time} ({place}).\n\n{library}"),
    choosable=True, label=N_("Registration confirmed"))
WAITLISTED = Message(
    "registration_waitlisted", N_("On the waitlist: {title}"),
    N_("Dear {name},\n\n\"{title}\" on {day} at {time} is full: {child} is number {position} on the waitlist. "
       "We will tell you when a seat comes free.\n\n{library}"),
    choosable=True, label=N_("Put on the waitlist"))
PROGRAMME = Message(
    "programme_registered", N_("Registered for the programme: {title}"),
    N_("Dear {name},\n\nthe registration for \"{title}\":\n\n{lines}\n\n{library}"),
    choosable=True, label=N_("Registered for a whole programme"))
OFFERED = Message(
    "seat_offered", N_("A seat is offered: {title}"),
    N_("Dear {name},\n\na seat came free at \"{title}\" on {day} at {time}. "
       "Take it in My account before the offer lapses.\n\n{library}"),
    choosable=True, label=N_("A seat offered from the waitlist"))
PROMOTED = Message(
    "seat_confirmed", N_("A seat is free: {title}"),
    N_("Dear {name},\n\na seat came free at \"{title}\" on {day} at {time}: "
       "it is yours now, no need to do anything.\n\n{library}"),
    choosable=True, label=N_("Promoted from the waitlist"))
MOVED = Message(
    "session_moved", N_("Moved: {title}"),
    N_("Dear {name},\n\n\"{title}\", for which {child} is registered, has moved: it is now on {day} at {time} "
       "({place}).\n\n{library}"),
    choosable=True, label=N_("A session moved"))
CANCELLED = Message(
    "session_cancelled", N_("Cancelled: {title}"),
    N_("Dear {name},\n\n\"{title}\" on {day} at {time} is cancelled; {child}'s registration has ended. "
       "We are sorry.\n\n{library}"),
    choosable=True, label=N_("A session cancelled"))
REMINDER = Message(
    "session_reminder", N_("Tomorrow: {title}"),
    N_("Dear {name},\n\na reminder: {child} is registered for \"{title}\" tomorrow, {day}, at {time} "
       "({place}).\n\n{library}"),
    choosable=True, label=N_("A reminder the day before"))
messages.register(CONFIRMED, WAITLISTED, PROGRAMME, OFFERED, PROMOTED, MOVED, CANCELLED, REMINDER)

# What every session query below reads to say where and when.
SESSION_SQL = ("SELECT r.id, r.uuid, r.status, r.patron, r.registered_by, p.name AS child, o.local_start, e.time_zone, "
               "e.title_zh, e.title_en, rm.name_zh AS room_zh, rm.name_en AS room_en, b.name_zh AS branch_zh, "
               "b.name_en AS branch_en FROM registration r JOIN patron p ON p.id = r.patron "
               "JOIN occurrence o ON o.id = r.occurrence JOIN event e ON e.id = o.event "
               "JOIN branch b ON b.id = e.branch LEFT JOIN room rm ON rm.id = o.room ")


def session_params(row: dict[str, Any]) -> dict[str, Any]:
    """The title, day, time and place of a registration's session, for any message here."""
    place = Localized(" ".join(filter(None, (row["branch_zh"], row["room_zh"]))),
                      ", ".join(filter(None, (row["branch_en"] or row["branch_zh"], row["room_en"] or row["room_zh"]))))
    return {"title": Localized(row["title_zh"], row["title_en"]), "day": row["local_start"].date(),
            "time": f"{row['local_start']:%H:%M}", "place": place, "child": row["child"]}


def recipient(row: dict[str, Any]) -> int:
    """The guardian who registered the child, else the reader themself."""
    return row["registered_by"] or row["patron"]


async def queue_for_registrations(message: Message, where: str, args: list[Any], key: str,
                                  now: dt.datetime, **extra: Any) -> int:
    """Queue `message` for each registration `where` selects (in the caller's transaction);
    `key` is formatted with the registration's uuid and its session's local start."""
    queued = 0
    for row in await Occurrence.raw(SESSION_SQL + "WHERE " + where, *args):
        params = {**session_params(row), **extra}
        if await outbox.queue(message, recipient(row), key.format(uuid=row["uuid"], start=row["local_start"]),
                              now, **params):
            queued += 1
    return queued


async def queue_registered(positions: dict[str, int | None], now: dt.datetime) -> None:
    """Tell the family what each new registration got: a seat, or a place in the waitlist
    (`positions`: registration uuid -> waitlist position, None for a seat)."""
    if not positions:
        return
    marks = ", ".join("{}" for _ in positions)
    for row in await Occurrence.raw(SESSION_SQL + f"WHERE r.uuid IN ({marks})", *positions):
        position = positions.get(str(row["uuid"]))
        if position is None:
            await outbox.queue(CONFIRMED, recipient(row), f"registration_confirmed:{row['uuid']}", now,
                               **session_params(row))
        else:
            await outbox.queue(WAITLISTED, recipient(row), f"registration_waitlisted:{row['uuid']}", now,
                               position=position, **session_params(row))


LINE_SEAT = N_("{day} {time}, {child}: a seat")
LINE_WAITLIST = N_("{day} {time}, {child}: on the waitlist, number {position}")
LINE_ALREADY = N_("{day} {time}, {child}: registered before")


def _programme_lines(plan: Any, language: str) -> str:
    """The plan's lines in one language, one per child and session, in time order."""
    catalog = translations(language)
    token = current_language.set(language)
    try:
        names = {child["patron_id"]: child["name"] for child in plan.children}
        text = []
        for session in plan.sessions:
            for child in plan.children:
                line = plan.line(session["uuid"], child["patron_id"])
                if line is None or line.outcome == "refused":
                    continue
                message = {"seat": LINE_SEAT, "waitlist": LINE_WAITLIST}.get(line.outcome, LINE_ALREADY)
                text.append("- " + catalog.gettext(message).format(
                    day=format_date(session["local_start"].date()), time=f"{session['local_start']:%H:%M}",
                    child=names[child["patron_id"]], position=line.position))
        return "\n".join(text)
    finally:
        current_language.reset(token)


async def queue_programme(guardian_id: int, plan: Any, key: str, now: dt.datetime) -> bool:
    """One notice for a whole programme's registration (not one per session), to the guardian."""
    return await outbox.queue(PROGRAMME, guardian_id, key, now, title=Localized(plan.title_zh, plan.title_en),
                              lines=Localized(_programme_lines(plan, "zh_CN"), _programme_lines(plan, "en")))


def reminder_day(session_local_start: dt.datetime, now: dt.datetime, time_zone: str) -> bool:
    """A session is reminded of on the branch's day before it."""
    today = now.astimezone(ZoneInfo(time_zone)).date()
    return session_local_start.date() == today + dt.timedelta(days=1)


async def queue_session_reminders(now: dt.datetime, settings: Settings) -> dict[str, int]:
    """The day before a session, each family with a seat (confirmed or offered) is reminded."""
    async with read_transaction():
        rows = await Occurrence.raw(
            SESSION_SQL + "WHERE o.status = 'scheduled' AND e.status = 'scheduled' AND r.status IN ('confirmed', 'offered') "
            "AND o.starts_at > {} AND o.starts_at < {}", now, now + dt.timedelta(hours=50))
    pending = []
    for row in rows:
        if not reminder_day(row["local_start"], now, row["time_zone"]):
            continue
        pending.append(row)
    if not pending:
        return {REMINDER.kind: 0}
    people = {row["id"]: row for row in await Occurrence.raw(
        "SELECT id, name, email, language FROM patron WHERE id IN ({})".format(
            ", ".join("{}" for _ in pending)), *[recipient(row) for row in pending])}
    batch = []
    for row in pending:
        person = people.get(recipient(row))
        if person is None or not person["email"]:
            continue
        batch.append(outbox.Pending(
            message=REMINDER, key=f"session_reminder:{row['uuid']}:{row['local_start']:%Y-%m-%d}",
            patron_id=person["id"], email=person["email"], name=person["name"],
            language=person["language"] or "zh_CN", params=session_params(row)))
    return {REMINDER.kind: 0, **await outbox.queue_many(batch, now)}
