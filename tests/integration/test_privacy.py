"""Reading privacy on a real database: old returned loans forget their reader unless the reader opts in
(the retention job, library/privacy/retention.py; the choice, library/privacy/service.py)."""

import dataclasses
import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.branches.tables import AuditEntry
from library.errors import NotPermitted
from library.loans.notices import OVERDUE
from library.privacy import service as privacy
from library.privacy.retention import forget
from library.loans.tables import Loan, ReadingHistoryChoice
from library.notices.outbox import queue
from library.notices.tables import Notice
from library.settings import load_settings
from tests.integration.notice_world import NOW, TODAY, make_world

DAY = dt.timedelta(days=1)


def reader(patron_id: int, *children: int) -> Principal:
    return Principal(kind="patron", id=patron_id, uuid=f"p{patron_id}", name="读者", language="zh_CN",
                     children_ids=frozenset(children))


async def keeps_history(patron_id: int) -> bool:
    return await privacy.keeps_history(patron_id)


async def set_keep_history(principal: Principal, keep: bool, patron_id: int | None = None) -> bool:
    subject = principal.id if patron_id is None else patron_id
    return await privacy.set_keep_history(principal, subject, keep, TODAY)


async def owner(loan_uuid: str) -> int | None:
    return (await Loan.select(Loan.patron).where(Loan.uuid == loan_uuid).first())["patron"]


async def test_returned_loans_forget_their_reader_after_the_limit():
    world = await make_world()
    wang = world.patrons["wang"]
    old = await world.loan("wang", TODAY - 40 * DAY, returned_at=NOW - 31 * DAY)
    recent = await world.loan("wang", TODAY - 20 * DAY, returned_at=NOW - 29 * DAY)
    still_out = await world.loan("wang", TODAY - 60 * DAY)  # overdue for long, but not returned
    assert (await forget(NOW, 30, 400)).counts["loans"] == 1
    assert await owner(old) is None
    assert await owner(recent) == wang and await owner(still_out) == wang
    # What statistics need stays.
    kept = await Loan.select(Loan.patron_category, Loan.branch, Loan.returned_at).where(Loan.uuid == old).first()
    assert kept["patron_category"] == "adult" and kept["branch"] == world.branch and kept["returned_at"]
    assert (await forget(NOW, 30, 400)).counts["loans"] == 0  # nothing left to do
    assert (await forget(NOW + 2 * DAY, 30, 400)).counts["loans"] == 1
    assert await owner(recent) is None


async def test_the_limit_is_a_setting():
    assert load_settings().loan_history_days == 30
    world = await make_world()
    loan = await world.loan("wang", TODAY - 3 * DAY, returned_at=NOW - DAY)
    assert (await forget(NOW, 2, 400)).counts["loans"] == 0
    assert (await forget(NOW, 0, 400)).counts["loans"] == 1 and await owner(loan) is None


