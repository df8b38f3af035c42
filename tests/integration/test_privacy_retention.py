"""Forgetting that holds, end to end: a family borrows, holds, logs reading and attends; time passes;
afterwards no row of any table links any of them to a title, except what the retention table keeps.

The check is generic: every column of every table is searched for the family — a foreign key
to one of them, or their card number or uuid anywhere in a text or JSON column (an audit
entry, a sync package, a conflict's detail, a notice) — so a new table that keeps readers
fails it until the retention table says why.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from piccolo.columns import JSONB, ForeignKey, Text, Varchar
from piccolo.conf.apps import Finder

from library.accounts.principal import Principal
from library.accounts.tables import Patron
from library.activities import challenge
from library.activities import service as activities
from library.activities.rules import CheckInWindow
from library.activities.tables import Occurrence, Programme, ReadingLog, Registration
from library.catalog.tables import Item
from library.demo import load_demo
from library.loans import service as loans
from library.loans.tables import Hold, Loan
from library.privacy import retention
from tests.sync.worker import _desk

FAMILY = ("ZX10000001", "ZX10000002", "ZX10000003")  # 王芳 and her children 李小米, 李小宇
# What the retention table keeps of a reader that names no title: the reader, their links, their choices;
# the change log's rows of those (entity uuids only).
KEPT = {"patron", "guardian_link", "reading_history_choice"}


async def _family() -> list[dict[str, Any]]:
    return await Patron.select(Patron.id, Patron.uuid, Patron.card_number).where(Patron.card_number.is_in(FAMILY))


async def traces(family: list[dict[str, Any]]) -> dict[str, int]:
    """table.column -> rows that point at or name one of the family."""
    ids = [row["id"] for row in family]
    names = [str(row["uuid"]) for row in family] + [row["card_number"] for row in family]
    found: dict[str, int] = {}
    for table in Finder().get_table_classes():
        name = table._meta.tablename
        for column in table._meta.columns:
            db_name = column._meta.db_column_name
            if isinstance(column, ForeignKey):
                if column._foreign_key_meta.resolved_references._meta.tablename != "patron":
                    continue
                marks = ", ".join("{}" for _ in ids)
                rows = await table.raw(f'SELECT COUNT(*) AS n FROM {name} WHERE "{db_name}" IN ({marks})', *ids)
            elif isinstance(column, (Varchar, Text, JSONB)):
                likes = " OR ".join(f'CAST("{db_name}" AS TEXT) LIKE {{}}' for _ in names)
                rows = await table.raw(f"SELECT COUNT(*) AS n FROM {name} WHERE {likes}",
                                       *[f"%{value}%" for value in names])
            else:
                continue
            if rows[0]["n"]:
                found[f"{name}.{db_name}"] = int(rows[0]["n"])
    return found


def _beyond_the_table(found: dict[str, int]) -> dict[str, int]:
    return {where: n for where, n in found.items()
            if where.split(".")[0] not in KEPT and where != "sync_change.entity_uuid" and where != "patron.uuid"}


async def test_after_retention_nothing_joins_a_family_to_what_it_read(monkeypatch):
    today = dt.date.today()
    now = dt.datetime.now(dt.timezone.utc)
    await load_demo(today)
    desk = _desk()
    family = await _family()
    mother = next(row for row in family if row["card_number"] == "ZX10000001")
    children = frozenset(row["id"] for row in family if row["id"] != mother["id"])
    guardian = Principal(kind="patron", id=mother["id"], uuid=str(mother["uuid"]), name="王芳", language="zh_CN",
                         children_ids=children)

    # the books the demo lent the family come back (open loans are kept while open: the table says so)
    lent = await Loan.select(Loan.item.barcode).where(Loan.patron.is_in([row["id"] for row in family])
                                                      & Loan.returned_at.is_null())
    for loan in lent:
        await loans.checkin(desk, "ZX", loan["item.barcode"], now)
    # borrowing and returning, for herself and a child
    copies = await Item.select(Item.barcode, Item.record.uuid).where(
        (Item.current_branch.code == "ZX") & (Item.status == "available")).order_by(Item.id).limit(3)
    for card, copy in zip(("ZX10000001", "ZX10000002"), copies):
        await loans.checkout(desk, "ZX", card, copy["barcode"], now)
        await loans.checkin(desk, "ZX", copy["barcode"], now + dt.timedelta(days=3))
    # a hold placed and cancelled
    hold = await loans.place_hold(guardian, str(copies[2]["record.uuid"]), "ZX", now)
    await loans.cancel_hold(guardian, hold["uuid"], now)
    # the reading challenge: a book logged for the child
    programme = await Programme.select(Programme.uuid, Programme.starts_on, Programme.ends_on).first()
    read_on = min(max(today, programme["starts_on"]), programme["ends_on"])
    await challenge.log_reading(guardian, str(programme["uuid"]), "ZX10000002", "好饿的毛毛虫", read_on)
    # an activity: registered, and checked in at the door
    session = await Occurrence.select(Occurrence.uuid, Occurrence.starts_at, Occurrence.ends_at).where(
        (Occurrence.starts_at > now) & (Occurrence.event.title_en == "Saturday picture-book club")).order_by(
        Occurrence.starts_at).first()  # ages 4-6: 李小米 is 5
    await activities.register(guardian, str(session["uuid"]), ["ZX10000002"], now)
    await activities.check_in(desk, str(session["uuid"]), "ZX10000001", session["starts_at"], CheckInWindow())

    before = await traces(family)
    for where in ("loan.patron", "hold.patron", "reading_log.patron", "registration.patron"):
        assert before.get(where), f"the family left no trace in {where}: the check would prove nothing"

    # Time passes: past the history days after the programme, past the activity days after the session.
    later = max(session["ends_at"], dt.datetime.combine(programme["ends_on"], dt.time(), dt.timezone.utc)) \
        + dt.timedelta(days=401)
    forgotten = await retention.forget(later, history_days=30, activity_days=400)
    assert forgotten.counts["loans"] >= 2 and forgotten.counts["holds"] >= 1
    assert forgotten.counts["reading_logs"] >= 1 and forgotten.counts["registrations"] >= 1

    left = _beyond_the_table(await traces(family))
    assert left == {}, f"beyond the retention table, these still name the family: {left}"
    # the statistics keep their loans, without a reader
    assert await Loan.count().where(Loan.item.barcode.is_in([c["barcode"] for c in copies[:2]])) >= 2
    assert await Hold.count().where(Hold.patron.is_in([row["id"] for row in family])) == 0
    assert await ReadingLog.count().where(ReadingLog.patron.is_in([row["id"] for row in family])) == 0
    assert await Registration.count().where(Registration.patron.is_in([row["id"] for row in family])) == 0
    # and the job has nothing more to do
    assert (await retention.forget(later, history_days=30, activity_days=400)).total == 0


async def test_a_child_whose_guardian_keeps_a_history_keeps_the_returned_loans():
    from library.privacy import service as privacy

    today = dt.date.today()
    now = dt.datetime.now(dt.timezone.utc)
    await load_demo(today)
    family = await _family()
    mother = next(row for row in family if row["card_number"] == "ZX10000001")
    child = next(row for row in family if row["card_number"] == "ZX10000002")
    guardian = Principal(kind="patron", id=mother["id"], uuid=str(mother["uuid"]), name="王芳", language="zh_CN",
                         children_ids=frozenset({child["id"]}))
    await privacy.set_keep_history(guardian, child["id"], True, today)
    copy = (await Item.select(Item.barcode).where((Item.current_branch.code == "ZX") & (Item.status == "available"))
            .first())["barcode"]
    await loans.checkout(_desk(), "ZX", "ZX10000002", copy, now)
    await loans.checkin(_desk(), "ZX", copy, now)
    mothers = await Loan.select(Loan.item.barcode).where((Loan.patron == mother["id"]) & Loan.returned_at.is_null())
    assert mothers, "the demo lends the mother a book"
    await loans.checkin(_desk(), "ZX", mothers[0]["item.barcode"], now)
    await retention.forget(now + dt.timedelta(days=500), history_days=30, activity_days=400)
    assert await Loan.count().where((Loan.patron == child["id"]) & (Loan.item.barcode == copy)) == 1, \
        "the guardian chose to keep it"
    assert await Loan.count().where((Loan.patron == mother["id"]) & Loan.returned_at.is_not_null()) == 0, \
        "the mother did not"


def test_the_retention_table_in_the_docs_is_the_one_the_job_enforces():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text()
    for row in retention.RETENTION:
        assert row.what in text and row.then in text, row.what
