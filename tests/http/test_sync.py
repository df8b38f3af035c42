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


async def test_regression_a_branch_cannot_give_a_city_reader_a_pin_that_signs_in_centrally(client, credential):
    """Before: ZX's credential uploaded 张建国 (JX) with another name, a PIN verifier of its own and
    `updated_at` 2030; it was applied and the new PIN signed in at the central node."""
    from library.accounts.hashing import hash_secret
    from library.accounts.tables import Patron

    reader = await Patron.select(Patron.uuid).where(Patron.card_number == "JX20000001").first()
    image = (await images_of(KINDS["patron"], [str(reader["uuid"])]))[str(reader["uuid"])]
    forged = {**image, "name": "被改名", "pin_hash": await hash_secret("999999"),
              "updated_at": "2030-01-01T00:00:00+00:00"}
    body = {"uuid": str(uuid.uuid4()), "branch": "ZX", "changes": [{"kind": "patron", "uuid": image["uuid"],
                                                                     "image": forged}]}
    answer = await client.post("/api/sync/uploads", json=body, headers=bearer(credential))
    assert answer.status_code == 200
    assert "reader_elsewhere" in [c["rule"] for c in answer.json()["conflicts"]]
    assert (await Patron.select(Patron.name).where(Patron.uuid == reader["uuid"]).first())["name"] == "张建国"
    await client.get("/")  # the CSRF cookie
    forged_pin = await client.post("/api/session", json={"kind": "patron", "login": "JX20000001", "secret": "999999"},
                                   headers={"X-CSRFToken": client.cookies["library_csrf"]})
    assert forged_pin.status_code == 401
    own_pin = await client.post("/api/session", json={"kind": "patron", "login": "JX20000001", "secret": "123456"},
                                headers={"X-CSRFToken": client.cookies.get("library_csrf")})
    assert own_pin.status_code == 201


async def test_a_branch_credential_that_sends_too_many_requests_is_slowed_down_alone(demo):
    """A broken box looping on the feed gets 429 with Retry-After; other branches are served."""
    app = create_app(load_settings({**os.environ, "LIBRARY_NODE_ROLE": "central",
                                    "LIBRARY_SYNC_REQUESTS_PER_MINUTE": "3"}))
    async with client_for(app) as client:
        zx = await service.issue_credential("ZX", "test")
        xz = await service.issue_credential("XZ", "test")
        for _ in range(3):
            assert (await client.get("/api/sync/changes", params={"limit": 1}, headers=bearer(zx))).status_code == 200
        refused = await client.get("/api/sync/changes", params={"limit": 1}, headers=bearer(zx))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "sync_throttled" and 1 <= int(refused.headers["retry-after"]) <= 60
        upload = {"uuid": str(uuid.uuid4()), "branch": "ZX", "changes": []}
        assert (await client.post("/api/sync/uploads", json=upload, headers=bearer(zx))).status_code == 429
        assert await SyncApplied.count() == 0, "a refused upload changes nothing"
        assert (await client.get("/api/sync/changes", params={"limit": 1}, headers=bearer(xz))).status_code == 200
        # a wrong secret never spends a branch's budget
        assert (await client.get("/api/sync/changes", headers=bearer("XZ.wrong"))).status_code == 401
