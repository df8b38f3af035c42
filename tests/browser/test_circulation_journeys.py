"""Circulation journeys in a real browser: the desk lends three books, a mother renews all, a return elsewhere."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# The demo's copies get generated barcodes in a fixed order (branch prefix, number, Luhn digit):
# at Zhenxing, 猜猜我有多爱你 ZX000000018 (lent to 王芳) and ZX000000026, then one copy each of the
# next books on the shelf.
ON_THE_SHELF_AT_ZX = ["ZX000000026", "ZX000000034", "ZX000000042"]
LENT_TO_THE_MOTHER_AT_ZX = "ZX000000018"


def sign_in_staff(page, username="librarian", password="librarian-demo"):
    page.goto("/staff/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_be_visible()


def test_a_volunteer_checks_out_three_books_and_prints_the_slip(desktop):
    page = desktop
    sign_in_staff(page)
    page.click("nav.menu [data-menu=circulation]")
    expect(page.locator("h1")).to_have_text("借还服务台")
    page.fill("[data-form=patron] input[name=card]", "JX20000001")
    page.press("[data-form=patron] input[name=card]", "Enter")
    expect(page.locator("[data-patron=JX20000001]")).to_contain_text("张建国")
    for barcode in ON_THE_SHELF_AT_ZX:
        page.fill("[data-form=checkout] input[name=barcode]", barcode)
        page.press("[data-form=checkout] input[name=barcode]", "Enter")
        expect(page.locator(f"[data-lent={barcode}]")).to_contain_text("应还日期")
    rows = page.locator("table.loans tbody tr[data-loan]")
    expect(rows).to_have_count(3)
    slip = page.locator("a[data-slip]")
    expect(slip).to_contain_text("本次借出 3 册")
    page.goto(slip.get_attribute("href"))
    expect(page.locator("tr.new")).to_have_count(3)
    expect(page.locator("body")).to_contain_text("可在全市任一馆归还")


def test_a_mother_renews_all_on_her_phone_and_reads_the_refusals(phone):
    page = phone
    page.goto("/signin")
    page.fill("input[name=card_number]", "ZX10000001")
    page.fill("input[name=pin]", "123456")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("我的账户")
    loans = page.locator("[data-section=loans]")
    expect(loans.locator("li[data-loan]")).to_have_count(4)  # hers and her two children's
    page.click("[data-action=renew-all]")
    renewed = page.locator(".renewals li.ok")
    refused = page.locator(".renewals li.refused")
    expect(renewed).to_have_count(2)
    expect(refused).to_have_count(2)
    expect(refused.first).to_contain_text("有读者在等这本书。")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_a_book_returned_at_another_branch_goes_in_transit(desktop):
    page = desktop
    sign_in_staff(page, "admin", "admin-demo-pass")
    page.goto("/staff/circulation/?branch=JX")
    form = page.locator("[data-form=checkin]")
    form.locator("select[name=branch]").select_option("JX")
    form.locator("input[name=barcode]").fill(LENT_TO_THE_MOTHER_AT_ZX)
    form.locator("button[type=submit]").click()
    result = page.locator(f"[data-returned={LENT_TO_THE_MOTHER_AT_ZX}]")
    expect(result).to_have_attribute("data-route", "transit_home")
    expect(result.locator(".route")).to_contain_text(re.compile("在途：送回所属馆 .*振兴"))
    page.goto("/staff/circulation/transits?branch=ZX")
    expect(page.locator(f"[data-list=from] tr[data-barcode={LENT_TO_THE_MOTHER_AT_ZX}]")).to_be_visible()
