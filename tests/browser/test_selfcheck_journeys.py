"""The self-check page on a tablet by the door, in a real browser: staff set the tablet up, a
reader lends two books with a scanner and is refused a third with the reason, takes a
receipt; a child's card works; the page keeps within its Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_circulation_journeys import LENT_TO_THE_MOTHER_AT_ZX, ON_THE_SHELF_AT_ZX, sign_in_staff
from tests.browser.test_content_security_policy import RECORD_VIOLATIONS

pytestmark = pytest.mark.browser


@pytest.fixture
def tablet(browser, server):
    """A tablet by the door: touch, portrait, Chinese; script errors and CSP refusals are kept."""
    context = browser.new_context(base_url=server, viewport={"width": 800, "height": 1280}, locale="zh-CN",
                                  has_touch=True)
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    problems += page.evaluate("window.__csp || []")
    context.close()
    assert not problems, problems


def set_up_station(page, name: str) -> None:
    """A librarian signs in on the tablet and makes it a station; she is signed out on it."""
    sign_in_staff(page)
    page.goto("/staff/selfcheck/")
    page.fill("[data-form=issue] input[name=name]", name)
    page.click("[data-form=issue] button[type=submit]")
    page.wait_for_url("**/selfcheck")
    expect(page.locator("[data-form=signin]")).to_be_visible()


def scan(page, barcode: str) -> None:
    """A USB scanner types into whatever has the focus and presses Enter."""
    page.keyboard.type(barcode)
    page.keyboard.press("Enter")


def reader_signs_in(page, card: str, pin: str = "123456") -> None:
    expect(page.locator("input[name=card_number]")).to_be_focused()
    scan(page, card)  # the card scanned: Enter moves on to the PIN (the form asks for it)
    page.fill("input[name=pin]", pin)
    page.press("input[name=pin]", "Enter")
    expect(page.locator("[data-form=lend] input[name=barcode]")).to_be_focused()


def test_a_reader_lends_two_books_is_refused_a_third_with_the_reason_and_prints_a_receipt(tablet):
    page = tablet
    set_up_station(page, "门口平板")
    reader_signs_in(page, "ZX10000001")
    expect(page.locator("h1")).to_contain_text("王芳")
    for barcode in ON_THE_SHELF_AT_ZX[:2]:
        scan(page, barcode)
        expect(page.locator(f"[data-result=lent][data-barcode={barcode}]")).to_contain_text("借书成功，请于")
        # The scan field has the focus again for the next book.
        expect(page.locator("[data-form=lend] input[name=barcode]")).to_be_focused()
    scan(page, LENT_TO_THE_MOTHER_AT_ZX)
    refused = page.locator(f"[data-result=refused][data-barcode={LENT_TO_THE_MOTHER_AT_ZX}]")
    expect(refused).to_contain_text("该复本已借出，请先办理归还。")
    # A tap on the page (not on a button) leaves the scanner's field focused.
    page.locator("h2").first.click()
    expect(page.locator("[data-form=lend] input[name=barcode]")).to_be_focused()
    # Large enough to touch.
    box = page.locator("[data-action=finish]").bounding_box()
    assert box and box["height"] >= 56
    page.click("[data-action=finish]")
    receipt = page.locator("[data-receipt]")
    expect(receipt.locator("tr[data-line]")).to_have_count(2)
    expect(receipt.locator("button[data-print]")).to_be_visible()
    page.click("[data-action=done]")
    expect(page.locator("[data-ended=done]")).to_be_visible()
    expect(page.locator("input[name=card_number]")).to_be_focused()


def test_a_childs_card_works_and_the_page_speaks_english_when_asked(tablet):
    page = tablet
    set_up_station(page, "少儿区平板")
    page.click("button[data-lang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    reader_signs_in(page, "ZX10000002")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")  # the card's language
    expect(page.locator("h1")).to_contain_text("李小米")
    scan(page, ON_THE_SHELF_AT_ZX[2])
    # The child's card asks for Chinese; once signed in, the page speaks the reader's language.
    expect(page.locator(f"[data-result=lent][data-barcode={ON_THE_SHELF_AT_ZX[2]}]")).to_be_visible()
    page.click("button[data-lang=en]")
    expect(page.locator(f"[data-result=lent][data-barcode={ON_THE_SHELF_AT_ZX[2]}]")).to_contain_text(
        "Please return it by")
    page.click("[data-action=finish]")
    page.click("[data-action=done]")
