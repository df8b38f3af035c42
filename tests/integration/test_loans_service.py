"""Circulation services on a real database: checkout, return anywhere, transits, renewals, holds, concurrency."""

import asyncio
import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.branches.tables import AuditEntry
from library.catalog.tables import Item, Record
from library.db import json_object
from library.demo import load_demo
from library.errors import CirculationRefused, Conflict, NotFound, NotPermitted
from library.loans import policy, service
from library.loans.tables import CirculationRule, Hold, Loan, Transit
from library.notices.tables import Notice

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)  # Saturday 10:00 in Jiaxing
ADMIN = Principal(kind="staff", id=0, uuid="test-admin", name="测试管理员", language="zh_CN", role="administrator",
                  all_branches=True)
CATERPILLAR = "9787533259594"  # 猜猜我有多爱你: 2 copies at ZX (one lent to 王芳), 3 at JX
DAVID = "9787539109619"  # 大卫，不可以: 2 copies at JX, both lent, 张建国 waits for it


def staff_of(*branch_ids: int) -> Principal:
    return Principal(kind="staff", id=0, uuid="t", name="t", language="zh_CN", role="librarian",
                     branch_ids=frozenset(branch_ids))


@pytest.fixture
async def demo():
    await load_demo(TODAY)


async def patron(card: str) -> Principal:
    row = await Patron.select(Patron.id).where(Patron.card_number == card).first()
    return await load_principal("patron", row["id"])


async def copies(isbn: str, status: str | None = None, home: str | None = None) -> list[str]:
    query = Item.select(Item.barcode).where(Item.record.isbn13 == isbn).order_by(Item.barcode)
    if status:
        query = query.where(Item.status == status)
    if home:
        query = query.where(Item.home_branch.code == home)
    return [row["barcode"] for row in await query]


async def item(barcode: str) -> dict:
    return await Item.select(Item.status, Item.current_branch.code, Item.due_back).where(
        Item.barcode == barcode).first()


async def test_checkout_then_return_at_home(demo):
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    # Lent at ZX to a senior: the ZX picture-book rule (21 days) wins over the network rule.
    assert lent.rule_scope == "ZX|*|picture_book"
    assert lent.due_on == dt.date(2026, 12, 19)  # 28 Nov + 21, a Saturday the room is open
    assert (await item(barcode))["status"] == "on_loan" and (await item(barcode))["due_back"] == lent.due_on
    back = await service.checkin(ADMIN, "ZX", barcode, NOW + dt.timedelta(days=3))
    assert back.was_on_loan and back.route == "shelve" and back.days_overdue == 0
    assert (await item(barcode))["status"] == "available"
    assert await Loan.count().where(Loan.returned_at.is_null() & (Loan.item.barcode == barcode)) == 0


async def test_due_date_skips_the_closed_monday(demo):
    # A rule of 30 days from Saturday 28 Nov lands on Monday 28 Dec, when ZX is closed.
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", patron_category="senior", loan_days=30))
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    assert lent.rule_scope == "ZX|senior|*" and lent.due_on == dt.date(2026, 12, 29)


async def test_every_refusal_is_listed_at_once(demo):
    [lent_barcode] = await copies(CATERPILLAR, "on_loan", "ZX")
    with pytest.raises(CirculationRefused) as refused:
        await service.checkout(ADMIN, "ZX", "XZ30000001", lent_barcode, NOW)  # expired card, copy on loan
    assert [r.code for r in refused.value.refusals] == ["card_expired", "item_on_loan"]
    assert await Loan.count().where(Loan.patron.card_number == "XZ30000001") == 0


async def test_staff_override_needs_a_comment_and_is_kept(demo):
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    with pytest.raises(CirculationRefused):
        await service.checkout(ADMIN, "ZX", "XZ30000001", barcode, NOW, override_comment="   ")
    lent = await service.checkout(ADMIN, "ZX", "XZ30000001", barcode, NOW, override_comment="证件续期中")
    assert lent.overridden == ("card_expired",)
    detail = await service.loan_detail(ADMIN, lent.loan_uuid)
    assert detail["overrides"][0]["comment"] == "证件续期中" and detail["overrides"][0]["code"] == "card_expired"
    assert detail["rules_considered"] == ["ZX|*|picture_book", "*|*|*"]
    [entry] = await AuditEntry.select().where(AuditEntry.action == "loan.override")
    assert entry["subject"] == f"item:{barcode}" and entry["actor"] == ADMIN.audit_name
    assert json_object(entry["detail"]) == {"reasons": ["card_expired"], "comment": "证件续期中"}
    assert entry["at"] is not None


