"""The self-check page over HTTP: a tablet set up by staff, a reader lending and renewing there,
refusals with their reasons, the station's token revoked, CSRF, the idle timeout, and the
staff home's count of the day (docs/selfcheck.md, "The self-check page")."""

from __future__ import annotations

import datetime as dt
import os
import re

import httpx
import pytest

from library.accounts.tables import Patron
from library.app import create_app
from library.branches.tables import AuditEntry
from library.catalog.tables import Item
from library.clock import set_clock
from library.demo import load_demo
from library.loans.tables import Loan
from library.notices.tables import Notice
from library.selfcheck.pages import TOKEN_COOKIE
from library.selfcheck.tables import SelfCheckStation
from library.settings import load_settings
from tests.support import client_for, csrf_token_from, empty_all_tables, form_token, sign_in_staff

FROZEN_NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.timezone.utc)  # Saturday 09:00 in Jiaxing
ON_THE_SHELF_AT_ZX = ["ZX000000026", "ZX000000034", "ZX000000042"]
LENT_TO_THE_MOTHER_AT_ZX = "ZX000000018"


class Clock:
    def __init__(self) -> None:
        self.now = FROZEN_NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(autouse=True)
def clock():
    moving = Clock()
    set_clock(moving)
    yield moving
    set_clock(None)


@pytest.fixture
async def demo():
    await empty_all_tables()
    await load_demo(FROZEN_NOW.date())


def app_with(**environ: str):
    return create_app(load_settings({**os.environ, **environ}))


@pytest.fixture
def app():
    return app_with()


@pytest.fixture
async def client(app, demo):
    async with client_for(app) as client:
        yield client


