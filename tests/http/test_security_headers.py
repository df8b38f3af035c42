"""Security headers on every kind of response, and templates the CSP can hold to (issue 17, part 1)."""

import re

import pytest

from library.catalog.controllers import barcode_svg
from library.web.security import SECURITY_HEADERS
from library.web.templating import TEMPLATE_DIR
from tests.support import sign_in_patron

def assert_secured(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.request.url, response.status_code)


def test_the_policy_allows_nothing_inline_and_no_framing():
    policy = dict(part.split(" ", 1) for part in SECURITY_HEADERS["Content-Security-Policy"].split("; "))
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == policy["form-action"] == "'self'"
    assert "unsafe" not in SECURITY_HEADERS["Content-Security-Policy"]
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY" and SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("method", "path", "status", "content_type"), [
    ("GET", "/", 200, "text/html"),                                  # a page
    ("GET", "/api/branches/", 200, "application/json"),              # an API answer
    ("GET", "/api/branches/NOPE", 404, "application/problem+json"),  # a domain error as a problem
    # Refused input (400 from Litestar's own checks; 422 once the input boundary names the field).
    ("GET", "/api/branches/ZX/calendar?days=0", (400, 422), "application/problem+json"),
    ("POST", "/api/ping", 405, "application/problem+json"),          # no such method, before any handler
    ("GET", "/no/such/page", 404, "text/html"),                      # no such route: the error page
    ("GET", "/staff/", 303, None),                                   # a redirect to sign in
    ("GET", "/static/library.css", 200, "text/css"),                 # static files
    ("GET", "/static/library.js", 200, "text/javascript"),
    ("GET", "/schema/openapi.json", 200, "application/vnd.oai.openapi+json"),
])
async def test_every_kind_of_response_carries_the_headers(client, method, path, status, content_type):
    response = await client.request(method, path)
    assert response.status_code in (status if isinstance(status, tuple) else (status,))
    if content_type:
        assert response.headers["content-type"].startswith(content_type)
    assert_secured(response)


async def test_a_signed_in_reader_s_pages_and_a_refused_form_carry_them_too(client):
    assert_secured(await sign_in_patron(client))
    assert_secured(await client.get("/account"))
    refused = await client.post("/signout")  # no CSRF token
    assert refused.status_code == 403
    assert_secured(refused)


async def test_swagger_ui_is_gone_but_the_document_stays(client):
    """No page that loads its code from a CDN (closed network, and the CSP would block it)."""
    assert (await client.get("/schema/swagger")).status_code == 404
    assert "/api/me" in (await client.get("/schema/openapi.json")).json()["paths"]


INLINE = re.compile(
    r"<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:|<script\b(?![^>]*\bsrc=)",
    re.IGNORECASE,
)


def test_no_template_needs_unsafe_inline():
    """What the browser suite would catch on the pages it visits, checked in every template."""
    found = [
        f"{path.relative_to(TEMPLATE_DIR)}:{number}: {line.strip()}"
        for path in sorted(TEMPLATE_DIR.rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if INLINE.search(line)
    ]
    assert not found, "\n".join(found)


def test_barcodes_on_spine_labels_are_drawn_without_inline_style():
    """python-barcode writes style="fill:…"; the labels page gets fill="…" instead."""
    svg = barcode_svg("ZX000000018")
    assert "<svg" in svg and 'fill="black"' in svg
    assert not INLINE.search(str(svg))
