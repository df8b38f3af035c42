"""Circulation over HTTP: the desk pages, the reader's account, and the API's statuses and messages."""

import datetime as dt

import pytest

from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.loans.tables import Hold, Loan
from tests.support import csrf_token_from, empty_all_tables, form_token, sign_in_patron, sign_in_staff

CATERPILLAR = "9787533259594"
DAVID = "9787539109619"


@pytest.fixture
async def demo():
    """The demo with its books and loans (the other HTTP tests use it without books)."""
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28))


async def barcodes(isbn: str, status: str, home: str) -> list[str]:
    rows = await Item.select(Item.barcode).where((Item.record.isbn13 == isbn) & (Item.status == status)
                                                 & (Item.home_branch.code == home)).order_by(Item.barcode)
    return [row["barcode"] for row in rows]


async def api_as(client, kind: str, login: str, secret: str) -> dict[str, str]:
    await client.get("/")
    headers = {"X-CSRFToken": client.cookies["library_csrf"], "Accept-Language": "en"}
    response = await client.post("/api/session", json={"kind": kind, "login": login, "secret": secret},
                                 headers=headers)
    assert response.status_code in (200, 201), response.text
    return {**headers, "X-CSRFToken": client.cookies["library_csrf"]}  # signing in changed the token


async def test_a_volunteer_lends_two_books_in_a_row_and_prints_the_slip(client):
    await sign_in_staff(client)
    desk = await client.get("/staff/circulation/", params={"card": "ZX10000001"})
    assert desk.status_code == 200 and 'data-patron="ZX10000001"' in desk.text
    token = csrf_token_from(desk.text)
    first = (await barcodes(CATERPILLAR, "available", "ZX"))[0]
    second = (await barcodes("9787533291204", "available", "ZX"))[0]
    page = await client.post("/staff/circulation/checkout", data={
        "_csrf_token": token, "branch": "ZX", "card": "ZX10000001", "barcode": first.lower()})
    assert page.status_code == 200 and f'data-lent="{first}"' in page.text
    assert "2026年12月19日" in page.text  # 21 days, the room is open that Saturday
    page = await client.post("/staff/circulation/checkout", data={
        "_csrf_token": token, "branch": "ZX", "card": "ZX10000001", "barcode": second, "done": first})
    assert f'data-lent="{second}"' in page.text and "barcodes=" in page.text
    slip = await client.get("/staff/circulation/slip", params={"card": "ZX10000001", "branch": "ZX",
                                                               "barcodes": f"{first},{second}"})
    assert slip.text.count('class="new"') == 2 and "振兴社区智慧书房" in slip.text


async def test_the_desk_lists_every_reason_and_offers_an_override_only_when_allowed(client):
    await sign_in_staff(client)
    desk = await client.get("/staff/circulation/", params={"card": "ZX10000004"})
    token = csrf_token_from(desk.text)
    [barcode] = await barcodes(CATERPILLAR, "available", "ZX")
    page = await client.post("/staff/circulation/checkout", data={
        "_csrf_token": token, "branch": "ZX", "card": "ZX10000004", "barcode": barcode})
    assert page.status_code == 409
    assert 'data-reason="card_blocked"' in page.text and "Lend anyway" not in page.text
    assert 'name="override_comment"' not in page.text
    assert await Loan.count().where(Loan.patron.card_number == "ZX10000004") == 0


async def test_an_unchanged_session_is_not_sent_again_but_signing_out_clears_it(client):
    """The session cookie is set at sign-in and cleared at sign-out; a checkout does not re-send it."""
    headers = await api_as(client, "staff", "librarian", "librarian-demo")
    signed_in = client.cookies["library_session"]
    [barcode] = await barcodes(CATERPILLAR, "available", "ZX")
    lent = await client.post("/api/loans/checkout", json={"branch": "ZX", "card_number": "ZX10000001",
                                                          "barcode": barcode}, headers=headers)
    assert lent.status_code == 201
    assert "library_session" not in lent.headers.get("set-cookie", "")
    assert client.cookies["library_session"] == signed_in
    back = await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": barcode}, headers=headers)
    assert back.status_code == 200 and "library_session" not in back.headers.get("set-cookie", "")
    signed_out = await client.post("/api/session/end", headers=headers)
    assert signed_out.status_code < 300 and "library_session=null" in signed_out.headers.get("set-cookie", "")
    # The token went with the session; a new visit's token does not make it a signed-in one.
    stale = await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": barcode}, headers=headers)
    assert stale.status_code == 403 and stale.json()["code"] == "csrf_failed"
    await client.get("/")
    fresh = {**headers, "X-CSRFToken": client.cookies["library_csrf"]}
    assert (await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": barcode},
                              headers=fresh)).status_code == 401


