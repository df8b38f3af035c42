"""The outbox: queueing a notice in the reader's language, and sending what is due over SMTP.

Queueing is idempotent (each notice has a key, unique in the table), so a scan may run as
often as it likes. A notice is written in the same transaction as its cause and composed
then, so what is sent is what was true then; a reader without an e-mail address gets no
notice (the desk and "My account" still show everything), nor one of a kind they turned off.

Sending is at-least-once, never "at most": a worker first *claims* a batch with one
conditional UPDATE (it moves `send_after` a lease into the future, so another worker — a
second server process, or `library notices send` from cron — skips those rows), then sends
each message and marks it sent in its own short transaction. A failure leaves the notice
queued with `attempts`, `last_error` and a later `send_after` (exponential back-off). The one
edge: if the process dies after the mail server accepted a message and before `sent_at` was
written, the claim lapses and the message goes out again — with the same Message-ID, which
lets mail software recognise it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from library.accounts.tables import Patron
from library.db import run_in_write_transaction
from library.notices.messages import Message, compose
from library.notices.tables import Notice, NoticeChoice
from library.settings import Settings

FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_RETRY = dt.timedelta(hours=6)
# How long a claimed batch is reserved for the worker that claimed it.
CLAIM_LEASE = dt.timedelta(minutes=10)
SMTP_TIMEOUT_SECONDS = 20
CHUNK = 500


def retry_delay(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 1 min, 2, 4, ... at most 6 h."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20), LONGEST_RETRY)


# --- queueing ------------------------------------------------------------------------------


@dataclass
class Pending:
    """One notice to queue for a reader whose address and language are known already."""

    message: Message
    key: str
    patron_id: int
    email: str
    name: str
    language: str
    params: dict[str, Any]


async def turned_off(patron_ids: list[int], kinds: list[str]) -> set[tuple[int, str]]:
    """(reader, kind) pairs a reader chose not to receive."""
    if not patron_ids or not kinds:
        return set()
    found: set[tuple[int, str]] = set()
    ids = sorted(set(patron_ids))
    for start in range(0, len(ids), CHUNK):
        rows = await NoticeChoice.select(NoticeChoice.patron, NoticeChoice.kind).where(
            NoticeChoice.patron.is_in(ids[start:start + CHUNK]) & NoticeChoice.kind.is_in(sorted(set(kinds)))
            & (NoticeChoice.receive == False))  # noqa: E712 - Piccolo's column comparison
        found.update((row["patron"], row["kind"]) for row in rows)
    return found


async def queue(message: Message, patron_id: int, key: str, now: dt.datetime, **params: Any) -> bool:
    """Queue one notice, once per `key`; False when the reader has no address, turned this kind
    off, or it was queued before. Runs in the caller's transaction."""
    patron = await Patron.select(Patron.name, Patron.email, Patron.language).where(Patron.id == patron_id).first()
    if patron is None or not patron["email"]:
        return False
    if message.choosable and await turned_off([patron_id], [message.kind]):
        return False
    language = patron["language"] or "zh_CN"
    subject, body = compose(message, language, name=patron["name"], **params)
    inserted = await Notice.insert(Notice(
        uuid=str(uuid_module.uuid4()), key=key[:200], patron=patron_id, kind=message.kind, language=language,
        to_address=patron["email"], subject=subject[:300], body=body, created_at=now, send_after=now,
    )).on_conflict(target=Notice.key, action="DO NOTHING").returning(Notice.id)
    return bool(inserted)


async def queue_many(pending: list[Pending], now: dt.datetime) -> dict[str, int]:
    """Queue many notices (a reminder scan): one read of which keys are queued already, then
    multi-row inserts of the new ones, each chunk in its own write transaction. Returns how
    many of each kind were new."""
    counts: dict[str, int] = {}
    if not pending:
        return counts
    off = await turned_off([p.patron_id for p in pending if p.message.choosable],
                           [p.message.kind for p in pending if p.message.choosable])
    pending = [p for p in pending if (p.patron_id, p.message.kind) not in off]
    known: set[str] = set()
    for start in range(0, len(pending), CHUNK):
        keys = [p.key[:200] for p in pending[start:start + CHUNK]]
        known.update(row["key"] for row in await Notice.select(Notice.key).where(Notice.key.is_in(keys)))
    new = [p for p in pending if p.key[:200] not in known]
    for start in range(0, len(new), CHUNK):
        rows = []
        for p in new[start:start + CHUNK]:
            subject, body = compose(p.message, p.language, name=p.name, **p.params)
            rows.append(Notice(uuid=str(uuid_module.uuid4()), key=p.key[:200], patron=p.patron_id,
                               kind=p.message.kind, language=p.language, to_address=p.email, subject=subject[:300],
                               body=body, created_at=now, send_after=now))

        async def insert(rows: list[Notice] = rows) -> list[dict[str, Any]]:
            # A key queued meanwhile by another worker is skipped, not an error.
            return await Notice.insert(*rows).on_conflict(target=Notice.key, action="DO NOTHING").returning(
                Notice.kind)

        for row in await run_in_write_transaction(insert):
            counts[row["kind"]] = counts.get(row["kind"], 0) + 1
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
