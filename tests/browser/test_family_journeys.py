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
