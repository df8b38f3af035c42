"""Sync follows the catalogue's matching: the same book from a branch becomes one record, a
different book under the same ISBN stays a record of its own and is flagged at the central node.

The adversary is a branch box that catalogued a donated picture book under the ISBN printed on
it, which the central library already has for another book (a publisher that reused the
number). Before, the branch's record silently became the central one — its copies then wore
another book's title. Now both records stay, the pair waits for a cataloguer, and what the
cataloguer decides (a merge) reaches the branch with the next sync round.

The first tests use one database as the central node (the demo network) and call its upload
handler directly, like tests/integration/test_sync_rules.py; the last one runs a central and a
branch node as real servers (tests/sync/nodes.py) and syncs between them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from library.accounts.principal import Principal
from library.branches.tables import AuditEntry, Branch
from library.catalog import duplicates
from library.catalog.tables import Item, PossibleDuplicate, Record
from library.demo import load_demo
from library.loans.tables import Hold
from library.sync import feed
from library.sync.apply import apply_upload, parse_upload
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncConflict, SyncOrigin
from tests.sync.conftest import BRANCH_STAFF, branch, central, templates  # noqa: F401 - the two-node fixtures
from tests.sync.nodes import Node, sync

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)
DONATED = "小熊宝宝绘本·刷牙（社区捐赠）"
CATALOGUER = Principal(kind="staff", id=1, uuid="cataloguer", name="编目员", language="zh_CN", role="librarian",
                       all_branches=True)


async def _branch(code: str) -> dict[str, Any]:
    row = (await Branch.raw("SELECT id, uuid, code FROM branch WHERE code = {}", code))[0]
    return {"id": row["id"], "uuid": str(row["uuid"]), "code": code}


@pytest.fixture
async def world() -> dict[str, Any]:
    await load_demo(TODAY)
    theirs = await Record.select(Record.id, Record.uuid, Record.isbn13, Record.title).where(
        Record.isbn13.is_not_null()).order_by(Record.id).first()
    central_uuid = str(theirs["uuid"])
    image = (await images_of(KINDS["record"], [central_uuid]))[central_uuid]
    zx = await _branch("ZX")
    copy = (await images_of(KINDS["item"], [str((await Item.select(Item.uuid).first())["uuid"])]))
    copy = next(iter(copy.values()))
    return {"ZX": zx, "XZ": await _branch("XZ"), "central": central_uuid, "central_id": theirs["id"],
            "central_image": image, "isbn13": theirs["isbn13"], "copy_image": copy}


def _record_image(world: dict[str, Any], title: str) -> dict[str, Any]:
    """The branch's own record: the same ISBN as a central record, whatever title."""
    return {**world["central_image"], "uuid": str(uuid.uuid4()), "title": title, "subtitle": "", "marc": "",
            "marc_source": "staff", "control_number": None}


def _copy_image(world: dict[str, Any], record: str, code: str = "ZX") -> dict[str, Any]:
    return {**world["copy_image"], "uuid": str(uuid.uuid4()), "record": record,
            "barcode": f"{code}9{uuid.uuid4().int % 10**8:08d}",
            "home_branch": world[code]["uuid"], "current_branch": world[code]["uuid"], "status": "available"}


def _change(kind: str, image: dict[str, Any] | None, entity: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "uuid": entity or image["uuid"], "image": image}


async def _upload(sender: dict[str, Any], *changes: dict[str, Any], upload: str | None = None) -> dict[str, Any]:
    upload, parsed = parse_upload({"uuid": upload or str(uuid.uuid4()), "changes": list(changes)})
    return await apply_upload(sender, upload, parsed, now=dt.datetime.now(dt.timezone.utc))


async def _pairs() -> list[dict[str, Any]]:
    return await PossibleDuplicate.select().order_by(PossibleDuplicate.id)


async def test_a_branch_box_that_catalogued_the_isbn_for_another_book_keeps_two_records_flagged_once(world):
    mine = _record_image(world, DONATED)
    copy = _copy_image(world, mine["uuid"])
    body = [_change("record", mine), _change("item", copy)]
    upload = str(uuid.uuid4())
    answer = await _upload(world["ZX"], *body, upload=upload)

    assert answer["aliases"] == {} and answer["conflicts"] == [], answer
    assert await Record.count().where(Record.isbn13 == world["isbn13"]) == 2
    landed = await Item.select(Item.record.uuid, Item.record.title).where(Item.uuid == copy["uuid"]).first()
    assert (str(landed["record.uuid"]), landed["record.title"]) == (mine["uuid"], DONATED), \
        "the donated copy keeps its own book's title"
    [pair] = await _pairs()
    mine_id = (await Record.select(Record.id).where(Record.uuid == mine["uuid"]).first())["id"]
    assert (pair["record"], pair["other"], pair["reason"], pair["status"], pair["found_by"]) == \
        (world["central_id"], mine_id, "isbn", "open", "sync ZX")
    assert await AuditEntry.count().where(AuditEntry.action == "record.possible_duplicate") == 1

    # The same upload again (its answer was lost), then an edit of the branch's record: one pair.
    again = await _upload(world["ZX"], *body, upload=upload)
    assert again["already_applied"]
    edited = await _upload(world["ZX"], _change("record", {**mine, "summary": "社区读者捐赠。"}))
    assert edited["conflicts"] == [] and edited["applied"] == 1
    assert len(await _pairs()) == 1