async def test_a_block_is_never_overridden(demo):
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    with pytest.raises(CirculationRefused) as refused:
        await service.checkout(ADMIN, "ZX", "ZX10000004", barcode, NOW, override_comment="熟人")
    assert [r.code for r in refused.value.refusals] == ["card_blocked"]


async def test_children_have_their_own_loan_limit(demo):
    # At ZX a branch rule for children beats the branch's picture-book rule (category outweighs item type).
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", patron_category="child", max_loans=1,
                                                   loan_days=21, renewal_days=21))
    # 李小米 (child) already has one demo loan.
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    with pytest.raises(CirculationRefused) as refused:
        await service.checkout(ADMIN, "ZX", "ZX10000002", barcode, NOW)
    assert [(r.code, r.params) for r in refused.value.refusals] == [("loan_limit", {"limit": 1})]


async def test_reference_copies_stay_in_the_library(demo):
    await Item.update({Item.item_type: "reference"}).where(Item.barcode == (await copies(CATERPILLAR, "available",
                                                                                         "ZX"))[0])
    with pytest.raises(CirculationRefused) as refused:
        await service.checkout(ADMIN, "ZX", "JX20000001", (await copies(CATERPILLAR, "available", "ZX"))[0], NOW)
    assert [r.code for r in refused.value.refusals] == ["item_not_loanable"]


async def test_a_withdrawn_copy_is_not_taken_back_and_a_lost_one_is_found(demo):
    [first, second] = await copies("9787533291204", "available", "ZX")
    await Item.update({Item.status: "withdrawn"}).where(Item.barcode == first)
    with pytest.raises(Conflict) as refused:
        await service.checkin(ADMIN, "ZX", first, NOW)
    assert refused.value.code == "item_withdrawn" and (await item(first))["status"] == "withdrawn"
    await Item.update({Item.status: "lost"}).where(Item.barcode == second)
    found = await service.checkin(ADMIN, "ZX", second, NOW)
    assert not found.was_on_loan and found.route == "shelve" and (await item(second))["status"] == "available"


async def test_unknown_card_or_barcode_changes_nothing(demo):
    before = await Loan.count()
    with pytest.raises(NotFound) as missing:
        await service.checkout(ADMIN, "ZX", "ZX99999999", (await copies(CATERPILLAR, "available", "ZX"))[0], NOW)
    assert missing.value.code == "patron_not_found"
    with pytest.raises(NotFound) as missing:
        await service.checkout(ADMIN, "ZX", "ZX10000001", "NO-SUCH-COPY", NOW)
    assert missing.value.code == "item_not_found"
    assert await Loan.count() == before


async def test_a_librarian_lends_only_at_their_own_branch(demo):
    jx = await copies(CATERPILLAR, "available", "JX")
    zx_branch = (await Item.select(Item.home_branch).where(Item.barcode == (await copies(CATERPILLAR, home="ZX"))[0])
                 .first())["home_branch"]
    with pytest.raises(NotPermitted):
        await service.checkout(staff_of(zx_branch), "JX", "ZX10000001", jx[0], NOW)


async def test_two_desks_scanning_one_copy_at_once_make_one_loan(demo):
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    readers = ["ZX10000001", "JX20000001", "ZX10000002", "ZX10000003"] * 3
    results = await asyncio.gather(*[service.checkout(ADMIN, "ZX", card, barcode, NOW) for card in readers],
                                   return_exceptions=True)
    lent = [r for r in results if isinstance(r, service.CheckedOut)]
    refused = [r for r in results if isinstance(r, CirculationRefused)]
    assert len(lent) == 1 and len(refused) == len(readers) - 1, results
    assert all(r.refusals[-1].code == "item_on_loan" for r in refused)
    assert await Loan.count().where((Loan.item.barcode == barcode) & Loan.returned_at.is_null()) == 1


