"""Security headers on every response the application sends.

A Litestar ``before_send`` hook rather than a route-level ``response_headers``: the hook
wraps the application's outermost ``send``, so the headers also reach what no route
handler produced — a 404 for an unknown path, a 405, an error page or problem body, a
redirect from a guard, a file from the static router.

The policy allows scripts, styles, images and fonts from this server only. It holds
because the pages keep no inline ``<script>``, ``<style>``, ``style=`` or ``on…=``
attribute (a print button is wired by ``data-print`` in ``/static/library.js``); the
browser suite reports any violation. Nothing comes from a CDN: the service must work on
a closed network.
"""

from __future__ import annotations

from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

# Features a library page never needs; a compromised page then cannot ask for them either.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()" for feature in (
        "accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone",
        "payment", "usb",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # frame-ancestors replaces it in current browsers; older ones only know this one.
    "X-Frame-Options": "DENY",
    # Links to other sites do not learn which catalogue search or reader page they came from.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}


# Encoded once: profiled, this hook was 23% of all of `/api/ping`'s time (issue 20).
_ENCODED = tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items())


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Add the headers to each response start; a header a handler set itself is kept."""
    if message["type"] != "http.response.start":
        return
    headers = message.get("headers") or []
    present = {name.lower() for name, _ in headers}
    missing = [header for header in _ENCODED if header[0] not in present]
    message["headers"] = [*headers, *missing]  # type: ignore[typeddict-unknown-key]