async def test_the_same_book_from_a_branch_still_becomes_one_record(world):
    # The same ISBN and the same title as the branch typed it (traditional characters, a stray
    # ISBD slash): the match point isbn+title says it is the central library's book.
    import opencc

    typed = opencc.OpenCC("s2t").convert(world["central_image"]["title"]) + " /"
    mine = {**_record_image(world, typed), "subtitle": world["central_image"]["subtitle"]}
    copy = _copy_image(world, mine["uuid"])
    answer = await _upload(world["ZX"], _change("record", mine), _change("item", copy))
    assert answer["aliases"] == {mine["uuid"]: world["central"]} and answer["alias_kinds"] == {mine["uuid"]: "record"}
    assert [c["rule"] for c in answer["conflicts"]] == ["merged_duplicate"]
    assert await Record.count().where(Record.isbn13 == world["isbn13"]) == 1
    attached = await Item.select(Item.record.uuid).where(Item.uuid == copy["uuid"]).first()
    assert str(attached["record.uuid"]) == world["central"]
    assert await _pairs() == []


async def test_a_pair_kept_apart_is_not_raised_again_and_another_box_with_the_same_book_joins_it(world):
    mine = _record_image(world, DONATED)
    await _upload(world["ZX"], _change("record", mine), _change("item", _copy_image(world, mine["uuid"])))
    [pair] = await _pairs()
    await duplicates.keep_apart(pair["id"], CATALOGUER, NOW)

    # ZX edits its record and catalogues a second copy: nothing is flagged again.
    await _upload(world["ZX"], _change("record", {**mine, "pages": 24}),
                  _change("item", _copy_image(world, mine["uuid"])))
    # XZ catalogued the same donated book: by isbn+title it is ZX's record, not the central one.
    theirs = _record_image(world, DONATED)
    answer = await _upload(world["XZ"], _change("record", theirs), _change("item", _copy_image(world, theirs["uuid"], "XZ")))
    assert answer["aliases"] == {theirs["uuid"]: mine["uuid"]}
    [still] = await _pairs()
    assert (still["id"], still["status"]) == (pair["id"], "kept_apart")
    assert await Record.count().where(Record.isbn13 == world["isbn13"]) == 2


async def test_after_a_merge_the_branch_hears_of_it_and_its_late_uploads_land_on_the_kept_record(world):
    mine = _record_image(world, DONATED)
    copy = _copy_image(world, mine["uuid"])
    await _upload(world["ZX"], _change("record", mine), _change("item", copy))
    before = (await feed.changes(world["ZX"], "", 2000))["cursor"]
    while (page := await feed.changes(world["ZX"], before, 2000))["more"]:
        before = page["cursor"]
    before = page["cursor"]
    [pair] = await _pairs()

    merged = await duplicates.merge(pair["id"], world["central"], CATALOGUER, NOW)
    assert (merged.kept, merged.removed, merged.copies) == (world["central"], mine["uuid"], 1)

    # The next page of ZX's feed: the copy on the kept record, the kept record, the other's tombstone.
    page = await feed.changes(world["ZX"], before, 2000)
    sent = {(c["kind"], c["uuid"]): c["image"] for c in page["changes"]}
    assert sent[("item", copy["uuid"])]["record"] == world["central"]
    assert ("record", world["central"]) in sent and sent[("record", mine["uuid"])] is None
    kinds = [c["kind"] for c in page["changes"]]
    assert kinds.index("record") < kinds.index("item"), "the kept record comes before the copy that moves onto it"

    # What ZX packaged before it heard: an edit of the merged-away record, a new copy and a hold on it.
    late_copy = _copy_image(world, mine["uuid"])
    reader = str((await Branch.raw("SELECT uuid FROM patron WHERE card_number = 'ZX10000001'"))[0]["uuid"])
    hold = {"uuid": str(uuid.uuid4()), "record": mine["uuid"], "patron": reader, "pickup_branch": world["ZX"]["uuid"],
            "status": "waiting", "placed_at": NOW.isoformat(), "item": None, "ready_at": None, "expires_on": None,
            "closed_at": None, "created_by": "branch desk", "updated_at": NOW.isoformat()}
    answer = await _upload(world["ZX"], _change("record", {**mine, "pages": 30}), _change("item", late_copy),
                           _change("hold", hold))
    assert answer["aliases"] == {mine["uuid"]: world["central"]} and answer["alias_kinds"] == {mine["uuid"]: "record"}
    assert [c for c in answer["conflicts"] if c["rule"] != "merged_duplicate"] == [], answer["conflicts"]
    assert await Record.count().where(Record.uuid == mine["uuid"]) == 0, "a merged-away record is not brought back"
    landed = await Item.select(Item.record.uuid).where(Item.uuid == late_copy["uuid"]).first()
    assert str(landed["record.uuid"]) == world["central"]
    held = await Hold.select(Hold.record.uuid).where(Hold.uuid == hold["uuid"]).first()
    assert str(held["record.uuid"]) == world["central"]
    assert await SyncConflict.count().where(SyncConflict.rule == "refused_by_database") == 0


