"""What circulation tells readers: its messages, queued through library.notices' outbox.

A notice is composed when it is queued, in the reader's language; sending (library.notices)
only delivers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from library.accounts.tables import Patron
from library.i18n import N_
from library.notices import messages, outbox

HOLD_READY = messages.Message(
    "hold_ready", N_("Your hold is ready: {title}"),
    N_("Dear {name},\n\n\"{title}\" is waiting for you on the hold shelf at {branch}. "
       "Please collect it by {day}.\n\n{library}"))
HOLD_EXPIRING = messages.Message(
    "hold_expiring", N_("Last day to collect: {title}"),
    N_("Dear {name},\n\n\"{title}\" waits for you on the hold shelf at {branch} until {day}. "
       "After that day it passes to the next reader.\n\n{library}"))
DUE_SOON = messages.Message(
    "due_soon", N_("Due soon: {title}"),
    N_("Dear {name},\n\n\"{title}\" (copy {barcode}) is due back on {day}. "
       "You can renew it in My account or return it at any branch.\n\n{library}"))
OVERDUE = messages.Message(
    "overdue", N_("Overdue: {title}"),
    N_("Dear {name},\n\n\"{title}\" (copy {barcode}) was due back on {day}. "
       "Please return it at any branch, or renew it in My account if you can.\n\n{library}"))
LOAN_MESSAGES = {message.kind: message for message in (HOLD_READY, HOLD_EXPIRING, DUE_SOON, OVERDUE)}
messages.register(*LOAN_MESSAGES.values())


async def queue_hold_ready(patron_id: int, hold_uuid: Any, title: str, branch: dict[str, Any],
                           expires_on: dt.date, now: dt.datetime) -> bool:
    language = (await Patron.select(Patron.language).where(Patron.id == patron_id).first() or {}).get("language")
    branch_name = branch["name_en"] if language == "en" else branch["name_zh"]
    return await outbox.queue(HOLD_READY, patron_id, f"hold_ready:{hold_uuid}", now, title=title,
                              branch=branch_name, day=expires_on)