async def test_concurrent_renewals_never_pass_the_limit(demo):
    # Renewals counted from the due date, so each one would extend the loan on its own.
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", item_type="picture_book", loan_days=21,
                                                   renewal_days=14, max_renewals=2, renew_from="due_date"))
    [barcode] = await copies(CATERPILLAR, "on_loan", "ZX")
    loan = await Loan.select(Loan.uuid, Loan.due_on).where(Loan.item.barcode == barcode).first()
    results = await asyncio.gather(*[service.renew(ADMIN, [str(loan["uuid"])], NOW) for _ in range(8)],
                                   return_exceptions=True)
    renewed = [r[0] for r in results if isinstance(r, list) and r[0].renewed]
    told = [r for r in results if isinstance(r, Conflict) or (isinstance(r, list) and not r[0].renewed)]
    assert len(renewed) + len(told) == 8, results
    row = await Loan.select(Loan.renewals, Loan.due_on).where(Loan.uuid == loan["uuid"]).first()
    # Never above the limit, and every renewal that said yes is the one the database counted.
    assert 1 <= len(renewed) <= 2 and row["renewals"] == len(renewed)
    assert row["due_on"] == max(outcome.due_on for outcome in renewed) > loan["due_on"]
    assert (await item(barcode))["due_back"] == row["due_on"]


async def test_return_anywhere_goes_home_in_transit_then_is_received(demo):
    barcode = (await copies(CATERPILLAR, "available", "JX"))[0]
    await service.checkout(ADMIN, "JX", "ZX10000001", barcode, NOW)
    back = await service.checkin(ADMIN, "ZX", barcode, NOW + dt.timedelta(days=2))
    assert back.route == "transit_home" and back.to_branch_code == "JX"
    assert (await item(barcode))["status"] == "in_transit"
    transits = await service.transits(ADMIN, "JX")
    assert [t["barcode"] for t in transits["incoming"]] == [barcode]
    scanned_on_the_way = await service.checkin(ADMIN, "XZ", barcode, NOW + dt.timedelta(days=2))
    assert scanned_on_the_way.route == "still_in_transit"
    arrived = await service.checkin(ADMIN, "JX", barcode, NOW + dt.timedelta(days=3))
    assert arrived.received_transit and arrived.route == "shelve"
    assert (await item(barcode)) == {"status": "available", "current_branch.code": "JX", "due_back": None}
    assert await Transit.count().where(Transit.received_at.is_null()) == 0


async def test_a_returned_copy_travels_to_the_hold_at_another_branch(demo):
    # 张建国 waits for 大卫，不可以 at JX; a copy lent at JX is returned at ZX.
    await Patron.update({Patron.email: "zhang@example.org"}).where(Patron.card_number == "JX20000001")
    [first, second] = await copies(DAVID, "on_loan")
    back = await service.checkin(ADMIN, "ZX", first, NOW)
    assert back.route == "hold_transit" and back.to_branch_code == "JX"
    hold = await Hold.select(Hold.status, Hold.item.barcode).where(Hold.patron.card_number == "JX20000001").first()
    assert hold == {"status": "in_transit", "item.barcode": first}
    # The second copy coming back is not taken by the same hold.
    assert (await service.checkin(ADMIN, "JX", second, NOW)).route == "shelve"
    arrived = await service.checkin(ADMIN, "JX", first, NOW + dt.timedelta(days=1))
    assert arrived.route == "hold_shelf" and arrived.hold_patron_card == "JX20000001"
    assert (await item(first))["status"] == "on_hold_shelf"
    notice = await Notice.select(Notice.kind, Notice.subject, Notice.to_address).first()
    assert notice["kind"] == "hold_ready" and "大卫，不可以" in notice["subject"]
    with pytest.raises(CirculationRefused) as refused:
        await service.checkout(ADMIN, "JX", "ZX10000001", first, NOW + dt.timedelta(days=1))
    assert [r.code for r in refused.value.refusals] == ["item_held_for_other"]
    lent = await service.checkout(ADMIN, "JX", "JX20000001", first, NOW + dt.timedelta(days=1))
    assert lent.barcode == first
    assert (await Hold.select(Hold.status).where(Hold.patron.card_number == "JX20000001").first())["status"] == \
        "fulfilled"


