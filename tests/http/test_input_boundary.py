"""The one input boundary (library.web.input), probed as an adversary would: a self-check
machine that sends garbage, a stolen box fuzzing the API. NUL and the other control characters
are a 422 naming the field on both engines (PostgreSQL cannot store a NUL at all: these were
500s there), dates the calendar cannot compute are a 422, a missing body is a clear 422, and an
unknown branch or record is a 404 before any download starts. Nothing is written on a refusal.
"""

import datetime as dt
import os
import uuid

import pytest

from library.activities.tables import Event, Programme
from library.app import create_app
from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.loans.tables import Loan
from library.settings import load_settings
from library.sync import service as sync
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncApplied
from library.app import before_handler
from tests.support import client_for, csrf_token_from, empty_all_tables, sign_in_staff

JSON = {"Accept": "application/json"}  # a page address answers a problem body to an API client
NOBODY = "00000000-0000-4000-8000-000000000000"


async def staff_api(client) -> dict[str, str]:
    """A librarian's JSON-API session; the CSRF header read after signing in."""
    await client.get("/")
    await client.post("/api/session", json={"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
                      headers={"X-CSRFToken": client.cookies["library_csrf"]})
    await client.get("/")
    return {"X-CSRFToken": client.cookies["library_csrf"]}


def assert_refused(response, field: str, code: str = "control_characters") -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and problem["code"] == code and problem["field"] == field
    assert "\x00" not in problem["detail"]


# --- anonymous ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "field"), [
    ("/api/records?q=%00", "q"),                               # the catalogue search
    ("/api/records?q=%E5%A5%BD%00", "q"),                      # NUL after real text
    ("/api/records?q=ok&language=%00", "language"),            # any parameter, not only q
    ("/activities/feeds/ZX.ics?room=%00", "room"),             # the .ics feed
    ("/activities/feeds/Z%00X.ics", "name"),                   # a path parameter
    ("/api/branches/Z%00X", "code"),
    ("/api/branches/ZX/rooms%00", None),                       # not a route at all: a 404
    ("/api/records/%00", "uuid"),
    ("/api/records?q=%01", "q"),                               # every C0 control ...
    ("/api/records?q=%1B%5B2J", "q"),                          # ... an escape sequence ...
    ("/api/records?q=%7F", "q"),                               # ... and DEL
    ("/api/records?q=a%0D%0ASet-Cookie:x=1", "q"),             # a URL value is one line
    ("/api/records?q=a%09b", "q"),
    ("/api/records?q%00=x", "q?"),                             # a parameter's name, shown safely
])
async def test_control_characters_in_the_address_are_refused_anonymously(client, path, field):
    response = await client.get(path, headers=JSON)
    if field is None:
        assert response.status_code == 404
        return
    assert_refused(response, field)


async def test_a_page_refuses_with_an_error_page_not_a_500(client):
    response = await client.get("/activities/feeds/ZX.ics?room=%00")
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")


async def test_ordinary_text_still_passes(client):
    assert (await client.get("/api/records", params={"q": "好饿的 毛毛虫 \"a phrase\" ti:猫"})).status_code == 200
    assert (await client.get("/activities/feeds/ZX.ics")).status_code == 200
    assert (await client.get("/api/records", params={"q": "%00"})).status_code == 200  # the text "%00"


@pytest.mark.parametrize(("path", "field"), [
    ("/api/branches/ZX/next-open-day?on_or_after=9999-12-31", "on_or_after"),
    ("/api/branches/ZX/next-open-day?on_or_after=0001-01-01", "on_or_after"),
    ("/api/branches/ZX/calendar?start=9999-12-31", "start"),
    ("/api/branches/ZX/calendar?start=9999-12-31&days=366", "start"),
    ("/api/branches/ZX/calendar?start=0001-01-01", "start"),
    ("/api/branches/ZX/calendar?start=2100-12-01&days=60", "days"),  # the span runs past what is known
])
async def test_dates_the_calendar_cannot_compute_are_a_422(client, path, field):
    response = await client.get(path, headers={"Accept-Language": "en"})
    assert_refused(response, field, "date_beyond_calendar")
    assert response.json()["detail"] == "The calendar covers the years 1950 to 2100."


async def test_dates_within_the_calendar_still_answer(client):
    late = await client.get("/api/branches/ZX/next-open-day", params={"on_or_after": "2100-12-30"})
    assert late.status_code == 200  # the search stops at the last known day instead of overflowing
    assert (await client.get("/api/branches/ZX/calendar", params={"start": "1950-01-01"})).status_code == 200
    assert (await client.get("/api/branches/NOPE/calendar", params={"start": "2026-12-01"})).status_code == 404


