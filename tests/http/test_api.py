"""The JSON API: data, problem bodies, size limits, health, OpenAPI."""

import pytest

from library import db
from tests.support import sign_in_patron


async def csrf_header(client) -> dict[str, str]:
    await client.get("/")
    return {"X-CSRFToken": client.cookies["library_csrf"]}


async def test_branches(client):
    branches = (await client.get("/api/branches")).json()
    assert {b["code"] for b in branches} == {"JX", "ZX", "XZ"}
    zx = next(b for b in branches if b["code"] == "ZX")
    assert zx["kind"] == "smart_study_room" and zx["today"]["reason"] in {"open_regular", "closed_weekly"}


async def test_next_open_day_after_national_day(client):
    answer = (await client.get("/api/branches/ZX/next-open-day", params={"on_or_after": "2026-10-01"})).json()
    assert answer == {"branch": "ZX", "on_or_after": "2026-10-01", "next_open_day": "2026-10-08"}


async def test_calendar_days_with_reasons(client):
    days = (await client.get("/api/branches/ZX/calendar", params={"start": "2026-10-01", "days": 10})).json()
    assert [d["reason"] for d in days][:3] == ["closed_public_holiday"] * 3
    assert days[9] == {"day": "2026-10-10", "is_open": True, "reason": "open_makeup_workday",
                       "hours": [{"opens": "08:30", "closes": "11:30"}, {"opens": "13:30", "closes": "20:30"}],
                       "note_zh": "", "note_en": ""}


async def test_rooms(client):
    rooms = (await client.get("/api/branches/ZX/rooms")).json()
    kids = next(r for r in rooms if r["code"] == "KIDS")
    assert (kids["name_zh"], kids["capacity"]) == ("邻乐空间", 30)
    assert kids["features"] == ["picture books", "floor cushions", "projector"]


async def test_unknown_branch_is_a_problem_body(client):
    response = await client.get("/api/branches/NOPE", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "branch_not_found" and body["detail"] == "There is no branch with the code NOPE."
    assert body["status"] == 404 and body["title"]


@pytest.mark.parametrize("query", [{"on_or_after": "yesterday"}, {"on_or_after": "2026-02-30"}])
async def test_a_malformed_date_is_a_400_problem(client, query):
    response = await client.get("/api/branches/ZX/next-open-day", params=query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


async def test_a_calendar_span_too_long_is_refused(client):
    response = await client.get("/api/branches/ZX/calendar", params={"days": 5000})
    assert response.status_code == 400


async def test_me_as_a_guardian(client):
    await sign_in_patron(client)
    me = (await client.get("/api/me")).json()
    assert me["kind"] == "patron" and me["card"]["card_number"] == "ZX10000001"
    assert [c["name"] for c in me["children"]] == ["李小米", "李小宇"]


async def test_me_needs_a_sign_in(client):
    response = await client.get("/api/me")
    assert response.status_code == 401 and response.json()["code"] == "sign_in_required"


async def test_api_sign_in_needs_the_csrf_header(client):
    body = {"kind": "patron", "login": "ZX10000001", "secret": "123456"}
    refused = await client.post("/api/session", json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    accepted = await client.post("/api/session", json=body, headers=await csrf_header(client))
    assert accepted.status_code == 201 and accepted.json()["name"] == "王芳"


async def test_api_sign_in_with_a_wrong_pin(client):
    response = await client.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "1"},
                                 headers={**await csrf_header(client), "Accept-Language": "en"})
    assert response.status_code == 401
    assert response.json()["detail"] == "The card number or PIN is not correct."


async def test_a_malformed_body_is_a_400_problem(client):
    response = await client.post("/api/session", content=b"{not json", headers={
        **await csrf_header(client), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_oversized_body_is_refused(client):
    response = await client.post("/api/session", content=b"x" * (2 * 1024 * 1024), headers={
        **await csrf_header(client), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_staff_add_and_remove_a_closure_through_the_api(client):
    headers = await csrf_header(client)
    await client.post("/api/session", json={"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
                      headers=headers)
    headers = await csrf_header(client)  # signing in changed the session, and so the token
    created = await client.post("/api/branches/ZX/calendar-exceptions", headers=headers,
                                json={"day": "2026-12-23", "reason_zh": "消防演练"})
    assert created.status_code == 201
    day = (await client.get("/api/branches/ZX/calendar", params={"start": "2026-12-23", "days": 1})).json()[0]
    assert (day["is_open"], day["reason"], day["note_zh"]) == (False, "closed_local", "消防演练")
    again = await client.post("/api/branches/ZX/calendar-exceptions", headers=headers,
                              json={"day": "2026-12-23", "reason_zh": "又一次"})
    assert again.status_code == 409 and again.json()["field"] == "day"
    removed = await client.delete("/api/branches/ZX/calendar-exceptions/2026-12-23", headers=headers)
    assert removed.status_code == 204


async def test_a_reader_cannot_write_the_calendar(client):
    headers = await csrf_header(client)
    await client.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "123456"},
                      headers=headers)
    headers = await csrf_header(client)  # signing in changed the session, and so the token
    response = await client.post("/api/branches/ZX/calendar-exceptions", headers=headers,
                                 json={"day": "2026-12-23", "reason_zh": "x"})
    assert response.status_code == 403 and response.json()["code"] == "staff_only"


async def test_health(client):
    assert (await client.get("/health")).json() == {"status": "ok", "database": "ok"}


async def test_health_when_the_database_is_down(client, monkeypatch):
    async def broken() -> bool:
        return False

    monkeypatch.setattr("library.web.controllers.database_ok", broken)
    response = await client.get("/health")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


async def test_an_unreachable_database_is_a_503_page_not_a_500(client, monkeypatch):
    async def refuse(*args, **kwargs):
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr("library.branches.service.list_branches", refuse)
    page = await client.get("/")
    assert page.status_code == 503 and "暂时无法连接图书馆数据库" in page.text


async def test_openapi_lists_the_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/branches/{code}/next-open-day" in schema["paths"]
    assert "/api/me" in schema["paths"]
    assert not any(path.startswith("/staff") for path in schema["paths"])


def test_database_ok_is_used_by_health():
    assert callable(db.database_ok)