async def test_a_rule_changed_between_two_api_checkouts_applies_to_the_second(client):
    """The configuration version is read with the signed-in person; a change from anywhere moves it."""
    from library.loans.tables import CirculationRule

    headers = await api_as(client, "staff", "librarian", "librarian-demo")
    [barcode] = await barcodes(CATERPILLAR, "available", "ZX")
    body = {"branch": "ZX", "card_number": "ZX10000001", "barcode": barcode}
    first = await client.post("/api/loans/checkout", json=body, headers=headers)
    assert first.status_code == 201 and first.json()["due_on"] == "2026-12-19"
    await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": barcode}, headers=headers)
    await CirculationRule.raw("UPDATE circulation_rule SET loan_days = 7 WHERE scope = 'ZX|*|picture_book'")
    second = await client.post("/api/loans/checkout", json=body, headers=headers)
    assert second.status_code == 201 and second.json()["due_on"] == "2026-12-05"


async def test_checkout_api_statuses_and_messages(client):
    headers = await api_as(client, "staff", "librarian", "librarian-demo")
    [barcode] = await barcodes(CATERPILLAR, "available", "ZX")
    [lent] = await barcodes(CATERPILLAR, "on_loan", "ZX")
    unknown = await client.post("/api/loans/checkout", json={"branch": "ZX", "card_number": "ZX00000000",
                                                             "barcode": barcode}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "patron_not_found"
    missing = await client.post("/api/loans/checkout", json={"branch": "ZX", "card_number": "ZX10000001",
                                                             "barcode": "NOPE"}, headers=headers)
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]
    refused = await client.post("/api/loans/checkout", json={"branch": "ZX", "card_number": "XZ30000001",
                                                             "barcode": lent}, headers=headers)
    body = refused.json()
    assert refused.status_code == 409
    assert [(r["code"], r["overridable"]) for r in body["reasons"]] == [("card_expired", True), ("item_on_loan", False)]
    # The librarian's account speaks Chinese (an account's language beats the browser's).
    assert body["reasons"][1]["message"] == "该复本已借出，请先办理归还。"
    assert body["reasons"][0]["message"] == "读者证已于 2025年12月31日 过期，可在服务台续期。"
    other_branch = await client.post("/api/loans/checkout", json={
        "branch": "JX", "card_number": "ZX10000001", "barcode": (await barcodes(CATERPILLAR, "available", "JX"))[0]},
        headers=headers)
    assert other_branch.status_code == 403
    bad_body = await client.post("/api/loans/checkout", json={"branch": "ZX", "card": "x"}, headers=headers)
    assert bad_body.status_code == 400
    ok = await client.post("/api/loans/checkout", json={"branch": "ZX", "card_number": "XZ30000001",
                                                        "barcode": barcode, "override_comment": "新证办理中"},
                           headers=headers)
    assert ok.status_code == 201 and ok.json()["overridden"] == ["card_expired"] and ok.json()["due_on"] == "2026-12-19"
    detail = (await client.get(f"/api/loans/{ok.json()['loan']}", headers=headers)).json()
    assert detail["rule"] == "ZX|*|picture_book" and detail["rules_considered"] == ["ZX|*|picture_book", "*|*|*"]
    assert detail["overrides"] == [{"code": "card_expired", "comment": "新证办理中", "by": "周晓琳"}]


async def test_a_return_at_another_branch_goes_in_transit(client):
    headers = await api_as(client, "staff", "admin", "admin-demo-pass")
    [barcode] = await barcodes(CATERPILLAR, "on_loan", "ZX")
    back = await client.post("/api/loans/checkin", json={"branch": "JX", "barcode": barcode}, headers=headers)
    assert back.status_code == 200
    assert back.json()["route"] == "transit_home" and back.json()["to_branch"] == "ZX"
    transits = await client.get("/staff/circulation/transits", params={"branch": "ZX"})
    assert f'data-barcode="{barcode}"' in transits.text
    again = await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": barcode}, headers=headers)
    assert again.json()["received_transit"] and again.json()["route"] == "shelve"


async def test_a_resident_renews_all_and_reads_every_refusal(client):
    await sign_in_patron(client)
    account = await client.get("/account")
    assert account.text.count("data-loan=") == 4  # hers and her two children's
    page = await client.post("/account/loans/renew", data={"_csrf_token": csrf_token_from(account.text)})
    assert page.status_code == 200
    assert page.text.count('class="ok"') == 2 and page.text.count('class="refused"') == 2
    assert page.text.count("有读者在等这本书。") == 2  # in her language


