"""A family's activities in a real browser, in Chinese on a phone: from this week to next in the
calendar, and a mother who finds her two children's sessions on 我的账户 and cancels one."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def sign_in_reader(page, card):
    page.goto("/signin")
    page.fill("input[name=card_number]", card)
    page.fill("input[name=pin]", "123456")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("我的账户")


def no_sideways_scrolling(page):
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def register(page, kind, card):
    """The first session of a kind at Zhenxing, from the calendar's list, for one child."""
    page.goto(f"/activities?branch=ZX&kind={kind}")
    page.locator("ul.sessions li a").first.click()
    page.check(f"input[name=card][value={card}]")
    page.click("[data-action=register]")
    expect(page.locator(f"[data-outcome={card}]")).to_have_class("ok")


def test_the_week_view_reaches_next_weeks_sessions(phone):
    """The demo's clubs start next Monday, and next week is one tap away from this one."""
    page = phone
    page.goto("/activities?branch=ZX")
    page.click("[data-view-link=week]")
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the branch's day, not this machine's
    monday = today - dt.timedelta(days=today.weekday())
    expect(page.locator("[data-shown]")).to_have_attribute("data-shown", monday.isoformat())
    expect(page.locator(f".day[data-day='{today.isoformat()}']")).to_have_attribute("aria-current", "date")

    page.click("[data-nav=next]")
    following = monday + dt.timedelta(days=7)
    expect(page.locator("[data-shown]")).to_have_attribute("data-shown", following.isoformat())
    assert "branch=ZX" in page.url and "view=week" in page.url
    sessions = page.locator(".day a")
    expect(sessions.first).to_be_visible()
    expect(page.locator("[data-view=week]")).to_contain_text("周六绘本俱乐部")
    expect(page.locator(".weekday").first).to_have_text("星期一")  # hidden on a phone: each day names its own
    expect(page.locator(f".day[data-day='{following.isoformat()}'] .date")).to_contain_text("周一")
    no_sideways_scrolling(page)
    sessions.first.click()
    expect(page.locator("h1")).not_to_be_empty()
    assert "/activities/sessions/" in page.url


def test_a_mother_sees_her_childrens_sessions_on_her_account_and_cancels_one(phone):
    page = phone
    sign_in_reader(page, "ZX10000001")
    register(page, "reading_club", "ZX10000002")  # 李小米, 5, to the picture-book club
    register(page, "lecture", "ZX10000003")  # 李小宇, 3, to the talk (all ages)

    page.click("a[data-menu=account]")
    expect(page.locator("h1")).to_have_text("我的账户")
    upcoming = page.locator("[data-list=upcoming] li")
    expect(upcoming).to_have_count(2)
    daughter = page.locator("[data-list=upcoming] li[data-reader=ZX10000002]")
    son = page.locator("[data-list=upcoming] li[data-reader=ZX10000003]")
    expect(daughter).to_contain_text("周六绘本俱乐部")
    expect(daughter).to_contain_text("李小米：已确认")
    expect(daughter).to_contain_text("邻乐空间")
    expect(daughter).to_contain_text("10:00–11:00")
    expect(son).to_contain_text("知识讲堂")
    expect(son).to_contain_text("李小宇：已确认")
    expect(page.locator("a[data-link=challenge]")).to_have_count(2)
    no_sideways_scrolling(page)

    son.locator("[data-action=cancel-registration]").click()
    expect(page).to_have_url(re.compile(r"/account\?done=registration_cancelled#activities$"))
    expect(page.locator("#activities [role=status]")).to_contain_text("报名已取消")
    expect(upcoming).to_have_count(1)
    expect(page.locator("[data-list=upcoming]")).not_to_contain_text("知识讲堂")
    expect(daughter).to_contain_text("李小米：已确认")