async def test_the_refusal_speaks_the_readers_language(client):
    response = await client.get("/api/records?q=%00", headers={"Accept-Language": "zh-CN"})
    assert response.json()["detail"] == "q 含有控制字符（如 NUL），任何文本都不能包含。"


# --- signed in ------------------------------------------------------------------------------


async def test_staff_reader_search_refuses_nul(client):
    await sign_in_staff(client)
    assert_refused(await client.get("/staff/patrons?q=%00", headers=JSON), "q")
    assert (await client.get("/staff/patrons?q=%00")).status_code == 422  # the page, for a person
    assert (await client.get("/staff/patrons", params={"q": "王"})).status_code == 200


async def test_staff_week_refuses_a_date_beyond_the_calendar(client):
    await sign_in_staff(client)
    assert_refused(await client.get("/staff/activities/week?start=9999-12-31", headers=JSON),
                   "start", "date_beyond_calendar")


async def test_an_event_on_a_day_beyond_the_calendar_is_not_planned(client):
    await sign_in_staff(client)
    token = csrf_token_from((await client.get("/staff/activities/")).text)
    events = await Event.count()
    for day in ("9999-12-31", "0001-01-01"):
        response = await client.post("/staff/activities/", data={
            "_csrf_token": token, "branch": "ZX", "title_zh": "读书会", "kind": "reading_club", "day": day,
            "start": "10:00", "end": "11:00", "capacity": "10"})
        assert response.status_code == 422, response.text[:300]
    assert await Event.count() == events


async def test_a_checkout_barcode_with_nul_writes_no_loan(client):
    headers = await staff_api(client)
    loans = await Loan.count()
    for barcode in ("\x00", "ZX\x000001", "ZX0001\x1b"):
        response = await client.post("/api/loans/checkout", headers=headers,
                                     json={"branch": "ZX", "card_number": "ZX10000001", "barcode": barcode})
        assert_refused(response, "barcode")
    assert_refused(await client.post("/api/loans/checkout", headers=headers,
                                     json={"branch": "ZX", "card_number": "ZX1\x000000001", "barcode": "X1"}),
                   "card_number")
    assert await Loan.count() == loans


async def test_the_desk_form_refuses_nul_too(client):
    await sign_in_staff(client)
    token = csrf_token_from((await client.get("/staff/circulation/")).text)
    loans = await Loan.count()
    response = await client.post("/staff/circulation/checkout", headers=JSON, data={
        "branch": "ZX", "card_number": "ZX10000001", "barcode": "\x00", "_csrf_token": token})
    assert_refused(response, "barcode")
    assert await Loan.count() == loans


async def test_a_record_title_with_nul_is_refused_and_nothing_written(client):
    headers = await staff_api(client)
    before = await Record.count()
    assert_refused(await client.post("/api/records", headers=headers, json={"title": "好饿的\x00毛毛虫"}), "title")
    assert_refused(await client.post("/api/records", headers=headers, json={
        "title": "猜猜我有多爱你", "contributors": [{"name": "山姆\x00"}]}), "contributors[0].name")
    assert_refused(await client.post("/api/records", headers=headers, json={
        "title": "猜猜我有多爱你", "subjects": ["ok", "图画书\x07"]}), "subjects[1]")
    assert await Record.count() == before

    created = await client.post("/api/records", headers=headers, json={"title": "猜猜我有多爱你"})
    assert created.status_code == 201, created.text
    uuid = created.json()["uuid"]
    assert_refused(await client.put(f"/api/records/{uuid}", headers=headers, json={"title": "a\x00b"}), "title")
    assert (await client.get(f"/api/records/{uuid}")).json()["title"] == "猜猜我有多爱你"


async def test_a_json_key_and_a_multipart_field_are_checked_too(client):
    headers = await staff_api(client)
    before = await Record.count()
    response = await client.post("/api/records", headers={**headers, "Content-Type": "application/json"},
                                 content=b'{"title": "ok", "ti\\u0000tle": "x"}')
    assert_refused(response, "ti?tle")
    upload = await client.post("/api/catalog/import", headers=headers, data={"branch": "Z\x00X"},
                               files={"file": ("books.mrc", b"00026     2200025   4500\x1e\x1d", "application/marc")})
    assert_refused(upload, "branch")
    assert await Record.count() == before