async def test_holds_are_first_come_first_served_and_the_shelf_expires(demo):
    record = await Record.select(Record.uuid).where(Record.isbn13 == DAVID).first()
    mother = await patron("ZX10000001")
    # 张建国 holds it already (demo); 王芳 has a copy herself, so she queues her son second, at JX.
    with pytest.raises(CirculationRefused) as refused:
        await service.place_hold(mother, str(record["uuid"]), "JX", NOW)
    assert [r.code for r in refused.value.refusals] == ["already_borrowed"]
    placed = await service.place_hold(mother, str(record["uuid"]), "JX", NOW, card_number="ZX10000003")
    assert placed["position"] == 2
    [first, second] = await copies(DAVID, "on_loan")
    assert (await service.checkin(ADMIN, "JX", first, NOW)).hold_patron_card == "JX20000001"
    # 张建国 does not come: after the shelf days the copy passes to the boy.
    later = NOW + dt.timedelta(days=10)
    assert await service.expire_hold_shelf(later) == 1
    statuses = {row["patron.card_number"]: row["status"] for row in await Hold.select(Hold.patron.card_number,
                                                                                      Hold.status)}
    assert statuses == {"JX20000001": "expired", "ZX10000003": "ready"}
    assert (await item(first))["status"] == "on_hold_shelf"


async def test_renewals_with_reasons_for_a_family(demo):
    mother = await patron("ZX10000001")
    outcomes = await service.renew_all(mother, NOW)
    by_title = {}
    for outcome in outcomes:
        by_title.setdefault(outcome.title, []).append(outcome)
    assert all(o.renewed for o in by_title["猜猜我有多爱你"] + by_title["团圆"])
    assert all(not o.renewed and [r.code for r in o.reasons] == ["hold_waiting"] for o in by_title["大卫，不可以"])
    # An override by staff never jumps the queue.
    david_loan = by_title["大卫，不可以"][0].loan_uuid
    [again] = await service.renew(ADMIN, [david_loan], NOW, override_comment="读者出差")
    assert not again.renewed and [r.code for r in again.reasons] == ["hold_waiting"]


async def test_renewal_limit_and_no_shortening(demo):
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", item_type="picture_book", loan_days=21,
                                                   renewal_days=7, max_renewals=1))
    [barcode] = await copies(CATERPILLAR, "on_loan", "ZX")
    loan = await Loan.select(Loan.uuid, Loan.due_on).where(Loan.item.barcode == barcode).first()
    # Due 3 Dec; renewing on 28 Nov for 7 days from today would give 5 Dec... allowed, later than before.
    [first] = await service.renew(ADMIN, [str(loan["uuid"])], NOW)
    assert first.renewed and first.due_on >= loan["due_on"]
    [second] = await service.renew(ADMIN, [str(loan["uuid"])], NOW)
    assert not second.renewed and "renewal_limit" in [r.code for r in second.reasons]
    assert second.due_on == first.due_on


async def test_nobody_renews_someone_elses_loan(demo):
    mother_loan = await Loan.select(Loan.uuid).where(Loan.patron.card_number == "ZX10000001").first()
    stranger = await patron("JX20000001")
    before = await Loan.select(Loan.renewals, Loan.due_on).where(Loan.uuid == mother_loan["uuid"]).first()
    with pytest.raises(NotFound):
        await service.renew(stranger, [str(mother_loan["uuid"])], NOW)
    assert await Loan.select(Loan.renewals, Loan.due_on).where(Loan.uuid == mother_loan["uuid"]).first() == before
    with pytest.raises(NotPermitted):
        await service.renew_all(stranger, NOW, card_number="ZX10000001")
    # A guardian renews a linked child's loan.
    child_loan = await Loan.select(Loan.uuid).where(Loan.patron.card_number == "ZX10000003").first()
    [outcome] = await service.renew(await patron("ZX10000001"), [str(child_loan["uuid"])], NOW)
    assert outcome.renewed


