"""What people do on the pages, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_librarian_switches_language_signs_in_sees_the_staff_menu_and_signs_out(desktop):
    page = desktop
    page.goto("/")
    expect(page.locator("h1")).to_have_text("身边的图书馆")

    page.click("a[data-lang=en]")
    expect(page.locator("h1")).to_have_text("Libraries near you")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.click("text=Staff")
    expect(page).to_have_url(re.compile(r"/staff/signin$"))
    page.fill("input[name=username]", "librarian")
    page.fill("input[name=password]", "librarian-demo")
    page.click("button[type=submit]")

    expect(page.locator("h1")).to_have_text("Staff desk")
    menu = page.locator("nav.menu")
    expect(menu.locator("[data-menu=staff]")).to_be_visible()
    expect(menu.get_by_role("link", name="Readers")).to_be_visible()
    expect(page.locator(".staff-menu")).to_contain_text("Calendar: Zhenxing Community Smart Study Room")

    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("link", name="Reader sign-in")).to_be_visible()
    page.goto("/staff/")
    expect(page).to_have_url(re.compile(r"/staff/signin\?next="))


def test_wrong_password_is_explained_in_chinese(desktop):
    page = desktop
    page.goto("/staff/signin")
    page.fill("input[name=username]", "librarian")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_have_text("用户名或密码不正确。")


def test_a_mother_on_her_phone_sees_her_childrens_cards(phone):
    page = phone
    page.goto("/signin")
    page.fill("input[name=card_number]", "ZX10000001")
    page.fill("input[name=pin]", "123456")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("我的账户")
    expect(page.locator("[data-card=ZX10000002]")).to_contain_text("李小米")
    expect(page.locator("[data-card=ZX10000003]")).to_contain_text("李小宇")
    # Nothing wider than the phone: no sideways scrolling.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_branch_page_on_a_phone_shows_the_week_and_rooms(phone):
    page = phone
    page.goto("/branches/ZX")
    expect(page.locator("h1")).to_have_text("振兴社区智慧书房")
    expect(page.locator("text=邻乐空间")).to_be_visible()
    assert page.locator("ul.days li").count() == 14
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