async def test_a_reader_who_opts_in_keeps_their_history_until_they_opt_out():
    world = await make_world()
    wang, emma = world.patrons["wang"], world.patrons["emma"]
    kept = await world.loan("wang", TODAY - 400 * DAY, returned_at=NOW - 365 * DAY)
    other = await world.loan("emma", TODAY - 400 * DAY, returned_at=NOW - 365 * DAY)
    assert await keeps_history(wang) is False
    assert await set_keep_history(reader(wang), True) is True
    assert await keeps_history(wang) is True and await keeps_history(emma) is False

    assert (await forget(NOW, 30, 400)).counts["loans"] == 1
    assert await owner(kept) == wang and await owner(other) is None

    await set_keep_history(reader(wang), False)
    assert await ReadingHistoryChoice.count() == 1  # the choice is changed, not added to
    assert (await forget(NOW, 30, 400)).counts["loans"] == 1 and await owner(kept) is None
    actions = [row["action"] for row in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions == ["reading_history.keep", "reading_history.forget"]


async def test_only_the_reader_or_their_guardian_chooses():
    world = await make_world()
    wang, emma = world.patrons["wang"], world.patrons["emma"]
    child = await world.patron("child", "李小米", "", category="child")
    await set_keep_history(reader(wang, child), True, patron_id=child)
    assert await keeps_history(child) is True and await keeps_history(wang) is False
    with pytest.raises(NotPermitted) as refused:
        await set_keep_history(reader(emma), True, patron_id=child)
    assert refused.value.code == "not_guardian"
    staff = Principal(kind="staff", id=1, uuid="s", name="馆员", language="zh_CN", role="administrator",
                      all_branches=True)
    with pytest.raises(NotPermitted) as refused:
        await set_keep_history(staff, True)
    assert refused.value.code == "patron_only"
    assert await ReadingHistoryChoice.count() == 1


async def test_old_notices_go_too_sent_or_never_sendable_but_recent_ones_stay():
    world = await make_world()
    wang = world.patrons["wang"]
    await queue(OVERDUE, wang, "old-sent", NOW - 40 * DAY, title="大卫，不可以", barcode="B1", day=TODAY)
    await queue(OVERDUE, wang, "old-waiting", NOW - 40 * DAY, title="大卫，不可以", barcode="B1", day=TODAY)
    await queue(OVERDUE, wang, "new-sent", NOW - 2 * DAY, title="大卫，不可以", barcode="B1", day=TODAY)
    await queue(OVERDUE, wang, "new-waiting", NOW - 2 * DAY, title="大卫，不可以", barcode="B1", day=TODAY)
    await Notice.update({Notice.sent_at: NOW - 40 * DAY}).where(Notice.key == "old-sent")
    await Notice.update({Notice.sent_at: NOW - 2 * DAY}).where(Notice.key == "new-sent")
    (await forget(NOW, 30, 400)).counts["loans"]
    assert sorted(row["key"] for row in await Notice.select(Notice.key)) == ["new-sent", "new-waiting"]


async def test_the_server_forgets_with_the_configured_limit_in_its_own_loop_not_the_notice_round():
    import asyncio

    from library.app import NOTICE_STEPS
    from library.notices import worker
    from library.privacy.retention import start_retention_loop

    world = await make_world()
    loan = await world.loan("wang", TODAY - 20 * DAY, returned_at=NOW - 10 * DAY)
    settings = dataclasses.replace(load_settings(), smtp_host=None, loan_history_days=7, notice_interval_seconds=60)
    report = await worker.run_cycle(NOW, settings, NOTICE_STEPS)
    assert report.failures == [] and await owner(loan) == world.patrons["wang"], "notices only"
    stop = start_retention_loop(settings)  # its first run is at once, in this worker (it takes the lease)
    try:
        for _ in range(100):
            if await owner(loan) is None:
                break
            await asyncio.sleep(0.05)
    finally:
        await stop()
    assert await owner(loan) is None


async def test_a_long_backlog_is_forgotten_in_short_transactions_and_the_desk_goes_between_them(monkeypatch):
    """Years of history to forget at once (an upgrade, a shorter setting): batch after batch, each its
    own transaction, never one that holds the single writer for seconds."""
    from library import db
    from library.privacy import retention

    monkeypatch.setattr(retention, "FORGET_BATCH", 2)
    world = await make_world()
    old = [await world.loan("wang", TODAY - 40 * DAY, returned_at=NOW - (31 + n) * DAY) for n in range(5)]
    transactions = []
    real = db.run_in_write_transaction

    async def counted(work, *args, **kwargs):
        transactions.append(work.__name__)
        return await real(work, *args, **kwargs)

    monkeypatch.setattr(retention, "run_in_write_transaction", counted)
    done = await forget(NOW, 30, 400)
    assert done.counts["loans"] == 5
    assert transactions.count("loans") == 3  # 2 + 2 + 1
    assert [await owner(loan) for loan in old] == [None] * 5
