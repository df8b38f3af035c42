"""What the web settings of the README's table change, each set through its environment variable.

Each test builds the app from the suite's environment plus the variable under test (as a
server started with that variable would read it) and looks at what a reader or a member of
staff would see.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import httpx

from library.app import create_app
from library.catalog import metadata
from library.clock import set_clock
from library.settings import load_settings
from library.web import auth
from tests.support import client_for, form_token, running, sign_in_patron, sign_in_staff


def app_with(**variables: str):
    return create_app(load_settings({**os.environ, **variables}))


def other_address(app, address: str) -> httpx.AsyncClient:
    """A second client of an app already running (its lifespan entered by `client_for`)."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def sign_in_attempt(client: httpx.AsyncClient, card: str, pin: str = "000000") -> httpx.Response:
    token = await form_token(client, "/signin")
    return await client.post("/signin", data={"card_number": card, "pin": pin, "_csrf_token": token})


async def test_the_default_language_is_the_setting_s(demo):
    """LIBRARY_DEFAULT_LANGUAGE: the language of a visitor whose browser says nothing."""
    async with client_for(app_with(LIBRARY_DEFAULT_LANGUAGE="en")) as client:
        english = await client.get("/")
        assert '<html lang="en">' in english.text and "Libraries near you" in english.text
        # The browser's own language still comes first.
        chinese = await client.get("/", headers={"Accept-Language": "zh-CN"})
        assert "身边的图书馆" in chinese.text
    async with client_for(app_with(LIBRARY_DEFAULT_LANGUAGE="zh_CN")) as client:
        assert "身边的图书馆" in (await client.get("/")).text


async def test_sessions_are_signed_with_the_secret_key(demo):
    """LIBRARY_SECRET_KEY: a sign-in made under one key holds after a restart with the same key,
    and is worth nothing to a server with another."""
    key = "k" * 40
    async with client_for(app_with(LIBRARY_SECRET_KEY=key)) as client:
        assert (await sign_in_patron(client)).status_code == 303
        cookies = dict(client.cookies)
    async with client_for(app_with(LIBRARY_SECRET_KEY=key)) as restarted:
        restarted.cookies.update(cookies)
        page = await restarted.get("/account")
        assert page.status_code == 200 and "王芳" in page.text
    async with client_for(app_with(LIBRARY_SECRET_KEY="another-key-" + "x" * 30)) as stranger:
        stranger.cookies.update(cookies)
        page = await stranger.get("/account")
        assert page.status_code == 303 and page.headers["location"].startswith("/signin")


async def test_a_body_over_the_setting_is_refused(demo):
    """LIBRARY_MAX_BODY_BYTES: 413 beyond the limit, whatever the form."""
    async with client_for(app_with(LIBRARY_MAX_BODY_BYTES="4096")) as client:
        # The same sign-in, with a note field the form does not read making the body 1 KB, then 5 KB.
        token = await form_token(client, "/signin")
        small = await client.post("/signin", data={"_csrf_token": token, "card_number": "ZX10000001", "pin": "1",
                                                   "note": "x" * 1000})
        assert small.status_code == 401
        token = await form_token(client, "/signin")
        big = await client.post("/signin", data={"_csrf_token": token, "card_number": "ZX10000001", "pin": "1",
                                                 "note": "x" * 5000})
        assert big.status_code == 413 and "提交的数据超过了系统允许的大小" in big.text


async def test_a_sign_in_lasts_the_setting_s_minutes(demo, monkeypatch):
    """LIBRARY_SESSION_MINUTES: still signed in a minute before the end, asked again a minute after."""
    signed_in_at = time.time()
    monkeypatch.setattr(auth.time, "time", lambda: signed_in_at)
    async with client_for(app_with(LIBRARY_SESSION_MINUTES="30")) as client:
        await sign_in_patron(client)
        monkeypatch.setattr(auth.time, "time", lambda: signed_in_at + 29 * 60)
        assert (await client.get("/account")).status_code == 200
        monkeypatch.setattr(auth.time, "time", lambda: signed_in_at + 31 * 60)
        expired = await client.get("/account")
        assert expired.status_code == 303 and "expired=1" in expired.headers["location"]


async def test_failed_sign_ins_are_throttled_per_card_then_per_address(demo):
    """LIBRARY_SIGNIN_FAILURES_PER_MINUTE=2: the third try on one card is refused, and from one
    client address 4 × 2 = 8 failures across different cards close the form to every card; another
    address is not affected."""
    app = app_with(LIBRARY_SIGNIN_FAILURES_PER_MINUTE="2")
    async with client_for(app) as client:
        for _ in range(2):
            assert (await sign_in_attempt(client, "ZX10000001")).status_code == 401
        per_card = await sign_in_attempt(client, "ZX10000001", pin="123456")  # the right PIN, not even checked
        assert per_card.status_code == 429 and "登录失败次数过多" in per_card.text
        # Six more failures, two on each of three other cards: eight from this address in all.
        for card in ("ZX10000002", "ZX10000003", "JX20000001"):
            for _ in range(2):
                assert (await sign_in_attempt(client, card)).status_code == 401
        per_address = await sign_in_attempt(client, "ZX10000005", pin="123456")  # a card not tried before
        assert per_address.status_code == 429 and int(per_address.headers["retry-after"]) > 0
        async with other_address(app, "192.0.2.7") as elsewhere:
            assert (await sign_in_attempt(elsewhere, "ZX10000005")).status_code == 401


