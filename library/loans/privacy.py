"""Reading privacy: returned loans forget their reader after LIBRARY_LOAN_HISTORY_DAYS,
unless the reader (or their guardian) chose to keep a reading history.

An anonymised loan keeps the copy, branch, dates and the reader's category (statistics
need them) and loses only the link to the reader. Sent notices older than the same limit
are deleted too: their text names the books.
"""

from __future__ import annotations

import datetime as dt

from library import audit
from library.accounts.principal import Principal
from library.accounts.tables import Patron
from library.db import run_in_write_transaction
from library.errors import NotFound, NotPermitted
from library.loans.tables import Loan, Notice, ReadingHistoryChoice


async def anonymise_returned_loans(now: dt.datetime, history_days: int) -> int:
    """Unlink the reader from loans returned more than `history_days` ago; returns how many.

    One UPDATE, the same on SQLite and PostgreSQL: readers who keep a history are excluded
    by a sub-select, so a choice made a moment ago is respected.
    """
    cutoff = now - dt.timedelta(days=history_days)
    keepers = ReadingHistoryChoice.select(ReadingHistoryChoice.patron).where(
        ReadingHistoryChoice.keep_history == True)  # noqa: E712 - a SQL comparison

    async def work() -> int:
        changed = await Loan.update({Loan.patron: None}).where(
            Loan.returned_at.is_not_null() & (Loan.returned_at < cutoff) & Loan.patron.is_not_null()
            & Loan.patron.not_in(keepers)
        ).returning(Loan.id)
        await Notice.delete().where(Notice.sent_at.is_not_null() & (Notice.sent_at < cutoff))
        return len(changed)

    return await run_in_write_transaction(work)


def _reader_for(principal: Principal, patron_id: int | None) -> int:
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    if patron_id is None or patron_id == principal.id:
        return principal.id
    if patron_id not in principal.children_ids:
        raise NotPermitted("not_guardian")
    return patron_id


async def set_keep_history(principal: Principal, keep: bool, patron_id: int | None = None) -> bool:
    """A signed-in reader keeps (or stops keeping) their reading history; a guardian may
    choose for a linked child. Returned loans older than the limit are anonymised at the
    next round after opting out."""
    reader = _reader_for(principal, patron_id)

    async def work() -> bool:
        patron = await Patron.select(Patron.uuid).where(Patron.id == reader).first()
        if patron is None:
            raise NotFound("patron_not_found", card_number="")
        await ReadingHistoryChoice.insert(ReadingHistoryChoice(patron=reader, keep_history=keep)).on_conflict(
            target=ReadingHistoryChoice.patron, action="DO UPDATE", values=[ReadingHistoryChoice.keep_history,
                                                                   ReadingHistoryChoice.updated_at])
        await audit.record(principal.audit_name, "reading_history.keep" if keep else "reading_history.forget",
                           f"patron:{patron['uuid']}")
        return keep

    return await run_in_write_transaction(work)


async def keeps_history(patron_id: int) -> bool:
    choice = await ReadingHistoryChoice.select(ReadingHistoryChoice.keep_history).where(
        ReadingHistoryChoice.patron == patron_id).first()
    return bool(choice and choice["keep_history"])
