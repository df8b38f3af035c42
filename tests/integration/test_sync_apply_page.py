"""A branch writing a page of the central node's feed: a row the database refuses does not stop the rest."""

import datetime as dt
import uuid

import pytest

from library.branches.tables import Branch
from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.sync.apply import apply_page
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncConflict

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def images():
    await load_demo(TODAY)
    record = (await Record.raw("SELECT uuid FROM record ORDER BY id LIMIT 1"))[0]["uuid"]
    item = (await Item.raw("SELECT uuid FROM item ORDER BY id LIMIT 1"))[0]["uuid"]
    await Item.raw("DELETE FROM sync_change")  # nothing of the branch's own waits to go up
    return ((await images_of(KINDS["record"], [str(record)]))[str(record)],
            (await images_of(KINDS["item"], [str(item)]))[str(item)])


def _new_record(image, title, **changes):
    return {**image, "uuid": str(uuid.uuid4()), "isbn13": None, "control_number": f"T-{uuid.uuid4()}",
            "title": title, **changes}


async def test_a_refused_row_is_named_and_the_rest_of_the_page_is_written(images):
    record, item = images
    good = _new_record(record, "好饿的毛毛虫")
    bad = _new_record(record, "年龄倒过来", age_min=9, age_max=3)  # the table's check refuses it
    copy = {**item, "uuid": str(uuid.uuid4()), "barcode": "PAGE0000001", "record": good["uuid"]}
    moved = {**item, "shelf_location": "新书架"}
    changes = [{"kind": "record", "uuid": r["uuid"], "image": r} for r in (good, bad)] + \
              [{"kind": "item", "uuid": i["uuid"], "image": i} for i in (copy, moved)]

    counts = await apply_page(changes, "log:42")

    assert counts == {"written": 3, "deleted": 0, "kept_local": 0, "refused": 1}
    assert await Record.count().where(Record.uuid == good["uuid"]) == 1
    assert await Record.count().where(Record.uuid == bad["uuid"]) == 0
    landed = await Item.select(Item.record.uuid, Item.barcode).where(Item.uuid == copy["uuid"]).first()
    assert (str(landed["record.uuid"]), landed["barcode"]) == (good["uuid"], "PAGE0000001")
    assert (await Item.select(Item.shelf_location).where(Item.uuid == item["uuid"]).first())["shelf_location"] \
        == "新书架"
    conflicts = await SyncConflict.select(SyncConflict.rule, SyncConflict.entity_uuid, SyncConflict.kind)
    assert [(c["rule"], c["kind"], c["entity_uuid"]) for c in conflicts] == [("not_applied_here", "record", bad["uuid"])]
    state = (await Branch.raw("SELECT applying, cursor FROM sync_state WHERE id = 1"))[0]
    assert (bool(state["applying"]), state["cursor"]) == (False, "log:42")
    # the branch's apply logs nothing to send back up
    assert (await Branch.raw("SELECT COUNT(*) AS n FROM sync_change"))[0]["n"] == 0


async def test_a_page_written_twice_is_the_same_as_once(images):
    record, item = images
    good = _new_record(record, "猜猜我有多爱你")
    copy = {**item, "uuid": str(uuid.uuid4()), "barcode": "PAGE0000002", "record": good["uuid"]}
    changes = [{"kind": "record", "uuid": good["uuid"], "image": good},
               {"kind": "item", "uuid": copy["uuid"], "image": copy}]
    first = await apply_page(changes, "log:7")
    again = await apply_page(changes, "log:7")
    assert first == again == {"written": 2, "deleted": 0, "kept_local": 0, "refused": 0}
    assert (await images_of(KINDS["item"], [copy["uuid"]]))[copy["uuid"]] == copy
    assert (await images_of(KINDS["record"], [good["uuid"]]))[good["uuid"]] == good
