"""Conditional GET: a client that already holds the answer gets `304 Not Modified` and no body.

Static files and covers carry the `ETag` and `Last-Modified` Litestar's file response gives them
(from the file's modification time and size); the iCalendar feeds an `ETag` from their content
(`feed_etag`). A calendar app polls a feed every few minutes and a browser asks again for the
style sheet on every page: when nothing changed, the answer is a few headers.

One ASGI wrapper around the application, as the HEAD one is (library.web.transport): it looks at
the answer a route made, so no route has to know the request's validators. Only a GET (or HEAD)
that brought `If-None-Match` or `If-Modified-Since` is watched, and only a 200 that carries an
`ETag` or `Last-Modified` is turned into a 304. As RFC 9110 says, `If-None-Match` wins when both
are sent, it compares weakly (`W/"x"` matches `"x"`) and `*` matches any; `If-Modified-Since`
is honoured only for an answer with `Last-Modified` and no `If-None-Match`. The 304 keeps the
headers a cache needs (validators, Cache-Control, Vary, the security headers) and drops those of
the body. The route still made the answer (a feed is built to be hashed): what is saved is the
transfer and the client's work, not ours.
"""

from __future__ import annotations

import hashlib
from email.utils import parsedate_to_datetime

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_ASKING = {b"if-none-match", b"if-modified-since"}
_BODY_HEADERS = {b"content-length", b"content-type", b"content-encoding", b"content-range", b"transfer-encoding"}
_BODY_MESSAGES = {"http.response.body", "http.response.pathsend", "http.response.zerocopysend"}


def strong_etag(content: bytes) -> str:
    """An entity tag for `content`: the same bytes, the same tag."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag.startswith(b"W/") else tag


def _none_match(condition: bytes, etag: bytes) -> bool:
    """Whether `If-None-Match: condition` names the answer's `etag` (weak comparison)."""
    if condition.strip() == b"*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in condition.split(b","))


def _not_modified_since(condition: bytes, last_modified: bytes) -> bool:
    try:
        since = parsedate_to_datetime(condition.decode("latin-1"))
        modified = parsedate_to_datetime(last_modified.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False  # a date we cannot read: the full answer
    if since.tzinfo is None or modified.tzinfo is None:
        return False
    return modified <= since


def not_modified(request_headers: dict[bytes, bytes], response_headers: list[tuple[bytes, bytes]]) -> bool:
    found = {name.lower(): value for name, value in response_headers}
    etag = found.get(b"etag")
    if b"if-none-match" in request_headers:
        return etag is not None and _none_match(request_headers[b"if-none-match"], etag)
    last_modified = found.get(b"last-modified")
    return last_modified is not None and _not_modified_since(request_headers[b"if-modified-since"], last_modified)


def answer_not_modified(app: ASGIApp) -> ASGIApp:
    async def conditional(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        asking = {name: value for name, value in scope["headers"] if name in _ASKING}
        if not asking:
            await app(scope, receive, send)
            return
        dropping = False

        async def send_or_304(message: Message) -> None:
            nonlocal dropping
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if message["status"] == 200 and not_modified(asking, headers):
                    dropping = True
                    await send({"type": "http.response.start", "status": 304,
                                "headers": [(name, value) for name, value in headers
                                            if name.lower() not in _BODY_HEADERS]})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
            elif dropping and message["type"] in _BODY_MESSAGES:
                return
            await send(message)

        await app(scope, receive, send_or_304)

    return conditional
