"""CSRF tokens bound to the session, HEAD answered wherever GET is, cookies Secure over HTTPS.

A "visit" is one browser: one cookie jar. Two visits of the same running app are two
clients on one transport; a token replayed from one in the other must be refused, even with
the first visit's CSRF cookie copied along (what an attacker who can plant cookies would do).
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from library.app import create_app
from library.settings import load_settings
from library.web import auth
from library.web.transport import TrustedProxies
from tests.support import client_for, csrf_token_from, form_token, running, sign_in_patron, sign_in_staff


def app_with(**variables: str):
    return create_app(load_settings({**os.environ, **variables}))


def another_visit(app, base_url: str = "http://testserver", address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A second browser on an app already running (its lifespan entered by `client_for`)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50001)), base_url=base_url)


def cookies_set(response: httpx.Response) -> dict[str, str]:
    """Each cookie the response sets, by name, with its attributes as sent."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


# --- CSRF bound to the session -------------------------------------------------------------


async def test_a_form_token_from_another_visit_is_refused(app, client):
    token_a = await form_token(client, "/signin")
    cookie_a = client.cookies["library_csrf"]
    async with another_visit(app) as visit_b:
        await visit_b.get("/signin")  # B has a session of its own
        visit_b.cookies.set("library_csrf", cookie_a)  # and A's CSRF cookie planted beside it
        replayed = await visit_b.post("/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                                       "_csrf_token": token_a, "next": "/account"})
        assert replayed.status_code == 403 and "表单已过期" in replayed.text
        assert "library_session" not in replayed.headers.get("set-cookie", "")
        # B's own token works: the refusal was the token's, not the form's.
        own = await visit_b.post("/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                                  "_csrf_token": await form_token(visit_b), "next": "/account"})
        assert own.status_code == 303
    async with another_visit(app) as no_session:
        # Only A's pair, no session at all: nothing to bind the token to.
        no_session.cookies.set("library_csrf", cookie_a)
        refused = await no_session.post("/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                                        "_csrf_token": token_a})
        assert refused.status_code == 403


async def test_an_api_token_from_another_visit_is_refused(app, client):
    await client.get("/")
    token_a = client.cookies["library_csrf"]
    body = {"kind": "patron", "login": "ZX10000001", "secret": "123456"}
    async with another_visit(app) as visit_b:
        await visit_b.get("/")
        token_b = visit_b.cookies["library_csrf"]
        assert token_b != token_a
        visit_b.cookies.set("library_csrf", token_a)
        replayed = await visit_b.post("/api/session", json=body, headers={"X-CSRFToken": token_a})
        assert replayed.status_code == 403 and replayed.json()["code"] == "csrf_failed"
        assert (await visit_b.post("/api/session", json=body, headers={"X-CSRFToken": token_b})).status_code == 201


async def test_a_signed_in_reader_s_token_does_not_work_in_another_reader_s_session(app, client):
    await sign_in_patron(client)
    token_a = csrf_token_from((await client.get("/account")).text)
    async with another_visit(app) as visit_b:
        await sign_in_staff(visit_b)
        refused = await visit_b.post("/signout", data={"_csrf_token": token_a})
        assert refused.status_code == 403
        assert (await visit_b.get("/staff/")).status_code == 200  # still signed in


async def test_signing_in_changes_the_token(client):
    before = await form_token(client, "/signin")
    await sign_in_patron(client)
    after = csrf_token_from((await client.get("/account")).text)
    assert after != before and client.cookies["library_csrf"] == after
    # A token seen before signing in (a planted anonymous session's, say) is worth nothing after.
    assert (await client.post("/signout", data={"_csrf_token": before})).status_code == 403
    assert (await client.post("/signout", data={"_csrf_token": after})).status_code == 303


@pytest.mark.parametrize("language, label", [("zh_CN", "登录"), ("en", "Sign in")])
async def test_anonymous_sign_in_works_in_both_languages(app, demo, language, label):
    async with client_for(app) as visitor:
        visitor.cookies.set("lang", language)
        page = await visitor.get("/signin")
        assert page.status_code == 200 and label in page.text
        signed = await visitor.post("/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                                      "_csrf_token": csrf_token_from(page.text), "next": "/account"})
        assert signed.status_code == 303 and signed.headers["location"] == "/account"
        assert (await visitor.get("/account")).status_code == 200
        staff_page = await visitor.get("/staff/signin")
        staff = await visitor.post("/staff/signin", data={
            "username": "librarian", "password": "librarian-demo", "_csrf_token": csrf_token_from(staff_page.text),
            "next": "/staff/"})
        assert staff.status_code == 303 and (await visitor.get("/staff/")).status_code == 200


async def test_a_form_posted_after_the_sign_in_lapsed_asks_to_sign_in_again(client, monkeypatch):
    await sign_in_patron(client)
    token = csrf_token_from((await client.get("/account")).text)
    later = time.time() + 9 * 3600
    monkeypatch.setattr(auth.time, "time", lambda: later)
    response = await client.post("/account/pin", data={"_csrf_token": token, "current": "123456",
                                                      "new": "654321", "again": "654321"})
    assert response.status_code == 303 and "expired=1" in response.headers["location"]


async def test_signing_out_ends_the_token_and_the_next_page_starts_a_new_one(client):
    await sign_in_patron(client)
    token = csrf_token_from((await client.get("/account")).text)
    assert (await client.post("/signout", data={"_csrf_token": token})).status_code == 303
    fresh = await form_token(client, "/signin")
    assert fresh != token
    assert (await client.post("/signin", data={"card_number": "ZX10000001", "pin": "123456",
                                               "_csrf_token": token})).status_code == 403


# --- HEAD wherever GET ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/catalog", "/api/branches", "/static/library.css"])
async def test_head_answers_like_get_without_a_body(client, path):
    await client.get(path)  # the visit's cookies are set: later answers set none
    got = await client.get(path)
    head = await client.head(path)
    assert got.status_code == head.status_code == 200
    assert got.content and head.content == b""

    def headers(response: httpx.Response) -> list[tuple[str, str]]:
        return sorted((name, value) for name, value in response.headers.multi_items()
                      if name not in ("date", "x-request-id"))  # each request has its own id

    assert headers(head) == headers(got)


async def test_head_of_a_path_without_get_is_still_refused(client):
    assert (await client.head("/signout")).status_code == 405


# --- Secure cookies over HTTPS -------------------------------------------------------------


async def test_cookies_are_secure_over_https_even_without_the_setting(demo):
    app = app_with(LIBRARY_SECURE_COOKIES="false")
    async with running(app), another_visit(app, base_url="https://testserver") as visitor:
        first = cookies_set(await visitor.get("/signin"))
        assert {"library_session", "library_csrf"} <= first.keys()
        signed = cookies_set(await sign_in_patron(visitor))
        assert "library_session" in signed
        for header in [*first.values(), *signed.values()]:
            assert "secure" in header.lower(), header
        assert (await visitor.get("/static/library.css")).headers["strict-transport-security"] == "max-age=31536000"
    async with running(app), another_visit(app) as plain:  # plain HTTP: the header would mean nothing
        assert "strict-transport-security" not in (await plain.get("/signin")).headers


@pytest.mark.parametrize("allowed, proto, secure", [
    ("127.0.0.1", "https", True),         # the proxy we connect from is named: believed
    ("127.0.0.0/8, ::1", "https", True),  # a network names it too
    ("*", "https", True),
    ("127.0.0.1", "http", False),         # the proxy says the reader came over plain HTTP
    ("192.0.2.10", "https", False),       # someone else's header: ignored
    (None, "https", False),               # no proxy trusted at all
])
async def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(demo, allowed, proto, secure):
    variables = {"LIBRARY_SECURE_COOKIES": "false"}
    if allowed is not None:
        variables["LIBRARY_FORWARDED_ALLOW_IPS"] = allowed
    env = {**os.environ, **variables}
    if allowed is None:
        env.pop("LIBRARY_FORWARDED_ALLOW_IPS", None)
    app = create_app(load_settings(env))
    async with running(app), another_visit(app, address="127.0.0.1") as visitor:
        response = await visitor.get("/signin", headers={"X-Forwarded-Proto": proto})
        cookies = cookies_set(response)
        assert {"library_session", "library_csrf"} <= cookies.keys()
        for header in cookies.values():
            assert ("secure" in header.lower()) is secure, header
        # Strict-Transport-Security only when the reader really came over HTTPS.
        assert (response.headers.get("strict-transport-security") == "max-age=31536000") is secure


@pytest.mark.parametrize("setting, host, trusted", [
    ("10.0.0.1", "10.0.0.1", True),
    ("10.0.0.1", "10.0.0.2", False),
    ("10.0.0.0/24,192.0.2.1", "10.0.0.77", True),
    ("fd00::/8", "fd00::5", True),
    ("*", "203.0.113.9", True),
    ("unix:/run/proxy.sock", "unix:/run/proxy.sock", True),
    ("", "127.0.0.1", False),
    (None, "127.0.0.1", False),
    ("10.0.0.1", None, False),
])
def test_trusted_proxies_are_read_as_uvicorn_reads_them(setting, host, trusted):
    assert (host in TrustedProxies(setting)) is trusted
