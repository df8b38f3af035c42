"""The self-check page ends a reader's session after a short inactivity, in a real browser.

The server of this module runs with LIBRARY_SELFCHECK_IDLE_SECONDS=5 (the least it takes): the page's own timer
(library/static/selfcheck.js) posts the end of the session; nobody touches the tablet."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.browser.test_selfcheck_journeys import reader_signs_in, set_up_station, tablet  # noqa: F401

pytestmark = pytest.mark.browser
IDLE_SECONDS = "5"


@pytest.fixture(scope="module", autouse=True)
def short_idle_timeout():
    """Set before the module's server starts (autouse fixtures of a scope come first)."""
    before = os.environ.get("LIBRARY_SELFCHECK_IDLE_SECONDS")
    os.environ["LIBRARY_SELFCHECK_IDLE_SECONDS"] = IDLE_SECONDS
    yield
    if before is None:
        os.environ.pop("LIBRARY_SELFCHECK_IDLE_SECONDS", None)
    else:
        os.environ["LIBRARY_SELFCHECK_IDLE_SECONDS"] = before


def test_the_session_ends_after_LIBRARY_SELFCHECK_IDLE_SECONDS_of_inactivity(tablet):  # noqa: F811
    page = tablet
    set_up_station(page, "门口平板")
    reader_signs_in(page, "ZX10000001")
    expect(page.locator("body")).to_have_attribute("data-idle-seconds", IDLE_SECONDS)
    expect(page.locator("h1")).to_contain_text("王芳")
    # Nobody touches the tablet: the reader is gone, the next one starts afresh.
    expect(page.locator("[data-ended=idle]")).to_be_visible(timeout=15_000)
    expect(page.locator("input[name=card_number]")).to_be_focused()
    expect(page.locator("body")).not_to_contain_text("王芳")
