"""The notice worker: reminders into the outbox, and the outbox out over SMTP.

Queueing is idempotent (each notice has a key, unique in the table), so the reminder scan
may run as often as it likes. Sending is at-least-once, never "at most": a worker first
*claims* a batch with one conditional UPDATE (it moves `send_after` a lease into the
future, so another worker — a second server process, or `library notices send` from cron
— skips those rows), then sends each message and marks it sent in its own short
transaction. A failure leaves the notice queued with `attempts`, `last_error` and a later
`send_after` (exponential back-off). The one edge: if the process dies after the mail
server accepted a message and before `sent_at` was written, the claim lapses and the
message goes out again — with the same Message-ID, which lets mail software recognise it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import smtplib
import ssl
import time
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from library.branches.leases import claim, lease_seconds, this_process
from library.clock import now_utc
from library.db import read_transaction, run_in_write_transaction
from library.loans.notices import compose
from library.loans.tables import Hold, Loan, Notice
from library.settings import Settings

log = logging.getLogger(__name__)

FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_RETRY = dt.timedelta(hours=6)
# How long a claimed batch is reserved for the worker that claimed it.
CLAIM_LEASE = dt.timedelta(minutes=10)
SMTP_TIMEOUT_SECONDS = 20
# The lease of the server loop's round (library.branches.leases).
NOTICE_LEASE = "notices"
CHUNK = 500


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


def retry_delay(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 1 min, 2, 4, ... at most 6 h."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20), LONGEST_RETRY)


def _local_day(moment: dt.datetime | None, time_zone: str) -> dt.date | None:
    return moment.astimezone(ZoneInfo(time_zone)).date() if moment else None


# --- queueing reminders --------------------------------------------------------------------


@dataclass
class _Pending:
    key: str
    kind: str
    patron_id: int
    email: str
    name: str
    language: str
    params: dict[str, Any]


async def queue_reminders(now: dt.datetime, due_soon_days: int) -> dict[str, int]:
    """Queue due-soon, overdue and last-day-to-collect notices; returns how many were new.

    One read of the candidate loans and holds (readers with an address only), one read of
    which keys are queued already, then multi-row inserts of the new notices.
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

    pending: list[_Pending] = []
    for loan in loans:
        today = _local_day(now, loan["branch.time_zone"])
        kind = loan_reminder(loan["due_on"], today, due_soon_days)
        if kind is None:
            continue
        pending.append(_Pending(
            key=f"{kind}:{loan['uuid']}:{loan['due_on'].isoformat()}", kind=kind, patron_id=loan["patron"],
            email=loan["patron.email"], name=loan["patron.name"], language=loan["patron.language"] or "zh_CN",
            params={"title": loan["item.record.title"], "barcode": loan["item.barcode"], "day": loan["due_on"]},
        ))
    for hold in holds:
        time_zone = hold["pickup_branch.time_zone"]
        if not hold_reminder(hold["expires_on"], _local_day(hold["ready_at"], time_zone), _local_day(now, time_zone)):
            continue
        language = hold["patron.language"] or "zh_CN"
        branch = hold["pickup_branch.name_en"] if language == "en" else hold["pickup_branch.name_zh"]
        pending.append(_Pending(
            key=f"hold_expiring:{hold['uuid']}", kind="hold_expiring", patron_id=hold["patron"],
            email=hold["patron.email"], name=hold["patron.name"], language=language,
            params={"title": hold["record.title"], "branch": branch, "day": hold["expires_on"]},
        ))

    counts = {"due_soon": 0, "overdue": 0, "hold_expiring": 0}
    if not pending:
        return counts
    known: set[str] = set()
    for start in range(0, len(pending), CHUNK):
        keys = [p.key for p in pending[start:start + CHUNK]]
        known.update(row["key"] for row in await Notice.select(Notice.key).where(Notice.key.is_in(keys)))
    new = [p for p in pending if p.key not in known]
    for start in range(0, len(new), CHUNK):
        chunk = new[start:start + CHUNK]
        rows = []
        for p in chunk:
            subject, body = compose(p.kind, p.language, name=p.name, **p.params)
            rows.append(Notice(uuid=str(uuid_module.uuid4()), key=p.key[:200], patron=p.patron_id, kind=p.kind,
                               language=p.language, to_address=p.email, subject=subject[:300], body=body,
                               created_at=now, send_after=now))

        async def insert(rows: list[Notice] = rows) -> list[dict[str, Any]]:
            # A key queued meanwhile by another worker is skipped, not an error.
            return await Notice.insert(*rows).on_conflict(target=Notice.key, action="DO NOTHING").returning(
                Notice.kind)

        for row in await run_in_write_transaction(insert):
            counts[row["kind"]] += 1
    return counts


