"""Possible duplicates: a librarian merges two records into one, or keeps them apart.

The adversary is a publisher that reused one ISBN for two books of a set (《小熊宝宝绘本·午饭》
and 《小熊宝宝绘本·刷牙》 under 978-7-5332-xxxx, as Chinese publishers do): the catalogue keeps two
records and flags the pair; merging must leave no copy, hold or reading-log entry behind, a
reader who held both books keeps one hold, and a pair already decided is never decided again.
Also: who may decide (a branch librarian may look, not merge; a reader may not look).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from library.accounts.principal import Principal
from library.activities.challenge import log_reading
from library.activities.tables import Programme, ReadingLog
from library.app import create_app
from library.branches.tables import AuditEntry, Branch
from library.catalog import duplicates, service
from library.catalog.records import RecordInput
from library.catalog.search import SearchFilters
from library.catalog.service import NewCopies
from library.catalog.tables import Item, PossibleDuplicate, Record
from library.db import json_list, json_object
from library.demo import load_demo
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from library.loans import rules as loans_rules
from library.loans import service as loans
from library.loans.tables import Hold
from library.settings import load_settings
from library.sync.tables import SyncOrigin
from tests.support import client_for, csrf_token_from, sign_in_patron, sign_in_staff

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)
SHARED_ISBN = "978-7-5332-7826-7"
LUNCH = RecordInput(title="小熊宝宝绘本·午饭", isbn=SHARED_ISBN, contributors=[{"name": "佐佐木洋子", "role": "author"}],
                    publisher="二十一世纪出版社", publication_year=2016, clc="I313.85")
TEETH = RecordInput(title="小熊宝宝绘本·刷牙", isbn=SHARED_ISBN, other_isbns=["978-7-5391-4542-6"],
                    contributors=[{"name": "佐佐木洋子", "role": "author"}], publisher="二十一世纪出版社",
                    publication_year=2017, clc="I313.85", summary="小熊刷牙。")

CATALOGUER = Principal(kind="staff", id=1, uuid="cataloguer", name="编目员", language="zh_CN", role="librarian",
                       all_branches=True)


async def _branch_ids(*codes: str) -> frozenset[int]:
    return frozenset(row["id"] for row in await Branch.select(Branch.id).where(Branch.code.is_in(list(codes))))


async def _record(data: RecordInput) -> dict:
    uuid_ = await service.create_record(data, "test", TODAY)
    row = await Record.select(Record.id, Record.uuid).where(Record.uuid == uuid_).first()
    return {"id": row["id"], "uuid": str(row["uuid"])}


async def _copies(record: dict, branch: str, count: int) -> list[str]:
    desk = Principal(kind="staff", id=2, uuid="desk", name="desk", language="zh_CN", role="librarian",
                     branch_ids=await _branch_ids(branch))
    return await service.add_items(desk, record["uuid"], NewCopies(branch_code=branch, count=count))


@pytest.fixture
async def pair() -> dict:
    """Two books of one set under one ISBN, each with copies, flagged by an import."""
    await load_demo(TODAY, books=False)
    lunch, teeth = await _record(LUNCH), await _record(TEETH)
    await _copies(lunch, "ZX", 1)
    await _copies(teeth, "ZX", 1)
    await _copies(teeth, "JX", 2)
    # cataloguing 刷牙 at the desk flagged it against 午饭 already; an import finding it again changes nothing
    pair_id = await duplicates.flag(teeth["id"], lunch["id"], "isbn", "import vendor-2026-11")
    assert await PossibleDuplicate.count() == 1
    return {"id": pair_id, "lunch": lunch, "teeth": teeth}


async def _hold(record: dict, card: str, at: dt.datetime, pickup: str = "ZX") -> str:
    return (await loans.place_hold(CATALOGUER, record["uuid"], pickup, at, card_number=card))["uuid"]


# --- flagging -------------------------------------------------------------------------------------


async def test_a_pair_is_flagged_once_in_either_order_and_never_against_itself(pair):
    lunch, teeth = pair["lunch"]["id"], pair["teeth"]["id"]
    assert await duplicates.flag(lunch, teeth, "isbn", "import again") == pair["id"]
    assert await duplicates.flag(teeth, lunch, "control_number", "sync ZX") == pair["id"]
    assert await duplicates.flag(lunch, lunch, "isbn", "import") is None
    rows = await PossibleDuplicate.select().where(PossibleDuplicate.id == pair["id"])
    assert len(rows) == 1 and await PossibleDuplicate.count() == 1
    # the older record first, and the first finder stands (the desk that catalogued 刷牙)
    assert (rows[0]["record"], rows[0]["other"], rows[0]["reason"], rows[0]["found_by"]) == \
        (lunch, teeth, "isbn", "staff test")


async def test_the_list_shows_both_records_side_by_side_with_their_copies_and_holds(pair):
    await _hold(pair["teeth"], "JX20000001", NOW)
    listing = await duplicates.open_pairs()
    assert listing["total"] == 1
    [shown] = listing["pairs"]
    assert (shown["left"]["title"], shown["right"]["title"]) == (LUNCH.title, TEETH.title)
    assert (shown["left"]["copies"], shown["right"]["copies"]) == (1, 3)
    assert (shown["left"]["holds"], shown["right"]["holds"]) == (0, 1)
    detail = await duplicates.pair_detail(pair["id"])
    assert set(detail["differs"]) == {"title", "publication_year", "other_isbns", "summary"}
    assert {item["branch"] for item in detail["right"]["items"]} == {"ZX", "JX"}


# --- merging ----------------------------------------------------------------------------------------


async def test_a_merge_moves_copies_holds_and_reading_logs_and_the_other_record_is_gone(pair):
    lunch, teeth = pair["lunch"], pair["teeth"]
    # 王芳 held 午饭 first, then 刷牙: one hold survives (the earlier); 张建国 held only 刷牙.
    earlier = await _hold(lunch, "ZX10000001", NOW - dt.timedelta(days=2))
    later = await _hold(teeth, "ZX10000001", NOW - dt.timedelta(days=1))
    only = await _hold(teeth, "JX20000001", NOW)
    programme = str((await Programme.select(Programme.uuid).first())["uuid"])
    await log_reading(CATALOGUER, programme, "ZX10000002", "", TODAY, record_uuid=teeth["uuid"])
    teeth_copies = {row["barcode"] for row in await Item.select(Item.barcode).where(Item.record == teeth["id"])}

    merged = await duplicates.merge(pair["id"], lunch["uuid"], CATALOGUER, NOW)

    assert (merged.kept, merged.removed, merged.copies, merged.holds) == (lunch["uuid"], teeth["uuid"], 3, 2)
    assert merged.references == {"reading_log": 1}
    assert merged.holds_cancelled == [{"hold": later, "card_number": "ZX10000001"}]
    assert await Record.count().where(Record.uuid == teeth["uuid"]) == 0
    on_lunch = {row["barcode"] for row in await Item.select(Item.barcode).where(Item.record == lunch["id"])}
    assert teeth_copies < on_lunch and len(on_lunch) == 4
    holds = {str(row["uuid"]): row for row in await Hold.select(Hold.uuid, Hold.status, Hold.record)}
    assert holds[earlier]["status"] == "waiting" and holds[only]["status"] == "waiting"
    assert holds[later]["status"] == "cancelled"
    assert {row["record"] for row in holds.values()} == {lunch["id"]}
    assert (await ReadingLog.select(ReadingLog.record).first())["record"] == lunch["id"]
    # The kept record keeps its own values and gains the other's ISBNs; search follows.
    kept = await service.record_detail(lunch["uuid"])
    assert (kept["title"], kept["publication_year"], kept["summary"]) == (LUNCH.title, 2016, "")
    assert kept["other_isbns"] == ["9787539145426"]
    edits = (await Record.select(Record.local_edits).where(Record.id == lunch["id"]).first())["local_edits"]
    assert json_list(edits) == ["identifiers"], \
        "a re-import of 午饭's vendor record keeps the merged ISBNs (and nothing else counts as edited)"
    assert (await service.search("刷牙", SearchFilters()))["total"] == 0
    assert [hit["uuid"] for hit in (await service.search("9787539145426", SearchFilters()))["hits"]] == [lunch["uuid"]]
    # The pair is gone with the record; the audit trail keeps what was merged away.
    assert await PossibleDuplicate.count() == 0
    entry = await AuditEntry.select(AuditEntry.actor, AuditEntry.detail).where(
        AuditEntry.action == "record.merged").first()
    assert entry["actor"] == "staff:cataloguer"
    detail = json_object(entry["detail"])
    assert detail["removed_record"]["title"] == TEETH.title and detail["removed"] == teeth["uuid"]
    assert await AuditEntry.count().where((AuditEntry.action == "hold.cancelled")
                                          & (AuditEntry.subject == f"hold:{later}")) == 1
    # What branches upload later about the removed record lands on the kept one.
    alias = await SyncOrigin.select(SyncOrigin.alias_of).where(SyncOrigin.entity_uuid == teeth["uuid"]).first()
    assert alias["alias_of"] == lunch["uuid"]
    # The moves and the deletion are changes the branches receive like any other.
    logged = await Branch.raw("SELECT kind, entity_uuid FROM sync_change")
    assert ("record", teeth["uuid"]) in {(row["kind"], row["entity_uuid"]) for row in logged}
    assert {row["entity_uuid"] for row in logged if row["kind"] == "hold"} >= {later, only}


async def test_the_hold_with_a_copy_set_aside_stays_whichever_is_earlier(pair):
    lunch, teeth = pair["lunch"], pair["teeth"]
    waiting = await _hold(lunch, "ZX10000001", NOW - dt.timedelta(days=3))
    trapped = await _hold(teeth, "ZX10000001", NOW)
    copy = (await Item.select(Item.id).where(Item.record == teeth["id"]).first())["id"]
    await Hold.update({Hold.status: "ready", Hold.item: copy}).where(Hold.uuid == trapped)
    merged = await duplicates.merge(pair["id"], lunch["uuid"], CATALOGUER, NOW)
    assert merged.holds_cancelled == [{"hold": waiting, "card_number": "ZX10000001"}]
    statuses = {str(row["uuid"]): row["status"] for row in await Hold.select(Hold.uuid, Hold.status)}
    assert statuses == {waiting: "cancelled", trapped: "ready"}


async def test_a_reader_with_copies_set_aside_on_both_records_stops_the_merge_and_nothing_moves(pair):
    lunch, teeth = pair["lunch"], pair["teeth"]
    for record in (lunch, teeth):
        hold = await _hold(record, "ZX10000001", NOW)
        copy = (await Item.select(Item.id).where(Item.record == record["id"]).first())["id"]
        await Hold.update({Hold.status: "ready", Hold.item: copy}).where(Hold.uuid == hold)
    with pytest.raises(Conflict) as refused:
        await duplicates.merge(pair["id"], lunch["uuid"], CATALOGUER, NOW)
    assert refused.value.code == "duplicate_holds_set_aside" and "ZX10000001" in refused.value.message()
    assert await Record.count().where(Record.uuid == teeth["uuid"]) == 1
    assert await Item.count().where(Item.record == teeth["id"]) == 3
    assert (await PossibleDuplicate.select(PossibleDuplicate.status).first())["status"] == "open"


async def test_the_other_pairs_of_the_merged_away_record_carry_over_to_the_kept_one(pair):
    # A third book of the set under the same ISBN, flagged (by an import) against 刷牙 only.
    rows = await Record.insert(Record(title="小熊宝宝绘本·洗澡", isbn13="9787533278267")).returning(Record.id)
    bath = {"id": rows[0]["id"]}
    await duplicates.flag(pair["teeth"]["id"], bath["id"], "isbn", "import vendor-2026-12")
    await duplicates.merge(pair["id"], pair["lunch"]["uuid"], CATALOGUER, NOW)
    [left] = await PossibleDuplicate.select()
    assert (left["record"], left["other"], left["status"], left["found_by"]) == \
        (pair["lunch"]["id"], bath["id"], "open", "import vendor-2026-12")


# --- refusals ----------------------------------------------------------------------------------------


async def test_a_pair_kept_apart_is_closed_and_a_later_import_does_not_raise_it_again(pair):
    await duplicates.keep_apart(pair["id"], CATALOGUER, NOW)
    assert (await duplicates.open_pairs())["total"] == 0
    assert await duplicates.flag(pair["lunch"]["id"], pair["teeth"]["id"], "isbn", "import again") == pair["id"]
    row = await PossibleDuplicate.select().first()
    assert (row["status"], row["decided_by"]) == ("kept_apart", "staff:cataloguer")
    with pytest.raises(Conflict) as refused:
        await duplicates.merge(pair["id"], pair["lunch"]["uuid"], CATALOGUER, NOW)
    assert refused.value.code == "duplicate_kept_apart"
    with pytest.raises(Conflict):
        await duplicates.keep_apart(pair["id"], CATALOGUER, NOW)
    assert await Record.count() == 2


async def test_a_pair_merged_or_with_a_record_gone_is_refused_clearly(pair):
    await duplicates.merge(pair["id"], pair["teeth"]["uuid"], CATALOGUER, NOW)
    with pytest.raises(NotFound) as refused:
        await duplicates.merge(pair["id"], pair["teeth"]["uuid"], CATALOGUER, NOW)
    assert refused.value.code == "duplicate_not_found"
    with pytest.raises(NotFound):
        await duplicates.keep_apart(pair["id"], CATALOGUER, NOW)
    # a record deleted by hand meanwhile takes its pairs with it
    lone = await _record(RecordInput(title="小熊宝宝绘本·午饭（重印）", isbn=SHARED_ISBN))
    again = await duplicates.flag(pair["teeth"]["id"], lone["id"], "isbn", "import")
    await Record.delete().where(Record.id == lone["id"])
    with pytest.raises(NotFound):
        await duplicates.merge(again, pair["teeth"]["uuid"], CATALOGUER, NOW)


async def test_two_cataloguers_merging_the_same_pair_at_once_merge_it_once(pair):
    outcomes = await asyncio.gather(
        duplicates.merge(pair["id"], pair["lunch"]["uuid"], CATALOGUER, NOW),
        duplicates.merge(pair["id"], pair["teeth"]["uuid"], CATALOGUER, NOW), return_exceptions=True)
    merged = [o for o in outcomes if isinstance(o, duplicates.Merged)]
    refused = [o for o in outcomes if not isinstance(o, duplicates.Merged)]
    assert len(merged) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], (NotFound, Conflict)), refused
    assert await Record.count() == 1 and await Item.count() == 4


async def test_keeping_a_record_outside_the_pair_is_refused(pair):
    with pytest.raises(InvalidInput) as refused:
        await duplicates.merge(pair["id"], str(uuid.uuid4()), CATALOGUER, NOW)
    assert refused.value.field == "keep"
    with pytest.raises(InvalidInput):
        await duplicates.merge(pair["id"], "not a uuid", CATALOGUER, NOW)
    assert await Record.count() == 2


async def test_only_the_networks_cataloguers_decide_and_not_on_a_branch_node(pair):
    zx_librarian = Principal(kind="staff", id=3, uuid="zx", name="周晓琳", language="zh_CN", role="librarian",
                             branch_ids=await _branch_ids("ZX"))
    reader = Principal(kind="patron", id=4, uuid="reader", name="王芳", language="zh_CN")
    for who in (zx_librarian, reader):
        with pytest.raises(NotPermitted):
            await duplicates.merge(pair["id"], pair["lunch"]["uuid"], who, NOW)
        with pytest.raises(NotPermitted):
            await duplicates.keep_apart(pair["id"], who, NOW)
    administrator = Principal(kind="staff", id=5, uuid="admin", name="admin", language="zh_CN",
                              role="administrator", branch_ids=await _branch_ids("JX"))
    assert duplicates.may_decide(administrator)
    with pytest.raises(Conflict) as refused:
        await duplicates.merge(pair["id"], pair["lunch"]["uuid"], administrator, NOW, records_are_central=True)
    assert refused.value.code == "duplicate_at_branch_node"
    assert await Record.count() == 2


# --- the rules, as tables ------------------------------------------------------------------------------


@pytest.mark.parametrize("on_kept, on_other, going", [
    (("waiting", 1), ("waiting", 2), "other"),  # the earlier stays
    (("waiting", 2), ("waiting", 1), "kept"),
    (("waiting", 1), ("waiting", 1), "other"),  # a tie: the kept record's hold stays
    (("waiting", 1), ("ready", 2), "kept"),  # a copy on the hold shelf for the later one
    (("in_transit", 2), ("waiting", 1), "other"),  # a copy on its way for the later one
    (("ready", 1), ("in_transit", 2), None),  # a copy set aside for each: a person decides
])
def test_which_of_a_readers_two_holds_goes(on_kept, on_other, going):
    def hold(status, day):
        return {"status": status, "placed_at": dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc)}

    assert loans_rules.hold_to_cancel(hold(*on_kept), hold(*on_other)) == going


def test_the_merged_isbns_are_each_listed_once_and_never_the_kept_records_own():
    kept = {"isbn13": "9787533278267", "other_isbns": ["9787539145426"]}
    other = {"isbn13": "9787533278267", "other_isbns": ["9787539145426", "9787020002207"]}
    assert duplicates.merged_isbns(kept, other) == ["9787539145426", "9787020002207"]
    assert duplicates.merged_isbns({"isbn13": None, "other_isbns": []}, {"isbn13": None, "other_isbns": []}) == []


def test_the_fields_that_differ_are_named_once_whatever_the_order_of_lists():
    left = {"title": "午饭", "contributors": [{"name": "佐佐木洋子", "role": "author"}], "subjects": ["a", "b"],
            "age_min": 2, "age_max": 5, "summary": ""}
    right = {"title": "刷牙", "contributors": [{"name": "佐佐木洋子", "role": "author"}], "subjects": ["b", "a"],
             "age_min": 2, "age_max": 6, "summary": None}
    assert duplicates.differing_fields(left, right) == ["title", "age"]


# --- the pages and the API ------------------------------------------------------------------------------


@pytest.fixture
async def client(pair):
    app = create_app(load_settings())
    async with client_for(app) as client:
        yield client


async def test_a_branch_librarian_sees_the_pairs_but_cannot_merge_and_a_reader_cannot_look(pair, client):
    await sign_in_staff(client)  # 周晓琳, librarian at ZX
    listing = await client.get("/staff/catalog/duplicates/", headers={"Accept-Language": "en"})
    assert listing.status_code == 200 and LUNCH.title in listing.text and "data-read-only" in listing.text
    page = await client.get(f"/staff/catalog/duplicates/{pair['id']}")
    assert page.status_code == 200 and "data-decide" not in page.text
    token = csrf_token_from(page.text)
    refused = await client.post(f"/staff/catalog/duplicates/{pair['id']}/merge",
                                data={"keep": pair["lunch"]["uuid"], "_csrf_token": token})
    assert refused.status_code == 403
    api = await client.post(f"/api/catalog/duplicates/{pair['id']}/merge", json={"keep": pair["lunch"]["uuid"]},
                            headers={"x-csrftoken": client.cookies["library_csrf"]})
    assert api.status_code == 403 and api.json()["title"]
    assert await Record.count() == 2

    await client.post("/signout", data={"_csrf_token": token})
    client.cookies.clear()
    await sign_in_patron(client)
    assert (await client.get("/staff/catalog/duplicates/")).status_code == 403
    assert (await client.get("/api/catalog/duplicates/")).status_code == 403


async def test_a_cataloguer_compares_the_pair_and_merges_it_on_the_page_in_either_language(pair, client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    page = await client.get(f"/staff/catalog/duplicates/{pair['id']}", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert 'data-field="title" class="differs"' in page.text and 'data-field="publisher" class' not in page.text
    client.cookies.set("lang", "en")
    page = await client.get(f"/staff/catalog/duplicates/{pair['id']}")
    assert "Possible duplicate" in page.text and "Merge, keep B" in page.text
    token = csrf_token_from(page.text)
    # a form without its CSRF token changes nothing
    forged = await client.post(f"/staff/catalog/duplicates/{pair['id']}/merge", data={"keep": pair["teeth"]["uuid"]})
    assert forged.status_code == 403 and await Record.count() == 2
    done = await client.post(f"/staff/catalog/duplicates/{pair['id']}/merge",
                             data={"keep": pair["teeth"]["uuid"], "_csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith(pair["teeth"]["uuid"])
    assert await Record.count() == 1
    # the same button pressed again (a second tab): a clear page, not a 500
    again = await client.post(f"/staff/catalog/duplicates/{pair['id']}/merge",
                              data={"keep": pair["teeth"]["uuid"], "_csrf_token": token})
    assert again.status_code == 404 and "merged or deleted meanwhile" in again.text


async def test_the_api_lists_keeps_apart_and_refuses_a_decided_pair(pair, client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    headers = {"x-csrftoken": client.cookies["library_csrf"]}
    listing = (await client.get("/api/catalog/duplicates/")).json()
    assert listing["total"] == 1 and listing["pairs"][0]["right"]["copies"] == 3
    one = (await client.get(f"/api/catalog/duplicates/{pair['id']}")).json()
    assert "title" in one["differs"]
    assert (await client.post(f"/api/catalog/duplicates/{pair['id']}/keep-apart", headers=headers)).status_code == 204
    decided = await client.get(f"/staff/catalog/duplicates/{pair['id']}", headers={"Accept-Language": "en"})
    assert 'data-status="kept_apart"' in decided.text and "Network administrator" in decided.text
    assert "data-decide" not in decided.text, "a decided pair offers no buttons"
    refused = await client.post(f"/api/catalog/duplicates/{pair['id']}/merge", json={"keep": pair["lunch"]["uuid"]},
                                headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "duplicate_kept_apart"
    assert (await client.get("/api/catalog/duplicates/nonsense")).status_code == 404
    assert (await client.get("/api/catalog/duplicates/")).json()["total"] == 0
