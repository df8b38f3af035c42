"""Branch sync on one database acting as the central node: the feed's choices and the upload rules."""

import datetime as dt
import uuid

import pytest

from library.branches.tables import Branch
from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.errors import InvalidInput, NotSignedIn
from library.loans.tables import Loan
from library.sync import feed, service
from library.sync.apply import apply_upload, parse_upload
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncApplied, SyncConflict, SyncOrigin

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def zx():
    await load_demo(TODAY)
    row = (await Branch.raw("SELECT id, uuid, code FROM branch WHERE code = 'ZX'"))[0]
    return {"id": row["id"], "uuid": str(row["uuid"]), "code": "ZX"}


async def whole_feed(branch, limit=7):
    """Every page from an empty cursor to the end: (changes, cursors seen)."""
    cursor, changes, cursors = "", [], []
    while True:
        page = await feed.changes(branch, cursor, limit)
        changes += page["changes"]
        cursors.append(page["cursor"])
        cursor = page["cursor"]
        if not page["more"]:
            return changes, cursors


async def test_a_credential_names_its_branch_and_nothing_else_gets_in(zx):
    credential = await service.issue_credential("ZX", "test")
    assert (await service.branch_of_credential(f"Bearer {credential}"))["code"] == "ZX"
    code, _, secret = credential.partition(".")
    for header in (None, "", "Bearer", f"Bearer XZ.{secret}", f"Bearer ZX.{secret}x", f"Basic {credential}"):
        with pytest.raises(NotSignedIn):
            await service.branch_of_credential(header)
    assert await service.revoke_credentials("ZX", "test") == 1
    with pytest.raises(NotSignedIn):
        await service.branch_of_credential(f"Bearer {credential}")
    from library.branches.tables import AuditEntry
    revoked = await AuditEntry.select(AuditEntry.actor, AuditEntry.subject).where(
        AuditEntry.action == "sync.credentials_revoked")
    assert revoked == [{"actor": "test", "subject": "ZX"}], "revoking is written to the audit trail"


async def test_the_initial_sync_gives_a_branch_what_it_needs_in_dependency_order(zx):
    changes, cursors = await whole_feed(zx)
    kinds = [c["kind"] for c in changes]
    assert kinds == sorted(kinds, key=list(KINDS).index), "records must come before their copies, copies before loans"
    items = [c["image"] for c in changes if c["kind"] == "item"]
    at_zx = await Item.raw("SELECT uuid FROM item WHERE home_branch = {} OR current_branch = {}", zx["id"], zx["id"])
    assert {i["uuid"] for i in items} == {str(r["uuid"]) for r in at_zx}
    assert all(zx["uuid"] in (i["home_branch"], i["current_branch"]) for i in items)
    # every reader travels (one card everywhere); every record sent has a copy here
    patrons = [c for c in changes if c["kind"] == "patron"]
    assert len(patrons) == (await Branch.raw("SELECT COUNT(*) AS n FROM patron"))[0]["n"]
    record_uuids = {c["uuid"] for c in changes if c["kind"] == "record"}
    assert record_uuids == {i["record"] for i in items}
    branch_images = [c["image"] for c in changes if c["kind"] == "branch"]
    assert all(b["opening_periods"] for b in branch_images), "calendars travel with their branch"
    assert cursors[-1].startswith("log:")
    # the log since the snapshot began holds nothing new: the next page is empty and final
    page = await feed.changes(zx, cursors[-1])
    assert page["changes"] == [] and page["more"] is False


async def test_an_interrupted_initial_sync_resumes_at_the_next_page_without_repeats(zx):
    first = await feed.changes(zx, "", 5)
    second = await feed.changes(zx, first["cursor"], 5)
    again = await feed.changes(zx, first["cursor"], 5)  # the answer to page 2 was lost: ask again
    assert [c["uuid"] for c in second["changes"]] == [c["uuid"] for c in again["changes"]]
    everything, _ = await whole_feed(zx, limit=5)
    seen = [c["uuid"] for c in everything]
    assert len(seen) == len(set(seen))