async def test_cookies_are_secure_when_the_setting_says(demo):
    """LIBRARY_SECURE_COOKIES: behind HTTPS, the session and CSRF cookies are never sent over plain HTTP."""
    app = app_with(LIBRARY_SECURE_COOKIES="true")
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="https://testserver") as client:
        csrf_cookie = (await client.get("/signin")).headers["set-cookie"]
        assert "library_csrf=" in csrf_cookie and "secure" in csrf_cookie.lower()
        session_cookie = (await sign_in_patron(client)).headers["set-cookie"]
        assert "library_session=" in session_cookie and "secure" in session_cookie.lower()
    async with client_for(app_with(LIBRARY_SECURE_COOKIES="false")) as client:
        session_cookie = (await sign_in_patron(client)).headers["set-cookie"]
        assert "library_session=" in session_cookie and "secure" not in session_cookie.lower()


async def test_debug_mode_never_shows_a_stack_trace_to_a_reader(demo):
    """LIBRARY_DEBUG: Litestar's debug mode is on, yet an unexpected error is still the friendly page."""
    from litestar import get

    @get("/boom", include_in_schema=False, opt={"permission": "public"})
    async def boom() -> str:
        raise RuntimeError("secret internals")

    debugging = app_with(LIBRARY_DEBUG="true")
    assert debugging.debug is True and app_with().debug is False
    debugging.register(boom)
    async with client_for(debugging) as client:
        page = await client.get("/boom")
    assert page.status_code == 500 and "系统出现了问题" in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text


async def test_today_is_the_day_in_the_network_s_time_zone(demo):
    """LIBRARY_TIME_ZONE: Monday 30 November 2026 at 20:00 UTC is already Tuesday in Jiaxing, when
    the Zhenxing room (closed on Mondays) is open; in UTC it is still its closing day."""
    set_clock(lambda: dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.timezone.utc))
    english = {"Accept-Language": "en"}
    async with client_for(app_with(LIBRARY_TIME_ZONE="Asia/Shanghai")) as client:
        jiaxing = (await client.get("/", headers=english)).text
    async with client_for(app_with(LIBRARY_TIME_ZONE="UTC")) as client:
        utc = (await client.get("/", headers=english)).text
    zhenxing = "Zhenxing Community Smart Study Room"
    assert "regular closing day" not in card_of(jiaxing, zhenxing)
    assert "regular closing day" in card_of(utc, zhenxing)


def card_of(page: str, name: str) -> str:
    start = page.index(name)
    return page[start:page.index("</li>", start)]


ISBN = "9787533278267"  # 好饿的毛毛虫, in the local provider's file


async def test_metadata_comes_from_the_providers_named_in_order(demo, monkeypatch):
    """LIBRARY_METADATA_PROVIDERS: the record form is filled by the first provider that knows the book."""
    asked = []

    def meta(isbn, service):
        asked.append(service)
        return {"ISBN-13": isbn, "Title": f"The Very Hungry Caterpillar ({service})", "Authors": ["Eric Carle"],
                "Publisher": "", "Year": "1969", "Language": "en"}

    monkeypatch.setattr(metadata.isbnlib, "meta", meta)
    async with client_for(app_with(LIBRARY_METADATA_PROVIDERS="local,openl")) as client:
        await sign_in_staff(client)
        local_first = await client.get("/staff/catalog/records/new", params={"isbn": ISBN})
    assert "好饿的毛毛虫" in local_first.text and asked == []
    async with client_for(app_with(LIBRARY_METADATA_PROVIDERS="openl,local")) as client:
        await sign_in_staff(client)
        openl_first = await client.get("/staff/catalog/records/new", params={"isbn": ISBN})
    assert "The Very Hungry Caterpillar (openl)" in openl_first.text and asked == ["openl"]


async def test_a_slow_metadata_provider_is_given_up_after_the_setting_s_seconds(demo, monkeypatch):
    """LIBRARY_METADATA_TIMEOUT: an unresponsive service is left after 1 s; the librarian gets the
    empty form (the ISBN filled in), not a wait for the service."""
    release, finished = threading.Event(), threading.Event()

    def hang(isbn, service):
        release.wait(30)  # an unresponsive host: it answers only when the test lets it
        finished.set()

    monkeypatch.setattr(metadata.isbnlib, "meta", hang)
    try:
        async with client_for(app_with(LIBRARY_METADATA_PROVIDERS="goob", LIBRARY_METADATA_TIMEOUT="1")) as client:
            await sign_in_staff(client)
            form = await client.get("/staff/catalog/records/new", params={"isbn": ISBN})
            assert not finished.is_set(), "the form waited for the provider instead of giving up"
        assert form.status_code == 200 and "978-7-5332-7826-7" in form.text and "好饿的毛毛虫" not in form.text
    finally:
        release.set()
