"""A reader's own data over HTTP: see it, download it, correct the contact details, choose for a
child, ask to close the account — and a young child's own sign-in, which only looks."""

import csv
import datetime as dt
import io
import json

import pytest

from library.accounts.tables import Patron
from library.loans import service as loans
from library.loans.tables import ReadingHistoryChoice
from library.privacy.tables import AccountClosure
from tests.http.conftest import FROZEN_NOW
from library.demo import load_demo
from tests.support import csrf_token_from, empty_all_tables, sign_in_patron, sign_in_staff
from tests.sync.worker import _desk


@pytest.fixture
async def demo():
    """With the books: closing an account waits for a borrowed one."""
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28))


async def _post(client, page: str, action: str, **data):
    token = csrf_token_from((await client.get(page)).text)
    return await client.post(action, data={"_csrf_token": token, **data})


async def test_a_reader_sees_and_downloads_what_the_library_holds_about_her_and_her_child(client):
    await sign_in_patron(client)
    account = await client.get("/account")
    assert 'href="/account/data"' in account.text and 'href="/account/data?card=ZX10000002"' in account.text
    page = await client.get("/account/data")
    assert page.status_code == 200 and "ZX10000001" in page.text and 'data-section="loans"' in page.text
    mine = json.loads((await client.get("/account/data.json")).content)
    assert mine["profile"]["card_number"] == "ZX10000001" and mine["profile"]["name"] == "王芳"
    assert {c["child_card_number"] for c in mine["children"]} == {"ZX10000002", "ZX10000003"}
    assert "pin_hash" not in json.dumps(mine), "the PIN verifier is nobody's business"
    download = await client.get("/account/data.csv?card=ZX10000002")
    assert download.headers["content-disposition"] == 'attachment; filename="library-data-ZX10000002.csv"'
    text = download.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["section", "field", "value"] and ["profile", "name", "李小米"] in rows
    # another family's reader: not hers to see
    assert (await client.get("/account/data?card=JX20000001")).status_code == 403
    assert (await client.get("/account/data.json?card=JX20000001")).status_code == 403


async def test_a_reader_corrects_her_contact_details_and_bad_ones_are_refused(client):
    await sign_in_patron(client)
    refused = await _post(client, "/account/data", "/account/contact", email="not-an-address", phone="1380000",
                          language="zh_CN")
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    assert (await Patron.select(Patron.email).where(Patron.card_number == "ZX10000001").first())["email"] == ""
    saved = await _post(client, "/account/data", "/account/contact", email="wangfang@example.org",
                        phone="138 0000 0000", language="en")
    assert saved.status_code == 303
    row = await Patron.select(Patron.email, Patron.phone, Patron.language).where(
        Patron.card_number == "ZX10000001").first()
    assert row == {"email": "wangfang@example.org", "phone": "138 0000 0000", "language": "en"}
    # and for her child, from her own account
    child = await _post(client, "/account/data?card=ZX10000002", "/account/contact", card_number="ZX10000002",
                        email="", phone="13900000000", language="zh_CN")
    assert child.status_code == 303
    assert (await Patron.select(Patron.phone).where(Patron.card_number == "ZX10000002").first())["phone"] == \
        "13900000000"


async def test_a_guardian_chooses_for_each_child_whether_the_reading_history_is_kept(client):
    await sign_in_patron(client)
    saved = await _post(client, "/account", "/account/history", card_number="ZX10000003", keep="1")
    assert saved.status_code == 303
    choices = {row["patron.card_number"]: row["keep_history"] for row in await ReadingHistoryChoice.select(
        ReadingHistoryChoice.patron.card_number, ReadingHistoryChoice.keep_history)}
    assert choices == {"ZX10000003": True}
    assert 'data-child="ZX10000003"' in (await client.get("/account")).text


async def test_a_young_childs_own_sign_in_looks_but_does_not_change_or_take_away(client):
    await sign_in_patron(client, card="ZX10000002")
    page = await client.get("/account/data")
    assert page.status_code == 200 and "李小米" in page.text and 'data-form="contact"' not in page.text
    refused = await _post(client, "/account/data", "/account/contact", email="kid@example.org", phone="",
                          language="zh_CN")
    assert refused.status_code == 403
    assert (await client.get("/account/data.json")).status_code == 403
    assert (await _post(client, "/account", "/account/history", keep="1")).status_code == 403
    assert (await _post(client, "/account/data", "/account/close")).status_code == 403
    assert await AccountClosure.count() == 0


async def test_closing_an_account_is_asked_by_the_reader_and_completed_at_the_desk_when_books_are_back(client):
    await sign_in_patron(client, card="JX20000001")
    asked = await _post(client, "/account/data", "/account/close", note="moving to Hangzhou")
    assert asked.status_code == 303
    from library.catalog.tables import Item

    barcode = (await Item.select(Item.barcode).where((Item.current_branch.code == "ZX")
                                                     & (Item.status == "available")).first())["barcode"]
    await loans.checkout(_desk(), "ZX", "JX20000001", barcode, FROZEN_NOW)
    client.cookies.clear()
    await sign_in_staff(client, "admin", "admin-demo-pass")
    listed = await client.get("/staff/closures/")
    assert "JX20000001" in listed.text and "moving to Hangzhou" in listed.text
    refused = await _post(client, "/staff/closures/", "/staff/closures/JX20000001/complete")
    assert refused.status_code == 409 and await Patron.count().where(Patron.card_number == "JX20000001") == 1
    await loans.checkin(_desk(), "ZX", barcode, FROZEN_NOW)
    done = await _post(client, "/staff/closures/", "/staff/closures/JX20000001/complete")
    assert done.status_code == 303
    assert await Patron.count().where(Patron.card_number == "JX20000001") == 0
    closure = await AccountClosure.select().where(AccountClosure.card_number == "JX20000001").first()
    assert closure["completed_at"] is not None and closure["completed_by"].startswith("staff:")
    client.cookies.clear()
    assert (await sign_in_patron(client, card="JX20000001")).status_code in (401, 200)
    assert (await client.get("/account", follow_redirects=False)).status_code in (302, 303, 401)


async def test_the_retention_table_is_public_in_both_languages(client):
    chinese = await client.get("/privacy", headers={"Accept-Language": "zh-CN"})
    english = await client.get("/privacy", headers={"Accept-Language": "en"})
    assert "closed holds (fulfilled, cancelled, expired)" in english.text and "30" in english.text
    assert "closed holds (fulfilled, cancelled, expired)" not in chinese.text and "预约" in chinese.text