async def test_the_log_sends_a_copy_that_leaves_the_branch_once_more_and_nothing_of_other_branches(zx):
    _, cursors = await whole_feed(zx)
    xz = (await Branch.raw("SELECT id FROM branch WHERE code = 'XZ'"))[0]["id"]
    jx = (await Branch.raw("SELECT id FROM branch WHERE code = 'JX'"))[0]["id"]
    leaving = (await Item.raw("SELECT uuid FROM item WHERE home_branch = {} AND status = 'available' LIMIT 1",
                              zx["id"]))[0]["uuid"]
    elsewhere = (await Item.raw("SELECT uuid FROM item WHERE home_branch = {} LIMIT 1", jx))[0]["uuid"]
    await Item.raw("UPDATE item SET home_branch = {}, current_branch = {} WHERE uuid = {}", xz, xz, str(leaving))
    await Item.raw("UPDATE item SET shelf_location = 'moved' WHERE uuid = {}", str(elsewhere))
    page = await feed.changes(zx, cursors[-1])
    sent = {c["uuid"]: c for c in page["changes"] if c["kind"] == "item"}
    assert str(leaving) in sent and sent[str(leaving)]["image"]["current_branch"] != zx["uuid"]
    assert str(elsewhere) not in sent
    # and after that, the copy at XZ is no longer this branch's business
    await Item.raw("UPDATE item SET shelf_location = 'XZ shelf' WHERE uuid = {}", str(leaving))
    later = await feed.changes(zx, page["cursor"])
    assert str(leaving) not in {c["uuid"] for c in later["changes"]}


async def test_a_bad_cursor_is_refused(zx):
    for cursor in ("nonsense", "log:-1", "snapshot:99:0:0", "log:x"):
        with pytest.raises(InvalidInput):
            await feed.changes(zx, cursor)


def _loan_image(item, patron, branch, loan_uuid=None, returned=False):
    return {"uuid": loan_uuid or str(uuid.uuid4()), "item": item, "patron": patron, "patron_category": "adult",
            "branch": branch, "rule": None, "rule_scope": "*|*|*", "checked_out_at": NOW.isoformat(),
            "due_on": "2026-12-26", "due_at": "2026-12-26T15:59:59+00:00", "renewals": 0, "last_renewed_at": None,
            "returned_at": NOW.isoformat() if returned else None, "returned_branch": branch if returned else None,
            "days_overdue_at_return": 0, "fine_cents": 0, "overrides": [], "created_by": "branch desk",
            "updated_at": NOW.isoformat()}


async def _available_copy(branch_id):
    row = (await Item.raw("SELECT uuid FROM item WHERE current_branch = {} AND status = 'available' LIMIT 1",
                          branch_id))[0]
    return str(row["uuid"])


async def _patron(card):
    return str((await Item.raw("SELECT uuid FROM patron WHERE card_number = {}", card))[0]["uuid"])


async def test_an_upload_is_applied_once_however_often_it_is_sent(zx):
    item = await _available_copy(zx["id"])
    image = (await images_of(KINDS["item"], [item]))[item]
    loan = _loan_image(item, await _patron("JX20000001"), zx["uuid"])
    body = {"uuid": str(uuid.uuid4()), "branch": "ZX", "changes": [
        {"kind": "loan", "uuid": loan["uuid"], "image": loan},
        {"kind": "item", "uuid": item, "image": {**image, "status": "on_loan", "due_back": "2026-12-26"}}]}
    upload, changes = parse_upload(body)
    assert [c["kind"] for c in changes] == ["item", "loan"], "copies are written before their loans"
    first = await apply_upload(zx, upload, changes)
    again = await apply_upload(zx, upload, changes)
    assert first["applied"] == 2 and first["already_applied"] is False
    assert again["already_applied"] is True and again["applied"] == 2
    assert await Loan.count().where(Loan.uuid == loan["uuid"]) == 1
    assert await SyncApplied.count() == 1
    assert (await Item.select(Item.status).where(Item.uuid == item).first())["status"] == "on_loan"