async def test_an_alias_to_a_record_merged_away_is_followed_to_the_kept_one(world):
    # XZ's record became ZX's (same book); ZX's is then merged into the central record.
    mine = _record_image(world, DONATED)
    await _upload(world["ZX"], _change("record", mine), _change("item", _copy_image(world, mine["uuid"])))
    theirs = _record_image(world, DONATED)
    await _upload(world["XZ"], _change("record", theirs))
    [pair] = await _pairs()
    await duplicates.merge(pair["id"], world["central"], CATALOGUER, NOW)
    aliases = {row["entity_uuid"]: row["alias_of"] for row in await SyncOrigin.select().where(
        SyncOrigin.alias_of != "")}
    assert aliases == {mine["uuid"]: world["central"], theirs["uuid"]: world["central"]}
    late = _copy_image(world, theirs["uuid"], "XZ")
    await _upload(world["XZ"], _change("item", late))
    landed = await Item.select(Item.record.uuid).where(Item.uuid == late["uuid"]).first()
    assert str(landed["record.uuid"]) == world["central"]


# --- two real nodes ------------------------------------------------------------------------------


def test_a_merge_at_the_central_library_reaches_the_branch_with_the_next_round(central: Node, branch: Node):  # noqa: F811
    sync(branch)
    branch.start()
    desk = branch.staff(*BRANCH_STAFF)
    office = central.staff()
    # A book the central library has and ZX has no copy of: ZX never received its record.
    theirs = central.rows("SELECT r.uuid, r.isbn13, r.title FROM record r WHERE r.isbn13 IS NOT NULL AND NOT EXISTS "
                          "(SELECT 1 FROM item i JOIN branch b ON b.id = i.home_branch OR b.id = i.current_branch "
                          "WHERE i.record = r.id AND b.code = 'ZX') ORDER BY r.id LIMIT 1")[0]
    assert branch.count("record", "isbn13 = ?", theirs["isbn13"]) == 0

    # The branch box catalogues a donated book under the same ISBN, and a copy of it.
    mine = desk.new_record(title=DONATED, isbn=theirs["isbn13"], publisher="社区捐赠")["uuid"]
    [barcode] = desk.ok(desk.post(f"/api/records/{mine}/items", json={"branch": "ZX", "count": 1,
                                                                        "barcodes": ["ZXJZ-0001"]}))  # a donation label
    sync(branch)

    assert central.count("record", "isbn13 = ?", theirs["isbn13"]) == 2, "two books, two records"
    assert central.value("SELECT r.uuid FROM item i JOIN record r ON r.id = i.record WHERE i.barcode = ?",
                         barcode) == mine
    listing = office.ok(office.get("/api/catalog/duplicates/"))
    [pair] = listing["pairs"]
    assert (pair["found_by"], pair["reason"]) == ("sync ZX", "isbn")
    assert {pair["left"]["uuid"], pair["right"]["uuid"]} == {str(theirs["uuid"]), mine}
    # The desk at the branch can see its records but the central library's cataloguers decide.
    assert desk.get("/api/catalog/duplicates/").json()["total"] == 0, "the pair is the central node's"

    # The cataloguer finds it is in fact the same book (a typo on the donated copy): merge.
    merged = office.ok(office.post(f"/api/catalog/duplicates/{pair['id']}/merge", json={"keep": str(theirs["uuid"])}))
    assert merged["removed"] == mine and merged["copies"] == 1
    assert office.ok(office.get("/api/records", params={"q": "社区捐赠"}))["total"] == 0
    assert central.count("record", "uuid = ?", mine) == 0

    sync(branch)
    assert branch.count("record", "uuid = ?", mine) == 0, "the merged-away record is gone from the branch"
    assert branch.rows("SELECT r.uuid, r.title FROM item i JOIN record r ON r.id = i.record WHERE i.barcode = ?",
                       barcode) == [{"uuid": str(theirs["uuid"]), "title": theirs["title"]}]
    assert desk.ok(desk.get("/api/records", params={"q": "社区捐赠"}))["total"] == 0
    assert branch.count("sync_conflict") == 0 and central.count("sync_conflict", "rule != 'merged_duplicate'") == 0
    desk.close()
    office.close()
