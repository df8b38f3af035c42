"""Copy cataloguing in a real browser: an administrator sets up the catalogues to copy from, a
librarian scans a Chinese picture book our catalogue lacks, watches the answers arrive (the
Chinese server's record while a hanging catalogue is still being waited for), reads the MARC,
takes the record and saves it; the record page says where it came from."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
from playwright.sync_api import expect

from tests.zebra_server import zebra_servers

pytestmark = pytest.mark.browser

zebra = pytest.fixture(scope="module")(zebra_servers)


@contextlib.contextmanager
def hanging_catalogue():
    """Accepts connections and never answers (a catalogue whose search engine is stuck)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held, stop = [], threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def sign_in(page, username: str, password: str) -> None:
    page.goto("/staff/signin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("[data-menu=staff]")).to_be_visible()


def add_catalogue(page, name: str, port: int, database: str, syntax: str, charset: str, seconds: str) -> None:
    page.goto("/staff/catalog/targets/")
    page.fill("input[name=name]", name)
    page.fill("input[name=host]", "127.0.0.1")
    page.fill("input[name=port]", str(port))
    page.fill("input[name=database]", database)
    page.select_option("select[name=syntax]", syntax)
    page.select_option("select[name=charset]", charset)
    page.fill("input[name=timeout_seconds]", seconds)
    page.check("input[type=checkbox][name=enabled]")
    page.click("form[action='/staff/catalog/targets/'] button[type=submit]")
    expect(page.locator(f"tr[data-target='{name}']")).to_contain_text("是")


def test_a_record_is_copied_from_a_chinese_catalogue(desktop, zebra):
    page = desktop
    with hanging_catalogue() as hanging:
        sign_in(page, "admin", "admin-demo-pass")
        add_catalogue(page, "中文联合目录", zebra.cnmarc.port, "CNMARC", "unimarc", "gb18030", "10")
        add_catalogue(page, "Union MARC21", zebra.marc21.port, "MARC21", "marc21", "utf-8", "10")
        add_catalogue(page, "卡住的目录", hanging, "X", "marc21", "utf-8", "4")

        page.click("[data-menu=cataloguing]")
        page.fill("input[name=isbn]", "978-7-5442-4650-7")
        page.keyboard.press("Enter")

        # The Chinese server's record shows while the hanging catalogue is still asked.
        answers = page.locator("[data-copy-intake]")
        candidate = answers.locator("[data-copy-candidate]").first
        expect(candidate.locator("[data-copy-title]")).to_have_text("团圆")
        expect(candidate).to_contain_text("余丽琼")
        expect(candidate).to_contain_text("南海出版公司")
        expect(candidate).to_contain_text("中文联合目录")
        expect(answers.locator("[data-copy-answer]").filter(has_text="Union MARC21")).to_contain_text("没有")
        expect(answers.locator("[data-copy-target]").filter(has_text="卡住的目录")).to_have_attribute(
            "aria-busy", "true")
        # ... and then says it did not answer, beside the others.
        expect(answers.locator("[data-copy-failure=source_timeout]")).to_contain_text("卡住的目录", timeout=15000)

        candidate.locator("summary").click()
        expect(candidate.locator("pre.marc")).to_contain_text("200 1# $a 团圆")
        candidate.locator("[data-copy-take]").click()

        expect(page.locator("input[name=title]")).to_have_value("团圆")
        expect(page.locator("input[name=contributor_0_name]")).to_have_value("余丽琼")
        page.click("text=保存书目记录")

        expect(page.locator("h1")).to_contain_text("团圆")
        expect(page.locator("[data-provenance]")).to_contain_text("中文联合目录")


def test_the_candidates_fit_a_phone(phone, zebra):
    """The catalogues set up above; the same scan on a phone, the card inside the screen."""
    page = phone
    sign_in(page, "librarian", "librarian-demo")
    page.goto("/staff/catalog/?isbn=9787533256982")
    card = page.locator("[data-copy-candidate]").first
    expect(card.locator("[data-copy-title]")).to_have_text("我爸爸")
    box = card.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