async def test_a_copy_lent_at_two_branches_while_offline_is_recorded_for_staff(zx):
    item = await _available_copy(zx["id"])
    central_loan = _loan_image(item, await _patron("ZX10000001"), zx["uuid"])
    await apply_upload(zx, str(uuid.uuid4()), parse_upload(
        {"uuid": str(uuid.uuid4()), "changes": [{"kind": "loan", "uuid": central_loan["uuid"],
                                                 "image": central_loan}]})[1])
    other = _loan_image(item, await _patron("JX20000001"), zx["uuid"])
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload(
        {"uuid": str(uuid.uuid4()), "changes": [{"kind": "loan", "uuid": other["uuid"], "image": other}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["lent_twice"]
    [conflict] = [c for c in await service.conflicts("open") if c["rule"] == "lent_twice"]
    assert conflict["detail"]["this_loan"]["card_number"] == "JX20000001"
    assert conflict["detail"]["other_loan"]["card_number"] == "ZX10000001"
    assert await Loan.count().where(Loan.uuid == other["uuid"]) == 0
    assert await Loan.count().where(Loan.uuid == central_loan["uuid"]) == 1


async def test_the_same_book_catalogued_on_both_sides_becomes_one_record(zx):
    central = await Record.select(Record.uuid, Record.isbn13).where(Record.isbn13.is_not_null()).first()
    mine = (await images_of(KINDS["record"], [str(central["uuid"])]))[str(central["uuid"])]
    # The same book by the match points (ISBN and title); the branch's entry differs elsewhere.
    mine = {**mine, "uuid": str(uuid.uuid4()), "summary": "branch's own entry"}
    copy = (await images_of(KINDS["item"], [await _available_copy(zx["id"])]))
    copy = {**next(iter(copy.values())), "uuid": str(uuid.uuid4()), "barcode": "ZX999999999", "record": mine["uuid"]}
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "item", "uuid": copy["uuid"], "image": copy},
        {"kind": "record", "uuid": mine["uuid"], "image": mine}]})[1])
    assert answer["aliases"] == {mine["uuid"]: str(central["uuid"])}
    assert await Record.count().where(Record.isbn13 == central["isbn13"]) == 1
    attached = await Item.select(Item.record.uuid).where(Item.barcode == "ZX999999999").first()
    assert str(attached["record.uuid"]) == str(central["uuid"])
    origin = await SyncOrigin.select().where(SyncOrigin.entity_uuid == mine["uuid"]).first()
    assert origin["alias_of"] == str(central["uuid"])


async def test_the_central_library_decides_bibliographic_data(zx):
    record = await Record.select(Record.uuid, Record.title).first()
    image = (await images_of(KINDS["record"], [str(record["uuid"])]))[str(record["uuid"])]
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "record", "uuid": image["uuid"], "image": {**image, "title": "edited at the branch"}}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["central_authority"]
    assert (await Record.select(Record.title).where(Record.uuid == record["uuid"]).first())["title"] == record["title"]


async def test_a_branch_cannot_move_a_copy_that_is_on_another_branchs_shelf(zx):
    jx = (await Branch.raw("SELECT id FROM branch WHERE code = 'JX'"))[0]["id"]
    item = await _available_copy(jx)
    image = (await images_of(KINDS["item"], [item]))[item]
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "item", "uuid": item, "image": {**image, "status": "lost"}}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["copy_elsewhere"]
    assert (await Item.select(Item.status).where(Item.uuid == item).first())["status"] == "available"


async def test_a_new_reader_with_a_taken_card_number_is_a_conflict(zx):
    someone = await _patron("JX20000001")
    image = (await images_of(KINDS["patron"], [someone]))[someone]
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "patron", "uuid": (new := str(uuid.uuid4())), "image": {**image, "uuid": new, "name": "另一位"}}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["duplicate_card"]


@pytest.mark.parametrize("body, fragment", [
    ([], "object"),
    ({"uuid": "nope", "changes": []}, "UUID"),
    ({"uuid": str(uuid.uuid4()), "changes": "x"}, "list"),
    ({"uuid": str(uuid.uuid4()), "changes": [{"kind": "branch", "uuid": str(uuid.uuid4()), "image": None}]},
     "cannot be uploaded"),
    ({"uuid": str(uuid.uuid4()), "changes": [{"kind": "loan", "uuid": (same := str(uuid.uuid4())),
                                              "image": {"uuid": same}}]}, "missing"),
    ({"uuid": str(uuid.uuid4()), "changes": [{"kind": "loan", "uuid": str(uuid.uuid4()), "image": {"uuid": "x"}}]},
     "UUID"),
])
def test_a_malformed_upload_is_refused_before_anything_is_written(body, fragment):
    with pytest.raises(InvalidInput) as refused:
        parse_upload(body)
    assert fragment in refused.value.params["detail"]