async def test_a_reader_with_two_hundred_loans_borrows_like_anyone(demo):
    """The loan count comes from an index, not from loading the loans (the bench measures the speed)."""
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", patron_category="adult", max_loans=500))
    mother = await Patron.select(Patron.id).where(Patron.card_number == "ZX10000001").first()
    record = await Record.select(Record.id).where(Record.isbn13 == CATERPILLAR).first()
    zx = (await Item.select(Item.home_branch).where(Item.barcode == (await copies(CATERPILLAR, home="ZX"))[0])
          .first())["home_branch"]
    await Item.insert(*[Item(record=record["id"], barcode=f"ZXBULK{n:04d}", home_branch=zx, current_branch=zx)
                        for n in range(200)])
    for n in range(200):
        await service.checkout(ADMIN, "ZX", "ZX10000001", f"ZXBULK{n:04d}", NOW)
    assert await Loan.count().where((Loan.patron == mother["id"]) & Loan.returned_at.is_null()) == 202
    account = await service.account(await patron("ZX10000001"), TODAY)
    assert account["loan_count"] == 204  # her 202 and her children's two


async def test_rules_and_calendars_changed_by_raw_sql_apply_to_the_next_checkout(demo):
    """Rules, branches and calendars are cached per configuration version; a change from anywhere
    (branch sync writes them with plain SQL) moves the version, so no checkout sees stale rules."""
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    assert lent.due_on == dt.date(2026, 12, 19)
    await service.checkin(ADMIN, "ZX", barcode, NOW)
    await CirculationRule.raw("UPDATE circulation_rule SET loan_days = 7 WHERE scope = 'ZX|*|picture_book'")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    assert lent.due_on == dt.date(2026, 12, 5)
    await service.checkin(ADMIN, "ZX", barcode, NOW)
    await CirculationRule.raw(
        "INSERT INTO calendar_exception (branch, day, is_open, reason_zh, reason_en, created_by) "
        "SELECT id, '2026-12-05', false, '盘点', 'Stocktake', 'sync' FROM branch WHERE code = 'ZX'")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    assert lent.due_on == dt.date(2026, 12, 6)


async def test_without_any_rule_nothing_is_lent(demo):
    await CirculationRule.delete(force=True)
    with pytest.raises(Conflict) as refused:
        await service.checkout(ADMIN, "ZX", "ZX10000001", (await copies(CATERPILLAR, "available", "ZX"))[0], NOW)
    assert refused.value.code == "no_circulation_rule"


async def test_the_network_rule_cannot_be_removed(demo):
    rules = await policy.list_rules()
    network = next(rule for rule in rules if rule["is_network_rule"])
    with pytest.raises(Conflict):
        await policy.remove_rule(ADMIN, network["uuid"])
    librarian = staff_of(1)
    with pytest.raises(NotPermitted):
        await policy.save_rule(librarian, policy.RuleInput(loan_days=90))


async def test_a_late_return_is_noted_with_its_fine(demo):
    await policy.save_rule(ADMIN, policy.RuleInput(branch_code="ZX", item_type="picture_book", loan_days=21,
                                                   renewal_days=14, fine_cents_per_day=10))
    [barcode] = await copies(CATERPILLAR, "available", "ZX")
    lent = await service.checkout(ADMIN, "ZX", "JX20000001", barcode, NOW)
    late = dt.datetime.combine(lent.due_on + dt.timedelta(days=5), dt.time(3, 0), tzinfo=dt.timezone.utc)
    back = await service.checkin(ADMIN, "ZX", barcode, late)
    assert (back.days_overdue, back.fine_cents) == (5, 50)
    row = await Loan.select(Loan.days_overdue_at_return, Loan.fine_cents, Loan.returned_at).where(
        Loan.uuid == lent.loan_uuid).first()
    assert (row["days_overdue_at_return"], row["fine_cents"]) == (5, 50) and row["returned_at"] == late
