"""Forgetting that holds: what is kept of readers, for how long and why, enforced by one job.

`RETENTION` is the table (docs/privacy.md shows the same, and a test checks they agree);
`forget` is the job: the running server does it every LIBRARY_NOTICE_INTERVAL_SECONDS (one
worker per interval, `library.branches.leases`), `library privacy forget` once from cron.
After it, nothing in the database joins a reader to a title beyond what the table keeps.

`history days` is LIBRARY_LOAN_HISTORY_DAYS (30), `activity days` LIBRARY_ACTIVITY_HISTORY_DAYS
(400: a year's annual return, 年报, and its corrections). A reader (or a guardian, for a
child) who keeps a reading history keeps their returned loans and reading-challenge logs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from library.accounts.tables import PinChange
from library.activities.tables import Occurrence, Programme, ProgrammeParticipant, ReadingLog, Registration
from library.branches.leases import start_leased_loop
from library.branches.tables import AuditEntry
from library.clock import now_utc
from library.db import run_in_write_transaction
from library.i18n import N_
from library.loans.tables import Hold, Loan, ReadingHistoryChoice
from library.notices.tables import Notice
from library.settings import Settings
from library.sync.tables import SyncApplied, SyncConflict, SyncOutbox

log = logging.getLogger("library.privacy")
LEASE = "privacy.retention"


@dataclass(frozen=True)
class Kept:
    what: str
    kept: str
    then: str
    why: str


RETENTION = (
    Kept(N_("open loans, active holds, future registrations"), N_("while they are open"), N_("as below"),
         N_("the library lends, keeps and seats for that reader")),
    Kept(N_("a returned loan's reader"), N_("history days after the return (for ever if the reader keeps a history)"),
         N_("the reader is unlinked; copy, branch, dates and the reader's category stay"),
         N_("the reader may look back; the statistics count loans, not readers")),
    Kept(N_("closed holds (fulfilled, cancelled, expired)"), N_("history days after closing"), N_("deleted"),
         N_("a hold names a reader and a book and is of no use once closed")),
    Kept(N_("reading-challenge logs and participation"),
         N_("history days after the programme ends (for ever if the child's guardian keeps a history)"),
         N_("deleted; a log made from a loan forgets that loan as the loan forgets its reader"),
         N_("the certificate and standings of the programme")),
    Kept(N_("registrations and attendance"), N_("activity days after the session"), N_("deleted"),
         N_("the annual return counts attendance")),
    Kept(N_("notices (sent, or never sendable)"), N_("history days after sending or after they were due"),
         N_("deleted"), N_("their text names the books")),
    Kept(N_("audit entries naming a reader, PIN-change records"), N_("activity days"), N_("deleted"),
         N_("who did what to an account, for complaints and security reviews")),
    Kept(N_("sync: a branch's acknowledged upload packages, the central node's answers to uploads and settled "
            "conflicts' details"), N_("history days"),
         N_("packages deleted; answers and details emptied (an upload's uuid stays, so a resend is still applied once)"),
         N_("exactly-once sync and the staff's review")),
    Kept(N_("a closed account"), N_("for ever"),
         N_("only its card number, when closing was asked for, when and by whom it was done"),
         N_("a card number is not given out again; the reader can be told it was done")),
)


@dataclass
class Forgotten:
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# Rows forgotten per transaction. A server whose history goes back years (an upgrade, a shorter
# setting) has 100,000s to forget on its first run: in one transaction that held SQLite's single
# writer for seconds, and every checkout at the desk waited behind it. A batch takes milliseconds;
# the writers waiting meanwhile go between two batches.
FORGET_BATCH = 500
# At most this many batches of a kind per run (500,000 rows); the next run goes on from there.
FORGET_BATCHES_PER_RUN = 1000


async def forget(now: dt.datetime, history_days: int, activity_days: int) -> Forgotten:
    """One run of the retention table, in batches of FORGET_BATCH rows, each batch in its own
    transaction; returns what it did."""
    history = now - dt.timedelta(days=history_days)
    activity = now - dt.timedelta(days=activity_days)
    keepers = ReadingHistoryChoice.select(ReadingHistoryChoice.patron).where(
        ReadingHistoryChoice.keep_history == True)  # noqa: E712 - a SQL comparison
    done = Forgotten()

    def first(table, condition):
        """The ids of a batch of `table`'s rows meeting `condition`, as a subquery."""
        return table.id.is_in(table.select(table.id).where(condition).limit(FORGET_BATCH))

    async def step(name: str, work: Callable[[], Awaitable[list[list]]]) -> None:
        """`work` forgets one batch of each kind it handles; again while any batch was full."""
        done.counts[name] = 0
        for _ in range(FORGET_BATCHES_PER_RUN):
            batches = await run_in_write_transaction(work)
            done.counts[name] += sum(len(batch) for batch in batches)
            if all(len(batch) < FORGET_BATCH for batch in batches):
                return

    async def loans() -> list[list]:
        forgotten = await Loan.select(Loan.id, Loan.uuid).where(
            Loan.returned_at.is_not_null() & (Loan.returned_at < history) & Loan.patron.is_not_null()
            & Loan.patron.not_in(keepers)).limit(FORGET_BATCH)
        if forgotten:
            await Loan.update({Loan.patron: None}).where(Loan.id.is_in([row["id"] for row in forgotten]))
            # the log stays (the child read the book), but no longer names the loan
            await ReadingLog.update({ReadingLog.source_key: None}).where(
                (ReadingLog.source == "loan")
                & ReadingLog.source_key.is_in([f"loan:{row['uuid']}" for row in forgotten]))
        return [forgotten]

    async def holds() -> list[list]:
        return [await Hold.delete().where(first(Hold, Hold.status.is_in(["fulfilled", "cancelled", "expired"])
                                                & Hold.closed_at.is_not_null() & (Hold.closed_at < history))
                                          ).returning(Hold.id)]

    async def reading_logs() -> list[list]:
        ended = Programme.select(Programme.id).where(Programme.ends_on < history.date())
        logs = await ReadingLog.delete().where(first(ReadingLog, ReadingLog.programme.is_in(ended)
                                                     & ReadingLog.patron.not_in(keepers))).returning(ReadingLog.id)
        participants = await ProgrammeParticipant.delete().where(first(
            ProgrammeParticipant, ProgrammeParticipant.programme.is_in(ended)
            & ProgrammeParticipant.patron.not_in(keepers))).returning(ProgrammeParticipant.id)
        return [logs, participants]

    async def registrations() -> list[list]:
        past = Occurrence.select(Occurrence.id).where(Occurrence.ends_at < activity)
        return [await Registration.delete().where(first(Registration, Registration.occurrence.is_in(past))
                                                  ).returning(Registration.id)]

    async def notices() -> list[list]:
        return [await Notice.delete().where(first(Notice, (Notice.sent_at.is_not_null() & (Notice.sent_at < history))
                                                  | (Notice.sent_at.is_null() & (Notice.send_after < history)))
                                            ).returning(Notice.id)]

    async def audit_and_pins() -> list[list]:
        entries = await AuditEntry.delete().where(first(
            AuditEntry, (AuditEntry.at < activity)
            & (AuditEntry.subject.like("patron:%") | AuditEntry.actor.like("patron:%")))).returning(AuditEntry.id)
        pins = await PinChange.delete().where(first(PinChange, PinChange.set_at < activity)).returning(PinChange.id)
        return [entries, pins]

    async def sync_records() -> list[list]:
        packages = await SyncOutbox.delete().where(first(
            SyncOutbox, SyncOutbox.acknowledged_at.is_not_null() & (SyncOutbox.acknowledged_at < history)
        )).returning(SyncOutbox.id)
        answers = await SyncApplied.update({SyncApplied.result: {}}).where(first(
            SyncApplied, (SyncApplied.applied_at < history) & (SyncApplied.result != "{}"))).returning(SyncApplied.id)
        details = await SyncConflict.update({SyncConflict.detail: {}}).where(first(
            SyncConflict, (SyncConflict.state == "resolved") & SyncConflict.resolved_at.is_not_null()
            & (SyncConflict.resolved_at < history) & (SyncConflict.detail != "{}"))).returning(SyncConflict.id)
        return [packages, answers, details]

    for name, work in (("loans", loans), ("holds", holds), ("reading_logs", reading_logs),
                       ("registrations", registrations), ("notices", notices), ("audit", audit_and_pins),
                       ("sync", sync_records)):
        await step(name, work)
    return done


def start_retention_loop(settings: Settings) -> Callable[[], Awaitable[None]]:
    """Every LIBRARY_NOTICE_INTERVAL_SECONDS, in the one worker that claims the interval's lease."""

    async def run(now: dt.datetime) -> None:
        done = await forget(now, settings.loan_history_days, settings.activity_history_days)
        if done.total:
            log.info("retention: %s", ", ".join(f"{k} {v}" for k, v in done.counts.items() if v))

    return start_leased_loop(LEASE, settings.notice_interval_seconds, run, now_utc, log)
