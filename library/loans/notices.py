"""The notice outbox: messages to readers, written in the same transaction as their cause.

A notice is composed when it is queued, in the reader's language, so what is sent is
what was true then; sending (library.loans.outbox) only delivers. A reader without an
e-mail address gets no notice — the desk and "My account" still show everything.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from typing import Any

from library.accounts.tables import Patron
from library.i18n import N_, current_language, format_date, translations
from library.loans.tables import Notice

SUBJECTS = {
    "hold_ready": N_("Your hold is ready: {title}"),
    "hold_expiring": N_("Last day to collect: {title}"),
    "due_soon": N_("Due soon: {title}"),
    "overdue": N_("Overdue: {title}"),
    "seat_confirmed": N_("A seat is free: {title}"),
    "seat_offered": N_("A seat is offered: {title}"),
}
BODIES = {
    "hold_ready": N_("Dear {name},\n\n\"{title}\" is waiting for you on the hold shelf at {branch}. "
                     "Please collect it by {day}.\n\n{library}"),
    "hold_expiring": N_("Dear {name},\n\n\"{title}\" waits for you on the hold shelf at {branch} until {day}. "
                        "After that day it passes to the next reader.\n\n{library}"),
    "due_soon": N_("Dear {name},\n\n\"{title}\" (copy {barcode}) is due back on {day}. "
                   "You can renew it in My account or return it at any branch.\n\n{library}"),
    "overdue": N_("Dear {name},\n\n\"{title}\" (copy {barcode}) was due back on {day}. "
                  "Please return it at any branch, or renew it in My account if you can.\n\n{library}"),
    "seat_confirmed": N_("Dear {name},\n\na seat came free at \"{title}\" on {day} at {time}: "
                         "it is yours now, no need to do anything.\n\n{library}"),
    "seat_offered": N_("Dear {name},\n\na seat came free at \"{title}\" on {day} at {time}. "
                       "Take it in My account before the offer lapses.\n\n{library}"),
}
SIGNATURE = N_("Jiaxing Library")


def compose(kind: str, language: str, **params: Any) -> tuple[str, str]:
    """Subject and body in the reader's language (dates formatted for it too)."""
    token = current_language.set(language)
    try:
        catalog = translations(language)
        values = {key: format_date(value) if isinstance(value, dt.date) else value for key, value in params.items()}
        values.setdefault("library", catalog.gettext(SIGNATURE))
        return catalog.gettext(SUBJECTS[kind]).format(**values), catalog.gettext(BODIES[kind]).format(**values)
    finally:
        current_language.reset(token)


async def queue(kind: str, patron_id: int, key: str, now: dt.datetime, **params: Any) -> bool:
    """Queue one notice, once per `key`; False when the reader has no address or it was queued before."""
    patron = await Patron.select(Patron.name, Patron.email, Patron.language).where(Patron.id == patron_id).first()
    if patron is None or not patron["email"]:
        return False
    language = patron["language"] or "zh_CN"
    subject, body = compose(kind, language, name=patron["name"], **params)
    inserted = await Notice.insert(Notice(
        uuid=str(uuid_module.uuid4()), key=key[:200], patron=patron_id, kind=kind, language=language,
        to_address=patron["email"], subject=subject[:300], body=body, created_at=now, send_after=now,
    )).on_conflict(target=Notice.key, action="DO NOTHING").returning(Notice.id)
    return bool(inserted)


async def queue_hold_ready(patron_id: int, hold_uuid: Any, title: str, branch: dict[str, Any],
                           expires_on: dt.date, now: dt.datetime) -> bool:
    language = (await Patron.select(Patron.language).where(Patron.id == patron_id).first() or {}).get("language")
    branch_name = branch["name_en"] if language == "en" else branch["name_zh"]
    return await queue("hold_ready", patron_id, f"hold_ready:{hold_uuid}", now, title=title, branch=branch_name,
                       day=expires_on)