async def test_a_malformed_date_or_mismatched_uuid_is_refused(zx):
    item = await _available_copy(zx["id"])
    loan = _loan_image(item, await _patron("JX20000001"), zx["uuid"])
    for bad in ({**loan, "due_on": "26/12/2026"}, {**loan, "renewals": "two"}, {**loan, "uuid": str(uuid.uuid4())},
                {**loan, "checked_out_at": "2026-11-28T10:00:00"}):
        with pytest.raises(InvalidInput):
            parse_upload({"uuid": str(uuid.uuid4()), "changes": [{"kind": "loan", "uuid": loan["uuid"], "image": bad}]})


async def test_a_branch_loaded_from_another_systems_marc_export_has_the_copies_and_logs_them_to_send_up(zx):
    from library.catalog.batches import import_marc
    from library.catalog.export import export_marc

    exported = b"".join([chunk async for chunk in export_marc("marc21", "ZX")])
    before = sorted(r["barcode"] for r in await Item.raw(
        "SELECT barcode FROM item WHERE home_branch = {}", zx["id"]))
    for table in ("transit", "hold", "loan", "item", "record", "sync_change"):
        await Item.raw(f"DELETE FROM {table}")
    report = await import_marc(exported, "test", TODAY)
    after = await Item.raw("SELECT i.barcode, b.code FROM item i JOIN branch b ON b.id = i.home_branch")
    assert sorted(r["barcode"] for r in after) == before and {r["code"] for r in after} == {"ZX"}
    assert report.items_created == len(before)
    logged = await Item.raw("SELECT kind, COUNT(*) AS n FROM sync_change GROUP BY kind")
    assert {r["kind"]: r["n"] for r in logged}.get("item", 0) >= len(before), "imported copies wait to go up"


async def test_a_copy_the_branch_knows_by_another_uuid_is_the_same_copy_and_its_loan_lands_on_it(zx):
    from library.sync.apply import apply_upload

    central_uuid = await _available_copy(zx["id"])
    image = (await images_of(KINDS["item"], [central_uuid]))[central_uuid]
    mine = str(uuid.uuid4())  # loaded at the branch from another system's export
    loan = _loan_image(mine, await _patron("JX20000001"), zx["uuid"])
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "item", "uuid": mine, "image": {**image, "uuid": mine, "status": "on_loan"}},
        {"kind": "loan", "uuid": loan["uuid"], "image": loan}]})[1])
    assert answer["aliases"] == {mine: central_uuid} and answer["alias_kinds"] == {mine: "item"}
    assert [c["rule"] for c in answer["conflicts"]] == ["merged_duplicate"]
    assert await Item.count().where(Item.barcode == image["barcode"]) == 1
    landed = await Loan.select(Loan.item.uuid).where(Loan.uuid == loan["uuid"]).first()
    assert str(landed["item.uuid"]) == central_uuid


async def test_a_branch_row_under_another_uuid_takes_the_central_uuid_instead_of_doubling(zx):
    from library.sync.apply import apply_aliases, apply_page

    item = await _available_copy(zx["id"])
    image = (await images_of(KINDS["item"], [item]))[item]
    await Item.raw("DELETE FROM sync_change")  # nothing of ours waits to go up
    central = str(uuid.uuid4())
    await apply_page([{"kind": "item", "uuid": central, "image": {**image, "uuid": central,
                                                                    "shelf_location": "from central"}}], "log:1", snapshot=True)
    row = await Item.select(Item.uuid, Item.shelf_location).where(Item.barcode == image["barcode"]).first()
    assert (str(row["uuid"]), row["shelf_location"]) == (central, "from central")
    assert await Item.count().where(Item.barcode == image["barcode"]) == 1
    # a record the central node merged into one it has: everything that pointed at ours moves over
    records = await Record.select(Record.uuid).order_by(Record.id).limit(2)
    mine, theirs = str(records[0]["uuid"]), str(records[1]["uuid"])
    copies_before = await Item.count().where(Item.record.uuid.is_in([mine, theirs]))
    assert await apply_aliases({mine: theirs}, {mine: "record"}) == 0
    assert await Record.count().where(Record.uuid == mine) == 0
    assert await Item.count().where(Item.record.uuid == theirs) == copies_before
    assert (await Branch.raw("SELECT applying FROM sync_state WHERE id = 1"))[0]["applying"] in (False, 0)