async def test_a_multi_line_text_keeps_tab_cr_and_lf(client):
    headers = await staff_api(client)
    created = await client.post("/api/records", headers=headers,
                                json={"title": "猜猜我有多爱你", "summary": "第一段。\r\n\t第二段。"})
    assert created.status_code == 201, created.text
    assert created.json()["summary"] == "第一段。\r\n\t第二段。"
    assert_refused(await client.post("/api/records", headers=headers,
                                     json={"title": "猜猜我有多爱你", "summary": "响铃\x07"}), "summary")


async def test_a_put_without_a_body_says_so_and_leaks_nothing(client):
    headers = await staff_api(client)
    uuid = (await client.post("/api/records", headers=headers, json={"title": "猜猜我有多爱你"})).json()["uuid"]
    for extra in ({}, {"content": b""}, {"content": b"  \n", "headers": {"content-type": "application/json"}}):
        response = await client.put(f"/api/records/{uuid}", headers={**headers, **extra.pop("headers", {})},
                                    **extra)
        assert_refused(response, "body", "body_required")
        assert "KeyError" not in response.text and "'data'" not in response.text
    assert (await client.get(f"/api/records/{uuid}")).json()["title"] == "猜猜我有多爱你"


# --- downloads: 404 before the first byte, file names from known values -----------------------


async def test_unknown_things_are_a_404_before_any_download(client):
    await sign_in_staff(client)
    for path in (
        "/api/catalog/export?branch=NOPE",
        f"/staff/activities/events/{NOBODY}/attendance",
        f"/staff/activities/programmes/{NOBODY}/attendance",
        f"/staff/activities/challenges/{NOBODY}/export",
        "/staff/activities/events/nope/attendance",
        f"/api/catalog/imports/{NOBODY}/refused.mrc",
        f"/staff/catalog/records/{NOBODY}/marc/file",
        "/activities/feeds/NOPE.ics",
        "/activities/feeds/ZX.ics?room=NOPE",
    ):
        response = await client.get(path, headers=JSON)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert "content-disposition" not in response.headers


async def test_download_names_come_from_known_values(client):
    await sign_in_staff(client)
    event = str((await Event.select(Event.uuid).first())["uuid"])
    programme = str((await Programme.select(Programme.uuid).first())["uuid"])
    attendance = await client.get(f"/staff/activities/events/{event.upper()}/attendance")
    assert attendance.status_code == 200
    assert attendance.headers["content-disposition"] == f'attachment; filename="attendance-{event[:8]}.csv"'
    standings = await client.get(f"/staff/activities/challenges/{programme.upper()}/export")
    assert standings.headers["content-disposition"] == f'attachment; filename="challenge-{programme[:8]}.csv"'


def test_every_route_goes_through_the_boundary(app):
    """A layer with its own before_request hook would silently replace the boundary, and the
    permission check that runs in the same hook."""
    handlers = [handler for route in app.routes for handler in getattr(route, "route_handlers", [])
                if hasattr(handler, "resolve_before_request")]
    assert len(handlers) > 50
    assert all(handler.resolve_before_request() is before_handler for handler in handlers)


# --- node to node ---------------------------------------------------------------------------


@pytest.fixture
async def central():
    await empty_all_tables()
    await load_demo(dt.date(2026, 11, 28))
    async with client_for(create_app(load_settings({**os.environ, "LIBRARY_NODE_ROLE": "central"}))) as client:
        yield client


async def test_a_sync_upload_refuses_nul_but_keeps_what_marc_brought(central):
    """A branch uploads its own stored data: a control character from a MARC-8 record passes (a
    refusal would stop its sync for good), a NUL does not (PostgreSQL cannot store it)."""
    headers = {"Authorization": f"Bearer {await sync.issue_credential('ZX', 'test')}"}
    item = str((await Item.select(Item.uuid).where((Item.current_branch.code == "ZX")
                                                     & (Item.status == "available")).first())["uuid"])
    image = (await images_of(KINDS["item"], [item]))[item]

    def upload(shelf: str) -> dict:
        return {"uuid": str(uuid.uuid4()), "branch": "ZX",
                "changes": [{"kind": "item", "uuid": item, "image": {**image, "shelf_location": shelf}}]}

    refused = await central.post("/api/sync/uploads", json=upload("新书架\x00"), headers=headers)
    assert_refused(refused, "changes[0].image.shelf_location")
    assert await SyncApplied.count() == 0
    kept = await central.post("/api/sync/uploads", json=upload("新书架\x1b"), headers=headers)
    assert kept.status_code == 200, kept.text
    assert (await Item.select(Item.shelf_location).where(Item.uuid == item).first())["shelf_location"] == "新书架\x1b"