def another_device(app) -> httpx.AsyncClient:
    """A second browser on the same running app (the librarian's own computer)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.2", 50000)),
                             base_url="http://testserver")


async def set_up_tablet(client, name: str = "门口平板", branch: str = "ZX") -> str:
    """Staff sign in on the tablet and make it a station; the answer hands the tablet its token."""
    await sign_in_staff(client)
    token = await form_token(client, "/staff/selfcheck/")
    answer = await client.post("/staff/selfcheck/issue", data={"_csrf_token": token, "branch": branch, "name": name})
    assert answer.status_code == 303 and answer.headers["location"] == "/selfcheck", answer.text
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith(TOKEN_COOKIE))
    assert "HttpOnly" in cookie and "Path=/selfcheck" in cookie and "samesite=strict" in cookie.lower()
    return cookie


async def reader_signs_in(client, card: str = "ZX10000001", pin: str = "123456"):
    token = await form_token(client, "/selfcheck")
    return await client.post("/selfcheck/signin", data={"_csrf_token": token, "card_number": card, "pin": pin})


async def post(client, path: str, **data: str):
    page = await client.get("/selfcheck")
    return await client.post(path, data={"_csrf_token": csrf_token_from(page.text), **data})


async def test_staff_set_a_tablet_up_and_a_reader_lends_renews_and_takes_a_receipt(client):
    await set_up_tablet(client)
    # The member of staff is signed out on the tablet by the door.
    assert (await client.get("/staff/", follow_redirects=False)).status_code in (302, 303, 401)
    station = await SelfCheckStation.select().first()
    assert len(station["token_hash"]) == 64 and station["revoked_at"] is None
    assert await AuditEntry.exists().where(AuditEntry.action == "selfcheck_station.issued")

    start = await client.get("/selfcheck")
    assert start.status_code == 200 and 'name="card_number"' in start.text and "振兴社区智慧书房" in start.text
    answer = await reader_signs_in(client)
    assert answer.status_code == 303
    page = await client.get("/selfcheck")
    assert "王芳" in page.text and 'name="barcode"' in page.text and "data-keep-focus" in page.text

    for barcode in ON_THE_SHELF_AT_ZX[:2]:
        assert (await post(client, "/selfcheck/lend", barcode=barcode.lower())).status_code == 303
    page = await client.get("/selfcheck")
    for barcode in ON_THE_SHELF_AT_ZX[:2]:
        assert f'data-result="lent" data-barcode="{barcode}"' in page.text
    assert "2026年12月19日" in page.text  # 21 days for picture books at Zhenxing
    loans = await Loan.select(Loan.created_by).where(Loan.returned_at.is_null() & (Loan.created_by.like("staff:%")))
    assert {row["created_by"] for row in loans} >= {f"staff:{station['uuid']}"}

    # A copy lent to someone already, and a barcode nobody knows: each with its reason.
    await post(client, "/selfcheck/lend", barcode=LENT_TO_THE_MOTHER_AT_ZX)
    await post(client, "/selfcheck/lend", barcode="NO-SUCH-COPY")
    page = await client.get("/selfcheck")
    assert f'data-result="refused" data-barcode="{LENT_TO_THE_MOTHER_AT_ZX}"' in page.text
    assert 'data-result="refused" data-barcode="NO-SUCH-COPY"' in page.text
    # The refused copy by its title, with the rules' reason; the unknown barcode as it was typed.
    assert re.search(rf'data-barcode="{LENT_TO_THE_MOTHER_AT_ZX}">\s*<strong>猜猜我有多爱你</strong>', page.text)
    assert "该复本已借出，请先办理归还。" in page.text and "没有条码为 NO-SUCH-COPY 的复本" in page.text

    # Renew one (refused: it was lent today and is not due yet, the rules say why), in English.
    await post(client, "/selfcheck/language", lang="en")
    await post(client, "/selfcheck/renew", barcode=ON_THE_SHELF_AT_ZX[0])
    page = await client.get("/selfcheck")
    assert 'lang="en"' in page.text and "Not renewed" in page.text

    # The receipt: printable, and sent as a notice to a reader with an e-mail address.
    await Patron.update({Patron.email: "wangfang@example.cn"}).where(Patron.card_number == "ZX10000001")
    await post(client, "/selfcheck/finish")
    receipt = await client.get("/selfcheck")
    assert "data-receipt" in receipt.text and "data-print" in receipt.text
    assert receipt.text.count("data-line=") == 2
    await post(client, "/selfcheck/receipt/email")
    await post(client, "/selfcheck/receipt/email")  # once per visit, however often tapped
    notices = await Notice.select(Notice.kind, Notice.to_address, Notice.body).where(
        Notice.kind == "selfcheck_receipt")
    assert len(notices) == 1 and notices[0]["to_address"] == "wangfang@example.cn"
    assert ON_THE_SHELF_AT_ZX[0] in notices[0]["body"]
    done = await post(client, "/selfcheck/end")
    assert done.headers["location"] == "/selfcheck?ended=done"
    assert 'name="card_number"' in (await client.get("/selfcheck")).text

    # The staff home counts the day for this station.
    await sign_in_staff(client)
    home = await client.get("/staff/")
    row = re.search(r'<tr data-machine="门口平板">(.*?)</tr>', home.text, re.S).group(1)
    assert re.search(r'data-count="checkout">2<', row) and re.search(r'data-count="refusal">3<', row)


async def test_a_childs_card_lends_on_the_childrens_terms(client):
    await set_up_tablet(client)
    await reader_signs_in(client, "ZX10000002")
    await post(client, "/selfcheck/lend", barcode=ON_THE_SHELF_AT_ZX[2])
    page = await client.get("/selfcheck")
    assert "李小米" in page.text and f'data-result="lent" data-barcode="{ON_THE_SHELF_AT_ZX[2]}"' in page.text
    lent = await Loan.select(Loan.patron_category).where(Loan.item.barcode == ON_THE_SHELF_AT_ZX[2]).first()
    assert lent["patron_category"] == "child"


async def test_a_wrong_pin_is_refused_and_throttled_like_the_readers_sign_in(client):
    await set_up_tablet(client)
    answer = await reader_signs_in(client, pin="000000")
    assert answer.status_code == 401 and "data-error" in answer.text and "王芳" not in answer.text
    for _ in range(5):
        answer = await reader_signs_in(client, pin="000000")
    assert answer.status_code == 429 and answer.headers.get("retry-after")
    # Nothing can be lent without a reader signed in.
    await post(client, "/selfcheck/lend", barcode=ON_THE_SHELF_AT_ZX[0])
    assert await Item.select(Item.status).where(Item.barcode == ON_THE_SHELF_AT_ZX[0]).first() == {
        "status": "available"}


async def test_a_revoked_station_stops_at_the_next_tap(app, client):
    await set_up_tablet(client)
    await reader_signs_in(client)
    token = csrf_token_from((await client.get("/selfcheck")).text)
    station = await SelfCheckStation.select(SelfCheckStation.uuid).first()
    async with another_device(app) as desk:
        await sign_in_staff(desk)
        listing = await desk.get("/staff/selfcheck/")
        assert 'data-station="门口平板"' in listing.text
        answer = await desk.post(f"/staff/selfcheck/{station['uuid']}/revoke",
                                 data={"_csrf_token": csrf_token_from(listing.text)})
        assert answer.status_code == 303
    refused = await client.get("/selfcheck")
    assert refused.status_code == 403 and "data-not-a-station" in refused.text
    answer = await client.post("/selfcheck/lend", data={"_csrf_token": token, "barcode": ON_THE_SHELF_AT_ZX[0]})
    assert answer.status_code == 403
    assert await Item.select(Item.status).where(Item.barcode == ON_THE_SHELF_AT_ZX[0]).first() == {
        "status": "available"}
    assert await AuditEntry.exists().where(AuditEntry.action == "selfcheck_station.revoked")


async def test_no_token_or_a_made_up_one_is_no_station(client):
    assert (await client.get("/selfcheck")).status_code == 403
    client.cookies.set(TOKEN_COOKIE, "made-up-token", path="/selfcheck")
    assert (await client.get("/selfcheck")).status_code == 403


async def test_staff_set_up_stations_only_for_their_own_branches(client):
    await sign_in_staff(client)  # the librarian works at Zhenxing only
    token = await form_token(client, "/staff/selfcheck/")
    answer = await client.post("/staff/selfcheck/issue", data={"_csrf_token": token, "branch": "JX", "name": "x"})
    assert answer.status_code == 403 and TOKEN_COOKIE not in answer.headers.get("set-cookie", "")
    answer = await client.post("/staff/selfcheck/issue", data={"_csrf_token": token, "branch": "ZX", "name": " "})
    assert answer.status_code == 422
    assert not await SelfCheckStation.exists()


async def test_forms_without_the_csrf_token_are_refused(app, client):
    await set_up_tablet(client)
    await reader_signs_in(client)
    answer = await client.post("/selfcheck/lend", data={"barcode": ON_THE_SHELF_AT_ZX[0]})
    assert answer.status_code == 403
    answer = await client.post("/selfcheck/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                                          "_csrf_token": "forged"})
    assert answer.status_code == 403
    assert await Item.select(Item.status).where(Item.barcode == ON_THE_SHELF_AT_ZX[0]).first() == {
        "status": "available"}
    async with another_device(app) as other:
        await sign_in_staff(other)
        answer = await other.post("/staff/selfcheck/issue", data={"branch": "ZX", "name": "forged"})
        assert answer.status_code == 403 and not await SelfCheckStation.exists().where(
            SelfCheckStation.name == "forged")


async def test_the_session_ends_after_LIBRARY_SELFCHECK_IDLE_SECONDS_without_a_tap(demo, clock):
    async with client_for(app_with(LIBRARY_SELFCHECK_IDLE_SECONDS="20")) as client:
        await set_up_tablet(client)
        await reader_signs_in(client)
        page = await client.get("/selfcheck")
        assert 'data-idle-seconds="20"' in page.text and "王芳" in page.text
        clock.now += dt.timedelta(seconds=15)
        await post(client, "/selfcheck/lend", barcode=ON_THE_SHELF_AT_ZX[0])  # a tap: 20 s more
        clock.now += dt.timedelta(seconds=15)
        assert "王芳" in (await client.get("/selfcheck")).text
        clock.now += dt.timedelta(seconds=6)
        page = await client.get("/selfcheck")
        assert 'data-ended="idle"' in page.text and "王芳" not in page.text
        # The next scan is no one's.
        answer = await post(client, "/selfcheck/lend", barcode=ON_THE_SHELF_AT_ZX[1])
        assert answer.headers["location"] == "/selfcheck"
        assert await Item.select(Item.status).where(Item.barcode == ON_THE_SHELF_AT_ZX[1]).first() == {
            "status": "available"}