async def test_compacting_the_log_keeps_what_every_branch_would_receive(zx):
    _, cursors = await whole_feed(zx)
    start = cursors[-1]
    xz = (await Branch.raw("SELECT id FROM branch WHERE code = 'XZ'"))[0]["id"]
    leaving = await _available_copy(zx["id"])
    await Item.raw("UPDATE item SET shelf_location = 'one' WHERE uuid = {}", leaving)
    await Item.raw("UPDATE item SET home_branch = {}, current_branch = {} WHERE uuid = {}", xz, xz, leaving)
    await Item.raw("UPDATE item SET shelf_location = 'two' WHERE uuid = {}", leaving)
    before = await feed.changes(zx, start)
    dropped = await feed.compact_log()
    after = await feed.changes(zx, start)
    assert dropped >= 2
    assert [(c["kind"], c["uuid"], c["image"]) for c in after["changes"]] == \
        [(c["kind"], c["uuid"], c["image"]) for c in before["changes"]]
    assert leaving in {c["uuid"] for c in after["changes"]}, "the copy that left ZX still reaches ZX once"
    assert await feed.compact_log() == 0


async def test_a_syncing_branch_node_leaves_loan_reminders_to_the_central_node(zx):
    import os

    from library.app import NOTICE_STEPS
    from library.notices.worker import run_cycle
    from library.settings import load_settings

    base = {**os.environ, "LIBRARY_SMTP_HOST": ""}
    loan = (await Loan.raw("SELECT id, patron FROM loan WHERE returned_at IS NULL AND patron IS NOT NULL LIMIT 1"))[0]
    await Loan.raw("UPDATE loan SET due_on = {}, due_at = {} WHERE id = {}", TODAY - dt.timedelta(days=5),
                   NOW - dt.timedelta(days=5), loan["id"])
    await Loan.raw("UPDATE patron SET email = 'reader@example.org' WHERE id = {}", loan["patron"])
    branch = load_settings({**base, "LIBRARY_NODE_ROLE": "branch", "LIBRARY_BRANCH_CODE": "ZX",
                            "LIBRARY_CENTRAL_URL": "http://127.0.0.1:9", "LIBRARY_SYNC_CREDENTIAL": "ZX.secret"})
    central = load_settings({**base, "LIBRARY_NODE_ROLE": "central"})
    assert sum((await run_cycle(NOW, branch, NOTICE_STEPS)).queued.values()) == 0
    assert sum((await run_cycle(NOW, central, NOTICE_STEPS)).queued.values()) > 0


async def test_the_node_that_runs_a_branch_empties_its_hold_shelf(zx):
    import os

    from library.loans.outbox import _hold_shelves_of_this_node
    from library.loans.service import expire_hold_shelf
    from library.settings import load_settings

    hold = (await Loan.raw("SELECT id, record FROM hold LIMIT 1"))[0]
    copy = (await Loan.raw("SELECT id FROM item WHERE record = {} LIMIT 1", hold["record"]))[0]
    await Loan.raw("UPDATE item SET status = 'on_hold_shelf', current_branch = {} WHERE id = {}", zx["id"], copy["id"])
    await Loan.raw("UPDATE hold SET status = 'ready', item = {}, pickup_branch = {}, expires_on = {} WHERE id = {}",
                   copy["id"], zx["id"], TODAY - dt.timedelta(days=2), hold["id"])
    await service.issue_credential("ZX", "test")  # ZX runs its own node
    central = load_settings({**os.environ, "LIBRARY_NODE_ROLE": "central"})
    branch = load_settings({**os.environ, "LIBRARY_NODE_ROLE": "branch", "LIBRARY_BRANCH_CODE": "ZX",
                            "LIBRARY_CENTRAL_URL": "http://127.0.0.1:9", "LIBRARY_SYNC_CREDENTIAL": "ZX.x"})
    assert await _hold_shelves_of_this_node(central) == (None, {"ZX"})
    assert await _hold_shelves_of_this_node(branch) == ({"ZX"}, set())
    assert await expire_hold_shelf(NOW, *await _hold_shelves_of_this_node(central)) == 0
    assert await expire_hold_shelf(NOW, *await _hold_shelves_of_this_node(branch)) == 1


async def _open_loan_of_zx_copy(zx):
    return (await Loan.raw("SELECT l.id, l.uuid, l.item FROM loan l JOIN item i ON i.id = l.item "
                           "WHERE l.returned_at IS NULL AND i.home_branch = {} LIMIT 1", zx["id"]))[0]


