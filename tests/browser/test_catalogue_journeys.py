"""The librarian's and the parent's catalogue journeys, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def sign_in_librarian(page):
    page.goto("/staff/signin")
    page.fill("input[name=username]", "librarian")
    page.fill("input[name=password]", "librarian-demo")
    page.click("button[type=submit]")
    expect(page.locator("[data-menu=staff]")).to_be_visible()


def test_scan_new_record_add_copies_and_print_labels(desktop):
    page = desktop
    sign_in_librarian(page)
    page.click("[data-menu=cataloguing]")

    # A mistyped check digit is explained at once, with the digit expected.
    page.fill("input[name=isbn]", "978-7-5332-7826-1")
    page.keyboard.press("Enter")
    expect(page.locator("[role=alert]")).to_contain_text("应为 7")

    # The scanner sends the EAN-13 with its price add-on.
    page.fill("input[name=isbn]", "9787533278267 51800")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("新书目记录")
    expect(page.locator("[data-source=local]")).to_be_visible()
    expect(page.locator("input[name=title]")).to_have_value("好饿的毛毛虫")
    expect(page.locator("input[name=isbn]")).to_have_value("978-7-5332-7826-7")
    page.click("text=保存书目记录")

    expect(page.locator("h1")).to_contain_text("好饿的毛毛虫")
    page.fill("input[name=count]", "2")
    page.fill("input[name=shelf_location]", "邻乐空间")
    page.click("text=添加复本并打印书标")

    expect(page.locator("h1")).to_have_text("书标")
    labels = page.locator(".label")
    expect(labels).to_have_count(2)
    expect(labels.first.locator(".call-number")).to_have_text("I712.85/ARKE")
    assert labels.first.locator("svg").count() == 1
    expect(labels.first.locator(".barcode-text")).to_have_text(re.compile(r"^ZX\d{9}$"))

    # A second scan of the same book finds the record and its copies.
    page.goto("/staff/catalog/?isbn=7533278267")
    expect(page.locator("[data-scan-summary]")).to_contain_text("振兴社区智慧书房 2 册")


@pytest.mark.parametrize("query", ["好饿的毛毛虫", "好餓的毛毛蟲", "maomaochong", "hedmmc", "hungry caterpillar"])
def test_a_parent_finds_the_book_every_way(phone, query):
    """Finds the record and copies the librarian made in the journey above (same server, same module)."""
    page = phone
    page.goto("/catalog")
    page.fill("input[name=q]", query)
    page.keyboard.press("Enter")
    # "hungry caterpillar" also finds the English board book; the Chinese edition is among the hits.
    hit = page.locator(".hit", has_text="好饿的毛毛虫")
    expect(hit).to_have_count(1)
    expect(hit.locator("[data-branch=ZX]")).to_contain_text("2 册在架")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