# --- sending -------------------------------------------------------------------------------


@dataclass
class SendReport:
    disabled: bool = False
    sent: int = 0
    failed: int = 0
    # Claimed but left for the next round (the batch ran past half its lease).
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


def build_message(notice: dict[str, Any], mail_from: str, now: dt.datetime) -> EmailMessage:
    """One UTF-8 message. Its Message-ID comes from the notice, so a resend keeps it."""
    message = EmailMessage()
    message["Subject"] = notice["subject"]
    message["From"] = mail_from
    message["To"] = notice["to_address"]
    message["Date"] = format_datetime(now)
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{notice['uuid']}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(notice["body"], charset="utf-8")
    # After set_content, which clears every Content-* header set before it.
    message["Content-Language"] = (notice.get("language") or "zh_CN").replace("_", "-")
    return message


def _connect(settings: Settings) -> smtplib.SMTP:
    client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    try:
        client.ehlo()
        if settings.smtp_starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
    except BaseException:
        client.close()
        raise
    return client


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


async def _claim(now: dt.datetime, batch: int) -> list[dict[str, Any]]:
    """Reserve up to `batch` due notices for this worker (a conditional UPDATE: two workers
    never hold the same notice)."""
    async def work() -> list[dict[str, Any]] | None:
        due = await Notice.select(Notice.id).where(Notice.sent_at.is_null() & (Notice.send_after <= now)).order_by(
            Notice.send_after, Notice.id).limit(batch)
        if not due:
            return None
        return await Notice.update({Notice.send_after: now + CLAIM_LEASE}).where(
            Notice.id.is_in([row["id"] for row in due]) & Notice.sent_at.is_null() & (Notice.send_after <= now)
        ).returning(Notice.id, Notice.uuid, Notice.to_address, Notice.subject, Notice.body, Notice.language,
                    Notice.attempts)

    for _ in range(3):  # another worker took the rows just read (PostgreSQL): read again
        claimed = await run_in_write_transaction(work)
        if claimed is None:
            return []
        if claimed:
            return sorted(claimed, key=lambda row: row["id"])
    return []


async def _mark_sent(notice: dict[str, Any], now: dt.datetime) -> None:
    async def work() -> None:
        await Notice.update({Notice.sent_at: now, Notice.attempts: notice["attempts"] + 1,
                             Notice.last_error: ""}).where(Notice.id == notice["id"])

    await run_in_write_transaction(work)


async def _mark_failed(notices: list[dict[str, Any]], error: BaseException, now: dt.datetime) -> None:
    async def work() -> None:
        for notice in notices:
            attempts = notice["attempts"] + 1
            await Notice.update({Notice.attempts: attempts, Notice.last_error: _describe(error),
                                 Notice.send_after: now + retry_delay(attempts)}).where(
                (Notice.id == notice["id"]) & Notice.sent_at.is_null())

    if notices:
        await run_in_write_transaction(work)


async def _release(notices: list[dict[str, Any]], now: dt.datetime) -> None:
    async def work() -> None:
        await Notice.update({Notice.send_after: now}).where(
            Notice.id.is_in([notice["id"] for notice in notices]) & Notice.sent_at.is_null())

    if notices:
        await run_in_write_transaction(work)


# Failures of one message; anything else from the connection ends the round.
_MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                   smtplib.SMTPNotSupportedError, UnicodeError, ValueError)


async def send_due(now: dt.datetime, settings: Settings, batch: int = 50) -> SendReport:
    """Send the notices that are due; each success is marked sent, each failure retried later."""
    if not settings.smtp_host:
        return SendReport(disabled=True)
    claimed = await _claim(now, batch)
    report = SendReport()
    if not claimed:
        return report
    try:
        client = await asyncio.to_thread(_connect, settings)
    except (OSError, smtplib.SMTPException, UnicodeError) as error:
        await _mark_failed(claimed, error, now)
        report.failed = len(claimed)
        report.errors.append(_describe(error))
        return report
    started = time.monotonic()
    try:
        for index, notice in enumerate(claimed):
            if time.monotonic() - started > CLAIM_LEASE.total_seconds() / 2:
                # A slow server: give the rest back rather than outlive the claim.
                await _release(claimed[index:], now)
                report.deferred = len(claimed) - index
                break
            try:
                message = build_message(notice, settings.mail_from, now)
                await asyncio.to_thread(client.send_message, message)
            except _MESSAGE_ERRORS as error:
                await _mark_failed([notice], error, now)
                report.failed += 1
                report.errors.append(_describe(error))
                continue
            except (OSError, smtplib.SMTPException) as error:
                # The connection is gone: this notice and the rest wait for the next round.
                await _mark_failed(claimed[index:], error, now)
                report.failed += len(claimed) - index
                report.errors.append(_describe(error))
                break
            await _mark_sent(notice, now)
            report.sent += 1
    finally:
        await asyncio.to_thread(_quit, client)
    return report