def _in_a_thread(coroutine_function, *args):
    """The database from the test's side (pytest-asyncio may run a loop in this thread)."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_function(*args)).result()


async def _a_full_summer_series() -> list[str]:
    """Three Saturday afternoons from next week at Zhenxing with two seats each: a family of two
    children fills them, the next family waits."""
    from library.accounts.tables import Patron
    from library.activities import service
    from library.activities.service import EventInput
    from tests.http.families import LIBRARIAN

    for card, email in (("ZX10000001", "wangfang@example.org"), ("ZX10000004", "chenjing@example.org")):
        await Patron.update({Patron.email: email}).where(Patron.card_number == card)  # both gave an address
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    saturday = today + dt.timedelta(days=(5 - today.weekday()) % 7 + 7)
    until = saturday + dt.timedelta(days=14)
    event = await service.schedule_event(LIBRARIAN, EventInput(
        branch_code="ZX", title_zh="暑期绘本营", title_en="Summer picture-book camp", kind="summer_reading",
        first_start=dt.datetime.combine(saturday, dt.time(14, 0)), duration_minutes=60, capacity=2,
        rrule=f"FREQ=WEEKLY;BYDAY=SA;UNTIL={until:%Y%m%d}T235959"), dt.datetime.now(dt.timezone.utc))
    return [str(s["uuid"]) for s in await service.occurrences_of(event) if s["status"] == "scheduled"]


async def _another_family_waits(session: str) -> str:
    from library.activities import service
    from tests.http.families import reader

    [outcome] = await service.register(await reader("ZX10000004"), session, ["ZX10000004"],
                                       dt.datetime.now(dt.timezone.utc))
    assert outcome.status == "waitlisted" and outcome.position == 1
    return outcome.registration


async def _notices_of(card: str) -> list[dict]:
    from library.accounts.tables import Patron
    from library.notices.tables import Notice

    patron = await Patron.select(Patron.id).where(Patron.card_number == card).first()
    return await Notice.select(Notice.kind, Notice.subject, Notice.body).where(Notice.patron == patron["id"])


async def _status_of(registration: str) -> str:
    from library.activities.tables import Registration

    return (await Registration.select(Registration.status).where(Registration.uuid == registration).first())["status"]


def test_a_mother_registers_both_children_for_a_series_and_a_cancelled_seat_goes_to_the_next_family(phone):
    """Issue 18's journey: 王芳 signs her two children up for every session of a summer series in
    one step (previewed first), sees them on 我的账户, has the confirmation in the outbox; another
    family waits for the first session; she cancels her son's first session, and that family is
    given the seat and told."""
    page = phone
    sessions = _in_a_thread(_a_full_summer_series)
    assert len(sessions) == 3
    sign_in_reader(page, "ZX10000001")

    page.goto(f"/activities/sessions/{sessions[0]}")
    page.click("[data-link=series] a")
    expect(page).to_have_url(re.compile(r"/activities/series/[0-9a-f-]{36}/register$"))
    expect(page.locator("h1")).to_have_text("暑期绘本营")
    page.check("input[name=card][value=ZX10000002]")
    page.check("input[name=card][value=ZX10000003]")
    page.click("[data-action=preview]")
    expect(page.locator("[data-preview]")).to_be_visible()
    expect(page.locator("table.programme-plan td[data-outcome=seat]")).to_have_count(6)
    no_sideways_scrolling(page)
    page.click("[data-action=confirm]")
    expect(page.locator("[data-done]")).to_be_visible()
    expect(page.locator("table.programme-plan td[data-outcome=seat]")).to_have_count(6)

    confirmation = [n for n in _in_a_thread(_notices_of, "ZX10000001") if n["kind"] == "programme_registered"]
    assert len(confirmation) == 1 and "暑期绘本营" in confirmation[0]["subject"]
    assert "李小米" in confirmation[0]["body"] and "李小宇" in confirmation[0]["body"]

    waiting = _in_a_thread(_another_family_waits, sessions[0])

    page.goto("/account")
    camp = page.locator("[data-list=upcoming] li", has_text="暑期绘本营")
    expect(camp).to_have_count(6)
    son_first = page.locator("[data-list=upcoming] li[data-reader=ZX10000003]", has_text="暑期绘本营").first
    expect(son_first).to_contain_text("李小宇：已确认")
    son_first.locator("[data-action=cancel-registration]").click()
    expect(page.locator("#activities [role=status]")).to_contain_text("报名已取消")
    expect(camp).to_have_count(5)

    assert _in_a_thread(_status_of, waiting) == "confirmed"
    told = [n for n in _in_a_thread(_notices_of, "ZX10000004") if n["kind"] == "seat_confirmed"]
    assert len(told) == 1 and "暑期绘本营" in told[0]["subject"]