async def test_a_reader_cannot_renew_someone_elses_loan(client):
    mother_loan = await Loan.select(Loan.uuid, Loan.due_on).where(Loan.patron.card_number == "ZX10000001").first()
    headers = await api_as(client, "patron", "JX20000001", "123456")
    response = await client.post("/api/loans/renew", json={"loans": [str(mother_loan["uuid"])]}, headers=headers)
    assert response.status_code == 404 and response.json()["code"] == "loan_not_found"
    not_guardian = await client.post("/api/loans/renew", json={"all": True, "card_number": "ZX10000001"},
                                     headers=headers)
    assert not_guardian.status_code == 403
    nonsense = await client.post("/api/loans/renew", json={"loans": ["not-a-uuid"]}, headers=headers)
    assert nonsense.status_code == 404
    assert (await Loan.select(Loan.due_on).where(Loan.uuid == mother_loan["uuid"]).first())["due_on"] == \
        mother_loan["due_on"]


async def test_holds_through_the_api_and_the_account_page(client):
    headers = await api_as(client, "patron", "ZX10000001", "123456")
    record = await Record.select(Record.uuid).where(Record.isbn13 == "9787543464650").first()
    placed = await client.post("/api/holds", json={"record": str(record["uuid"]), "pickup_branch": "ZX"},
                               headers=headers)
    assert placed.status_code == 201 and placed.json()["position"] == 1
    twice = await client.post("/api/holds", json={"record": str(record["uuid"]), "pickup_branch": "ZX"},
                              headers=headers)
    assert twice.status_code == 409 and [r["code"] for r in twice.json()["reasons"]] == ["hold_exists"]
    mine = (await client.get("/api/loans", headers=headers)).json()
    assert [h["status"] for h in mine[0]["holds"]] == ["waiting"]
    cancelled = await client.delete(f"/api/holds/{placed.json()['hold']}", headers=headers)
    assert cancelled.status_code == 204
    assert (await Hold.select(Hold.status).where(Hold.uuid == placed.json()["hold"]).first())["status"] == "cancelled"


async def test_only_administrators_change_rules(client):
    await sign_in_staff(client)
    page = await client.get("/staff/circulation/rules")
    assert page.status_code == 200 and 'data-scope="*|*|*"' in page.text and 'data-form="rule"' not in page.text
    refused = await client.post("/staff/circulation/rules", data={"_csrf_token": csrf_token_from(page.text),
                                                                  "loan_days": "90"})
    assert refused.status_code == 403


async def test_an_administrator_saves_a_rule_and_bad_numbers_are_explained(client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    page = await client.get("/staff/circulation/rules")
    token = csrf_token_from(page.text)
    form = {"_csrf_token": token, "branch_code": "XZ", "patron_category": "senior", "item_type": "", "name": "长者",
            "loan_days": "60", "max_loans": "10", "renewal_days": "30", "max_renewals": "3", "renew_from": "today",
            "hold_shelf_days": "7", "renewal_refused_after_overdue_days": "30", "fine_cents_per_day": "0",
            "loanable": "1", "holds_allowed": "1"}
    bad = await client.post("/staff/circulation/rules", data={**form, "loan_days": "abc"},
                            headers={"Accept-Language": "en"})
    assert bad.status_code == 422 and "1 to 365" in bad.text or "1 至 365" in bad.text
    saved = await client.post("/staff/circulation/rules", data=form)
    assert saved.status_code == 303
    page = await client.get("/staff/circulation/rules")
    assert 'data-scope="XZ|senior|*"' in page.text


async def test_a_reader_places_a_hold_from_the_record_page(client):
    await sign_in_patron(client, "JX20000001")
    record = await Record.select(Record.uuid).where(Record.isbn13 == CATERPILLAR).first()
    page = await client.get(f"/catalog/records/{record['uuid']}")
    assert 'action="/account/holds"' in page.text
    done = await client.post("/account/holds", data={"_csrf_token": await form_token(client, f"/catalog/records/{record['uuid']}"),
                                                     "record": str(record["uuid"]), "pickup_branch": "JX"})
    assert done.status_code == 303
    account = await client.get("/account")
    assert "猜猜我有多爱你" in account.text and "排第 1 位" in account.text


async def test_a_reader_opts_in_to_keep_her_reading_history(client):
    from library.loans.tables import ReadingHistoryChoice

    headers = await api_as(client, "staff", "librarian", "librarian-demo")
    [lent] = await barcodes(CATERPILLAR, "on_loan", "ZX")  # 王芳's demo loan
    assert (await client.post("/api/loans/checkin", json={"branch": "ZX", "barcode": lent},
                              headers=headers)).status_code == 200
    client.cookies.clear()
    await sign_in_patron(client)
    account = await client.get("/account")
    assert 'data-section="history"' in account.text and "猜猜我有多爱你" in account.text.split('id="history"')[1]
    saved = await client.post("/account/history", data={"_csrf_token": csrf_token_from(account.text), "keep": "1"})
    assert saved.status_code == 303
    choice = await ReadingHistoryChoice.select(ReadingHistoryChoice.keep_history).where(
        ReadingHistoryChoice.patron.card_number == "ZX10000001").first()
    assert choice == {"keep_history": True}
    assert 'name="keep" value="1" checked' in (await client.get("/account")).text