async def test_a_loan_closed_elsewhere_and_a_copy_arriving_with_its_loan_reach_the_branch(zx):
    _, cursors = await whole_feed(zx)
    jx = (await Branch.raw("SELECT id FROM branch WHERE code = 'JX'"))[0]["id"]
    loan = await _open_loan_of_zx_copy(zx)
    await Loan.raw("UPDATE loan SET returned_at = {}, returned_branch = {}, branch = {} WHERE id = {}",
                   NOW, jx, jx, loan["id"])
    page = await feed.changes(zx, cursors[-1])
    closed = [c for c in page["changes"] if c["kind"] == "loan" and c["uuid"] == str(loan["uuid"])]
    assert closed and closed[0]["image"]["returned_at"] is not None
    # a JX copy out on loan is rotated to ZX: its open loan comes with it
    lent = (await Loan.raw("SELECT l.uuid, l.item FROM loan l JOIN item i ON i.id = l.item "
                           "WHERE l.returned_at IS NULL AND i.home_branch = {} LIMIT 1", jx))[0]
    await Item.raw("UPDATE item SET home_branch = {} WHERE id = {}", zx["id"], lent["item"])
    later = await feed.changes(zx, page["cursor"])
    assert str(lent["uuid"]) in {c["uuid"] for c in later["changes"] if c["kind"] == "loan"}


async def test_a_branch_cannot_delete_or_take_over_another_branchs_loan_nor_lend_to_a_reader_it_lacks(zx):
    jx = (await Branch.raw("SELECT id, uuid FROM branch WHERE code = 'JX'"))[0]
    theirs = (await Loan.raw("SELECT l.uuid FROM loan l JOIN item i ON i.id = l.item WHERE l.branch = {} "
                             "AND i.current_branch = {} AND l.returned_at IS NULL LIMIT 1", jx["id"], jx["id"]))
    if theirs:
        answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
            {"kind": "loan", "uuid": str(theirs[0]["uuid"]), "image": None}]})[1])
        assert [c["rule"] for c in answer["conflicts"]] == ["not_this_branch"]
        assert await Loan.count().where(Loan.uuid == theirs[0]["uuid"]) == 1
    item = await _available_copy(zx["id"])
    stranger = _loan_image(item, str(uuid.uuid4()), zx["uuid"])  # a reader the central node never heard of
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "loan", "uuid": stranger["uuid"], "image": stranger}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["refused_by_database"]
    assert await Loan.count().where(Loan.uuid == stranger["uuid"]) == 0


async def test_a_refused_change_is_sent_back_to_the_branch_as_the_central_version(zx):
    _, cursors = await whole_feed(zx)
    record = (await images_of(KINDS["record"], [str((await Item.raw(
        "SELECT r.uuid FROM record r JOIN item i ON i.record = r.id WHERE i.home_branch = {} LIMIT 1",
        zx["id"]))[0]["uuid"])]))
    image = next(iter(record.values()))
    await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "record", "uuid": image["uuid"], "image": {**image, "title": "BRANCH EDIT"}}]})[1])
    page = await feed.changes(zx, cursors[-1])
    back = [c["image"] for c in page["changes"] if c["uuid"] == image["uuid"]]
    assert back and back[0]["title"] == image["title"]


async def test_a_hold_closed_centrally_is_not_reopened_by_a_branch(zx):
    hold = (await Loan.raw("SELECT uuid FROM hold LIMIT 1"))[0]
    image = (await images_of(KINDS["hold"], [str(hold["uuid"])]))[str(hold["uuid"])]
    await Loan.raw("UPDATE hold SET status = 'cancelled' WHERE uuid = {}", str(hold["uuid"]))
    answer = await apply_upload(zx, str(uuid.uuid4()), parse_upload({"uuid": str(uuid.uuid4()), "changes": [
        {"kind": "hold", "uuid": image["uuid"], "image": {**image, "status": "in_transit"}}]})[1])
    assert [c["rule"] for c in answer["conflicts"]] == ["hold_closed"]
    assert (await Loan.raw("SELECT status FROM hold WHERE uuid = {}", str(hold["uuid"])))[0]["status"] == "cancelled"


async def test_a_cursor_beyond_any_sequence_is_refused_not_a_crash(zx):
    for cursor in ("log:99999999999999999999", "snapshot:0:99999999999999999999:0"):
        with pytest.raises(InvalidInput):
            await feed.changes(zx, cursor)
