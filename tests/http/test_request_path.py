"""Issue 20: routes outside a reader's visit skip the session, the principal and CSRF
(library/web/visit.py) — and lose nothing that guards anything."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import library.web.auth as auth
from library.web.security import SECURITY_HEADERS
from library.web.visit import needs_visit, _pattern
from tests.support import sign_in_patron

STATELESS = ["/api/ping", "/health", "/static/library.css", "/activities/feeds/ZX.ics", "/schema/openapi.json"]


@pytest.fixture
def principal_loads(monkeypatch):
    """How many times a request looked up who is signed in."""
    calls = []
    original = auth.load_principal

    async def counting(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(auth, "load_principal", counting)
    return calls


async def test_a_signed_in_reader_polling_a_feed_costs_no_session_and_no_lookup(client, principal_loads):
    """A reader's phone polls the branch feed and fetches the style sheet with her session cookie on
    every request: none of them decrypts, rewrites or re-issues a cookie or looks her up; a page does."""
    await sign_in_patron(client)
    assert client.cookies.get("library_session")
    principal_loads.clear()
    for path in STATELESS:
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text[:200])
        assert answer.headers.get_list("set-cookie") == [], path
        # The security headers are not part of the visit: they stay on everything.
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (path, name)
    assert principal_loads == []
    account = await client.get("/account")
    assert account.status_code == 200 and len(principal_loads) == 1


async def test_an_anonymous_fetch_of_static_files_and_feeds_sets_no_cookie(client):
    for path in STATELESS:
        answer = await client.get(path)
        assert "set-cookie" not in answer.headers, path
    assert not client.cookies


async def test_csrf_still_guards_every_changing_request_of_the_visit(client):
    """A forged cross-site post (no token) to the API and to a page is still refused after the gate."""
    await client.get("/")
    refused = await client.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "123456"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    page = await client.post("/signin", data={"card_number": "ZX10000001", "pin": "123456"})
    assert page.status_code == 403
    good = await client.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "123456"},
                             headers={"X-CSRFToken": client.cookies["library_csrf"]})
    assert good.status_code in (200, 201), good.text


def _handler(opt: dict, methods: set[str]):
    return SimpleNamespace(opt=opt, http_methods=methods)


def test_a_route_that_changes_things_keeps_csrf_even_when_marked_stateless():
    """A developer marks a new POST route `opt={"visit": False}` or puts it under a stateless path:
    it still goes through the session and CSRF, unless its path is exempt from CSRF by name."""
    stateless, exempt = _pattern(["^/static", "^/api/sync/"]), _pattern(["^/api/sync/"])
    assert not needs_visit(_handler({"visit": False}, {"GET", "HEAD"}), "/api/ping", stateless, exempt)
    assert not needs_visit(_handler({}, {"GET"}), "/static/{file_path:path}", stateless, exempt)
    assert needs_visit(_handler({"visit": False}, {"POST"}), "/api/ping", stateless, exempt)
    assert needs_visit(_handler({}, {"DELETE"}), "/static/{file_path:path}", stateless, exempt)
    assert not needs_visit(_handler({}, {"POST"}), "/api/sync/upload", stateless, exempt)
    assert needs_visit(_handler({"permission": "public"}, {"GET"}), "/catalog", stateless, exempt)
