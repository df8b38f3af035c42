"""Sync over HTTP on one node: the API's refusals, an upload applied once, the staff page and a rotation."""

import datetime as dt
import os
import uuid

import pytest

from library.app import create_app
from library.catalog.tables import Item
from library.demo import load_demo
from library.loans.tables import Transit
from library.settings import load_settings
from library.sync import service
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncApplied, Transfer
from tests.support import client_for, csrf_token_from, empty_all_tables, sign_in_staff


@pytest.fixture
async def demo():
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28))


@pytest.fixture
def app():
    return create_app(load_settings({**os.environ, "LIBRARY_NODE_ROLE": "central"}))


@pytest.fixture
async def credential(client):
    return await service.issue_credential("ZX", "test")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", "Accept-Language": "en"}


async def test_the_feed_needs_the_branchs_own_credential(client, credential):
    refused = await client.get("/api/sync/changes", headers={"Accept-Language": "en"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "sync_credential"
    assert "credential" in refused.json()["detail"]
    wrong = await client.get("/api/sync/changes", headers=bearer(credential + "x"))
    assert wrong.status_code == 401
    other = await client.get("/api/sync/changes", params={"branch": "XZ"}, headers=bearer(credential))
    assert other.status_code == 403 and other.json()["code"] == "sync_other_branch"
    page = await client.get("/api/sync/changes", params={"limit": 50}, headers=bearer(credential))
    assert page.status_code == 200
    body = page.json()
    assert body["snapshot"] is True and body["snapshot_total"] >= len(body["changes"]) > 0
    bad = await client.get("/api/sync/changes", params={"cursor": "log:nope"}, headers=bearer(credential))
    assert bad.status_code == 422 and bad.json()["code"] == "sync_cursor"


async def test_an_upload_over_http_is_applied_once_and_a_malformed_one_changes_nothing(client, credential):
    item = (await Item.select(Item.uuid).where((Item.current_branch.code == "ZX") & (Item.status == "available"))
            .first())["uuid"]
    image = (await images_of(KINDS["item"], [str(item)]))[str(item)]
    moved = {**image, "shelf_location": "新书架"}
    body = {"uuid": str(uuid.uuid4()), "branch": "ZX", "changes": [{"kind": "item", "uuid": str(item), "image": moved}]}
    for malformed in (b"not json", b'{"uuid": "x", "changes": []}',
                      b'{"uuid": "%s", "changes": [{"kind": "item", "uuid": "%s", "image": {"uuid": "%s"}}]}'
                      % (uuid.uuid4().hex.encode(), str(item).encode(), str(item).encode())):
        refused = await client.post("/api/sync/uploads", content=malformed,
                                    headers={**bearer(credential), "Content-Type": "application/json"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "sync_payload"
    other_branch = await client.post("/api/sync/uploads", json={**body, "branch": "XZ"}, headers=bearer(credential))
    assert other_branch.status_code == 403
    assert await SyncApplied.count() == 0
    first = await client.post("/api/sync/uploads", json=body, headers=bearer(credential))
    again = await client.post("/api/sync/uploads", json=body, headers=bearer(credential))
    assert first.status_code == again.status_code == 200
    assert first.json()["already_applied"] is False and again.json()["already_applied"] is True
    assert await SyncApplied.count() == 1
    assert (await Item.select(Item.shelf_location).where(Item.uuid == item).first())["shelf_location"] == "新书架"


async def test_a_node_that_is_not_central_has_no_feed(demo):
    branch_app = create_app(load_settings({**os.environ, "LIBRARY_NODE_ROLE": "branch"}))
    async with client_for(branch_app) as client:
        response = await client.get("/api/sync/changes", headers={"Accept-Language": "en"})
    assert response.status_code == 404 and response.json()["code"] == "sync_not_central"


@pytest.mark.parametrize("language, heading", [("zh_CN", "分馆同步"), ("en", "Branch sync")])
async def test_the_sync_page_at_a_glance(client, language, heading):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    await client.get("/language", params={"lang": language, "next": "/staff/sync/"})
    page = await client.get("/staff/sync/")
    assert page.status_code == 200
    assert heading in page.text
    assert 'data-role="central"' in page.text
    assert "/staff/sync/transfers" in page.text, "administrators on the central node can request rotations"


async def test_a_rotation_is_requested_centrally_sent_by_the_branch_and_received_at_its_new_home(client):
    from library.loans import service as loans

    await sign_in_staff(client, "admin", "admin-demo-pass")
    copies = [row["barcode"] for row in await Item.select(Item.barcode).where(
        (Item.current_branch.code == "ZX") & (Item.status == "available")).order_by(Item.barcode).limit(2)]
    page = await client.get("/staff/sync/")
    token = csrf_token_from(page.text)
    refused = await client.post("/staff/sync/transfers", data={"barcodes": "NOPE123", "to_branch": "JX",
                                                              "_csrf_token": token})
    assert refused.status_code == 404 and await Transfer.count() == 0
    made = await client.post("/staff/sync/transfers", data={"barcodes": "\n".join(copies), "to_branch": "JX",
                                                           "batch": "冬季轮换", "_csrf_token": token})
    assert made.status_code == 200 and 'data-requested="2"' in made.text
    for barcode in copies:
        item = await Item.select(Item.home_branch.code, Item.status).where(Item.barcode == barcode).first()
        assert item == {"home_branch.code": "JX", "status": "available"}
    view = await service.transfers("ZX")
    assert sorted(t["barcode"] for t in view["to_send"]) == copies
    sent = await client.post("/staff/sync/transfers/send", data={
        "branch": "ZX", "transfer": [t["uuid"] for t in view["to_send"]], "_csrf_token": token})
    assert sent.status_code == 200
    assert await Item.count().where(Item.barcode.is_in(copies) & (Item.status == "in_transit")) == 2
    assert await Transit.count().where(Transit.item.barcode.is_in(copies) & Transit.received_at.is_null()) == 2
    admin = await _admin()
    for barcode in copies:
        received = await loans.checkin(admin, "JX", barcode, dt.datetime.now(dt.timezone.utc))
        assert received.received_transit and received.route == "shelve"
    assert await Transfer.count().where(Transfer.status == "received") == 2
    assert (await service.transfers("JX"))["incoming"] == []


async def _admin():
    from library.accounts.principal import Principal

    return Principal(kind="staff", id=0, uuid="t", name="t", language="en", role="administrator", all_branches=True)
