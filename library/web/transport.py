"""What HTTP asks of every response, whatever route made it: HEAD answered like GET, and
cookies marked Secure whenever the request came over HTTPS.

HEAD: Litestar routes a HEAD only to a handler declared for it, and refuses to declare one
that returns a body, so every GET page would answer 405. Routing happens before any of the
app's middleware runs, hence a wrapper around the app's ASGI handler: the request is routed
and answered as a GET, and the body is dropped — the status and headers (Content-Length
included) are exactly the GET's.

Secure: `LIBRARY_SECURE_COOKIES` forces the flag; but a deployment that serves HTTPS and forgot
the setting must not send its session cookie in a form a later plain-HTTP request would carry.
So a request that arrived over HTTPS — directly, or through a reverse proxy named in
`LIBRARY_FORWARDED_ALLOW_IPS` that says so in `X-Forwarded-Proto` — gets every cookie Secure.
Anybody else's `X-Forwarded-Proto` is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Coroutine
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_BODY_MESSAGES = {"http.response.body", "http.response.pathsend", "http.response.zerocopysend"}


def answer_head_like_get(app: ASGIApp) -> ASGIApp:
    async def head_as_get(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] in _BODY_MESSAGES:
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server's own scope (its access log) still says HEAD.
        await app({**scope, "method": "GET"}, receive, headers_only)  # type: ignore[typeddict-item]

    return head_as_get


class TrustedProxies:
    """`LIBRARY_FORWARDED_ALLOW_IPS` read as uvicorn reads it: addresses or networks,
    comma-separated, or `*` for any; other entries (a unix socket's name) compared as text."""

    def __init__(self, setting: str | None) -> None:
        entries = [entry.strip() for entry in (setting or "").split(",") if entry.strip()]
        self.anyone = "*" in entries
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.names: set[str] = set()
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry)

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        if self.anyone or host in self.names:
            return True
        if not self.networks:
            return False  # no address to compare with: not worth parsing one on every response
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def came_over_https(scope: Scope, proxies: TrustedProxies) -> bool:
    if scope.get("scheme") == "https":
        return True
    client = scope.get("client")
    if not client or client[0] not in proxies:
        return False
    forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-proto"]
    # The value the nearest proxy wrote: it is the one we trust, earlier hops we cannot vouch for.
    return bool(forwarded) and forwarded[-1].decode("latin-1").split(",")[-1].strip().lower() == "https"


HSTS = b"max-age=31536000"


def _with_secure(value: bytes) -> bytes:
    attributes = [part.strip().lower() for part in value.split(b";")[1:]]
    return value if b"secure" in attributes else value + b"; Secure"


def secure_cookies_over_https(always: bool, forwarded_allow_ips: str | None
                              ) -> Callable[[Message, Scope], Coroutine[Any, Any, None]]:
    """A `before_send` hook: it sees the outermost `send`, so every cookie, whoever set it; and
    over HTTPS, Strict-Transport-Security on every response."""
    proxies = TrustedProxies(forwarded_allow_ips)

    async def mark_secure(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        https = came_over_https(scope, proxies)
        if not (always or https):
            return
        headers = [(name, _with_secure(value) if name.lower() == b"set-cookie" else value)
                   for name, value in message.get("headers", [])]
        if https and not any(name.lower() == b"strict-transport-security" for name, _ in headers):
            # A browser that reached the library over HTTPS once does not try plain HTTP for a
            # year (a reader's cookies never cross a café's network in clear). Only the site's own
            # host: other hosts of the domain may not speak HTTPS.
            headers.append((b"strict-transport-security", HSTS))
        message["headers"] = headers  # type: ignore[typeddict-unknown-key]

    return mark_secure
