"""The OpenAPI document is true (library/web/openapi.py): every error an operation can answer is
listed, as the problem body it is; downloads say what they send; date-times carry their offset.

Walked three ways: the document itself (every error a problem body, no 500 anywhere, what every
route can answer listed everywhere); each operation probed as an adversary would, its answer held
to the document; and every answer of every HTTP test, held to it by the `client` fixture
(tests/http/contract.py). The fuzzer (tests/fuzz/) does the same with generated requests.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from library.errors import CirculationRefused, NotFound, NotPermitted, NotSignedIn
from library.web.openapi import PROBLEM, PROBLEM_MEDIA_TYPE, raised_by
from tests.http.contract import document, problems_with

NOBODY = "00000000-0000-4000-8000-000000000000"
CHANGING = {"post", "put", "patch", "delete"}


def operations():
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def statuses(operation) -> set[int]:
    return {int(code) for code in operation["responses"]}


def test_every_error_is_a_problem_body_and_none_is_a_500():
    for path, method, operation in operations():
        assert "default" not in operation["responses"], (method, path)
        for code, response in operation["responses"].items():
            assert int(code) != 500, f"{method} {path} documents a 500: a 500 is a bug, not an answer"
            if int(code) >= 400:
                assert set(response["content"]) == {PROBLEM_MEDIA_TYPE}, (method, path, code)
                schema = response["content"][PROBLEM_MEDIA_TYPE]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{PROBLEM}"}, (method, path, code)
    problem = document()["components"]["schemas"][PROBLEM]
    assert {"type", "status", "title", "detail"} <= set(problem["required"])
    assert {"code", "field", "reasons", "errors"} <= set(problem["properties"])


def test_what_every_route_can_answer_is_listed_everywhere():
    for path, method, operation in operations():
        documented = statuses(operation)
        assert 422 in documented, f"{method} {path}: the input boundary refuses a control character anywhere"
        if path != "/api/ping":
            assert 503 in documented, f"{method} {path}: the database may be unreachable"
        if operation.get("parameters") or operation.get("requestBody"):
            assert 400 in documented, f"{method} {path}: a parameter may not parse"
        if method in CHANGING:
            assert 413 in documented, f"{method} {path}: the boundary reads every body, within the limit"
            if not path.startswith("/api/sync/"):
                assert 403 in documented, f"{method} {path}: without its CSRF token"


@pytest.mark.parametrize(("method", "path", "present", "absent"), [
    ("post", "/api/loans/checkout", {401, 403, 404, 409}, set()),
    ("post", "/api/loans/renew", {401, 409}, set()),
    ("get", "/api/records/{uuid}", {404}, {401, 409}),
    ("get", "/api/branches", set(), {400, 401, 404, 409}),
    ("get", "/api/catalog/export", {401, 403, 404}, {409}),
    ("post", "/api/session", {401, 429}, set()),
    ("get", "/api/sync/changes", {401, 403}, {409}),
    ("get", "/api/ping", set(), {401, 404, 503}),
])
def test_the_statuses_come_from_what_the_code_raises(method, path, present, absent):
    documented = statuses(document()["paths"][path][method])
    assert present <= documented
    assert not absent & documented


def test_a_throttled_sign_in_documents_retry_after():
    response = document()["paths"]["/api/session"]["post"]["responses"]["429"]
    assert "Retry-After" in response["headers"]


def test_the_source_reading_follows_guards_services_and_helpers():
    from library.loans.controllers import CirculationAPI
    from library.web.auth import permission_guard

    found = raised_by(CirculationAPI.checkout.fn)
    assert CirculationRefused in found and NotFound in found
    assert {NotSignedIn, NotPermitted} <= raised_by(permission_guard)  # through may()


def test_downloads_say_what_they_send():
    export = document()["paths"]["/api/catalog/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/marc", "application/marcxml+xml"}
    refused = document()["paths"]["/api/catalog/imports/{uuid}/refused.mrc"]["get"]["responses"]["200"]["content"]
    assert set(refused) == {"application/marc"}


def _address(path: str) -> str:
    values = {"code": "ZX", "day": "2026-12-01", "text": "9787532756556"}
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), NOBODY), path)


@pytest.mark.parametrize(("path", "method"), [(path, method) for path, method, _ in operations()])
async def test_every_operation_refuses_as_documented(client, path, method):
    """Anonymous, with a NUL in a query parameter nobody declared and no CSRF token: the answer
    (a 401, a 403 or the 422 naming the parameter) is one the document lists, in its shape —
    the `client` fixture fails the request otherwise."""
    response = await client.request(method.upper(), _address(path) + "?x=%00")
    assert response.status_code in (401, 403, 422), response.text
    problem = response.json()
    if response.status_code == 422:
        assert problem["code"] == "control_characters" and problem["field"] == "x"
    if response.status_code == 403 and method in CHANGING and not path.startswith("/api/sync/"):
        assert problem["code"] == "csrf_failed"


async def test_the_refusals_of_the_input_boundary_are_documented(client):
    """A missing body and a date past the calendar: 422s, held to the document by the fixture."""
    await client.get("/")
    await client.post("/api/session", json={"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
                      headers={"X-CSRFToken": client.cookies["library_csrf"]})
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    response = await client.put(f"/api/records/{NOBODY}", headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "body_required"
    response = await client.get("/api/branches/ZX/next-open-day?on_or_after=9999-12-31")
    assert response.status_code == 422 and response.json()["code"] == "date_beyond_calendar"


async def test_sessions_carry_their_utc_offset(client):
    sessions = (await client.get("/api/activities/sessions")).json()
    assert sessions
    for session in sessions:
        for moment in (session["starts"], session["ends"]):
            assert dt.datetime.fromisoformat(moment).utcoffset() == dt.timedelta(hours=8), moment


@pytest.mark.parametrize(("status", "content_type", "body", "complaint"), [
    (409, "application/problem+json", b'{"type":"about:blank","status":409,"title":"t","detail":"d"}',
     "does not list"),
    (404, "application/json", b'{"type":"about:blank","status":404,"title":"t","detail":"d"}', "the document says"),
    (404, "application/problem+json", b'{"status":404}', "does not match its schema"),
    (200, "application/json", b'[{"session":"s","title_zh":"","title_en":"","branch":"ZX","room":null,'
                              b'"starts":"2026-12-04T19:00:00","ends":"2026-12-04T20:00:00+08:00","capacity":1,'
                              b'"confirmed":0,"waitlisted":0,"seats_left":1,"status":"scheduled"}]', "date-time"),
])
def test_the_contract_check_finds_what_the_document_does_not_say(status, content_type, body, complaint):
    path = "/api/activities/sessions" if status == 200 else f"/api/records/{NOBODY}"
    problems = problems_with("GET", path, status, content_type, body)
    assert problems and complaint in problems[0], problems
    assert problems_with("GET", "/not-an-operation", 500, "text/html", b"") == []
