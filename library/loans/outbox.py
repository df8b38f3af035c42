"""Circulation's part of the notice round (library.notices.worker): the hold shelf emptied of
holds not collected, and due-soon, overdue and last-day-to-collect reminders queued.

Queueing is idempotent (each reminder's key names the loan and its due date, or the hold),
so the scan may run as often as it likes.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from library.db import read_transaction
from library.loans.notices import DUE_SOON, HOLD_EXPIRING, LOAN_MESSAGES
from library.loans.service import expire_hold_shelf
from library.loans.tables import Hold, Loan
from library.notices.outbox import Pending, queue_many
from library.notices.worker import Step
from library.settings import Settings

# --- pure decisions ----------------------------------------------------------------------


def loan_reminder(due_on: dt.date, today: dt.date, due_soon_days: int) -> str | None:
    """Which reminder an open loan calls for today: overdue, due soon, or none yet."""
    if due_on < today:
        return "overdue"
    if (due_on - today).days <= due_soon_days:
        return "due_soon"
    return None


def hold_reminder(expires_on: dt.date | None, ready_on: dt.date | None, today: dt.date) -> bool:
    """A ready hold's last day is today or tomorrow; not when it became ready today (the
    "ready" notice, which names the last day, went out just now)."""
    if expires_on is None or not today <= expires_on <= today + dt.timedelta(days=1):
        return False
    return ready_on is None or ready_on < today


def _local_day(moment: dt.datetime | None, time_zone: str) -> dt.date | None:
    return moment.astimezone(ZoneInfo(time_zone)).date() if moment else None


# --- queueing reminders --------------------------------------------------------------------


async def queue_reminders(now: dt.datetime, due_soon_days: int) -> dict[str, int]:
    """Queue due-soon, overdue and last-day-to-collect notices; returns how many were new.

    One read of the candidate loans and holds (readers with an address only), then the
    outbox's batch queueing.
    """
    # The end of the furthest local "today + N" anywhere on Earth: a superset, refined below.
    horizon = now + dt.timedelta(days=due_soon_days + 2)
    async with read_transaction():
        loans = await Loan.select(
            Loan.uuid, Loan.due_on, Loan.patron, Loan.patron.email, Loan.patron.name, Loan.patron.language,
            Loan.branch.time_zone, Loan.item.barcode, Loan.item.record.title,
        ).where(Loan.returned_at.is_null() & Loan.patron.is_not_null() & (Loan.patron.email != "")
                & (Loan.due_at <= horizon))
        holds = await Hold.select(
            Hold.uuid, Hold.expires_on, Hold.ready_at, Hold.patron, Hold.patron.email, Hold.patron.name,
            Hold.patron.language, Hold.pickup_branch.time_zone, Hold.pickup_branch.name_zh,
            Hold.pickup_branch.name_en, Hold.record.title,
        ).where((Hold.status == "ready") & (Hold.patron.email != "")
                & (Hold.expires_on <= (now + dt.timedelta(days=2)).date()))

    pending: list[Pending] = []
    for loan in loans:
        today = _local_day(now, loan["branch.time_zone"])
        kind = loan_reminder(loan["due_on"], today, due_soon_days)
        if kind is None:
            continue
        pending.append(Pending(
            message=LOAN_MESSAGES[kind], key=f"{kind}:{loan['uuid']}:{loan['due_on'].isoformat()}",
            patron_id=loan["patron"], email=loan["patron.email"], name=loan["patron.name"],
            language=loan["patron.language"] or "zh_CN",
            params={"title": loan["item.record.title"], "barcode": loan["item.barcode"], "day": loan["due_on"]},
        ))
    for hold in holds:
        time_zone = hold["pickup_branch.time_zone"]
        if not hold_reminder(hold["expires_on"], _local_day(hold["ready_at"], time_zone), _local_day(now, time_zone)):
            continue
        language = hold["patron.language"] or "zh_CN"
        branch = hold["pickup_branch.name_en"] if language == "en" else hold["pickup_branch.name_zh"]
        pending.append(Pending(
            message=HOLD_EXPIRING, key=f"hold_expiring:{hold['uuid']}", patron_id=hold["patron"],
            email=hold["patron.email"], name=hold["patron.name"], language=language,
            params={"title": hold["record.title"], "branch": branch, "day": hold["expires_on"]},
        ))
    return {DUE_SOON.kind: 0, "overdue": 0, HOLD_EXPIRING.kind: 0, **await queue_many(pending, now)}


async def _hold_shelves_of_this_node(settings: Settings) -> tuple[set[str] | None, set[str]]:
    """(only these branches, or None for all; never these): with branch sync, the node that runs
    a branch empties its hold shelf — a syncing branch node its own, the central node the rest."""
    if settings.node_role == "branch" and settings.central_url:
        return {settings.branch_code or ""}, set()
    if settings.node_role == "central":
        # Raw: the sync app's tables are above circulation, which names none of them.
        rows = await Loan.raw("SELECT DISTINCT b.code FROM sync_credential c JOIN branch b ON b.id = c.branch "
                              "WHERE c.revoked_at IS NULL")
        return None, {row["code"] for row in rows}
    return None, set()


# --- the steps of the notice round ---------------------------------------------------------


async def _expire_hold_shelf(now: dt.datetime, settings: Settings) -> dict[str, int]:
    only, leave = await _hold_shelves_of_this_node(settings)
    return {"holds_expired": await expire_hold_shelf(now, only, leave) or 0}


async def _queue_reminders(now: dt.datetime, settings: Settings) -> dict[str, int]:
    # A branch node that syncs leaves loan reminders to the central node, which has every
    # loan of the network after sync: one reminder per loan, not one per node.
    if settings.node_role == "branch" and settings.central_url:
        return {}
    return await queue_reminders(now, settings.due_soon_days)


# Forgetting old loans is the retention job's (library.privacy.retention), not the round's.
NOTICE_STEPS = (Step("expire hold shelf", _expire_hold_shelf), Step("queue reminders", _queue_reminders))