# --- the cycle -----------------------------------------------------------------------------


@dataclass
class CycleReport:
    queued: dict[str, int] = field(default_factory=dict)
    holds_expired: int = 0
    sending: SendReport = field(default_factory=SendReport)
    # Steps that failed, with the error; the other steps still ran.
    failures: list[str] = field(default_factory=list)


async def run_cycle(now: dt.datetime, settings: Settings) -> CycleReport:
    """One round: expire the hold shelf, queue reminders, send (lapsed seat offers are the
    activities' own loop, forgetting old loans the retention job's, library.privacy.retention).

    A step that fails is logged and reported; the next steps still run (a broken reminder
    scan must not keep the hold-ready notices from going out).
    """
    from library.loans.service import expire_hold_shelf

    report = CycleReport()

    async def step(name: str, action: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await action()
        except Exception as error:  # noqa: BLE001 - one failed step does not stop the round
            log.exception("notice cycle: %s failed", name)
            report.failures.append(f"{name}: {_describe(error)}")
            return None

    only, leave = await _hold_shelves_of_this_node(settings)
    report.holds_expired = await step("expire hold shelf", lambda: expire_hold_shelf(now, only, leave)) or 0
    # A branch node that syncs leaves loan reminders to the central node, which has every
    # loan of the network after sync: one reminder per loan, not one per node.
    if not (settings.node_role == "branch" and settings.central_url):
        report.queued = await step("queue reminders", lambda: queue_reminders(now, settings.due_soon_days)) or {}
    sending = await step("send notices", lambda: send_due(now, settings))
    if sending is not None:
        report.sending = sending
    return report


async def _hold_shelves_of_this_node(settings: Settings) -> tuple[set[str] | None, set[str]]:
    """(only these branches, or None for all; never these): with branch sync, the node that runs
    a branch empties its hold shelf — a syncing branch node its own, the central node the rest."""
    if settings.node_role == "branch" and settings.central_url:
        return {settings.branch_code or ""}, set()
    if settings.node_role == "central":
        rows = await Notice.raw("SELECT DISTINCT b.code FROM sync_credential c JOIN branch b ON b.id = c.branch "
                                "WHERE c.revoked_at IS NULL")
        return None, {row["code"] for row in rows}
    return None, set()


async def notice_loop(settings: Settings, stop: asyncio.Event, first_delay: float = 5.0) -> None:
    """Every LIBRARY_NOTICE_INTERVAL_SECONDS until `stop` is set; never raises.

    Every worker of every instance on the database runs this loop; a round runs only in the
    one that claims the interval's lease: the scans and the sending once per interval, not
    once per worker.
    """
    interval = settings.notice_interval_seconds
    if interval <= 0:
        return
    delay = min(first_delay, interval)
    holder = this_process()
    clock = asyncio.get_running_loop()
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return
        except TimeoutError:
            pass
        started = clock.time()
        try:
            now = now_utc()
            # Else another worker has this interval's round.
            if await claim(NOTICE_LEASE, holder, lease_seconds(interval), now):
                report = await run_cycle(now, settings)
                if report.sending.sent or report.sending.failed or report.failures:
                    log.info("notices: sent %d, failed %d, steps failed %d", report.sending.sent,
                             report.sending.failed, len(report.failures))
        except Exception:  # noqa: BLE001 - the loop outlives any one round
            log.exception("notice cycle failed")
        # The timer keeps the interval's beat: a round's own time is not added to it (else the
        # winner's next try comes later than the others'), and a round that overruns skips the
        # beats it covered.
        delay = interval - (clock.time() - started) % interval


def start_notice_loop(settings: Settings) -> Callable[[], Awaitable[None]]:
    """Start the loop in the running event loop; returns the coroutine function that stops it
    (a round in progress gets a few seconds to finish, then is cancelled; a notice it had
    claimed is sent by a later round once the claim lapses)."""
    if settings.notice_interval_seconds <= 0:
        async def nothing_to_stop() -> None:
            return None

        return nothing_to_stop
    stop = asyncio.Event()
    task = asyncio.create_task(notice_loop(settings, stop), name="library-notices")

    async def stop_loop() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            log.warning("the notice round in progress was cancelled at shutdown")
        except Exception:  # noqa: BLE001 - shutting down; the loop logs its own errors
            log.exception("notice loop ended with an error")

    return stop_loop
