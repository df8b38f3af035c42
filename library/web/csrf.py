"""CSRF tokens bound to the visit's session.

Litestar's own CSRF middleware is a signed double-submit cookie: any cookie/token pair it
ever minted passes, so a pair an attacker fetched for themselves and planted in someone
else's browser (a cookie written from a sibling subdomain or by a man in the middle on plain
HTTP) works there too — OWASP's "naive" double submit. Here the token is an HMAC, under the
application's secret, of a random nonce kept inside the session, and the session is Litestar's
encrypted, signed, HttpOnly cookie: a page cannot read the nonce, an attacker cannot choose it,
and a token from any other session does not match.

Anonymous visitors have a session too, holding only the nonce: it is made on their first
request, so a sign-in form carries a token bound to that visit. Signing in replaces the session
(and with it the nonce: a token seen before sign-in is worth nothing after it, so a session an
attacker planted before the reader signed in does not hand them the signed-in one's token);
signing out deletes it, and the next page starts a fresh visit. A sign-in that lapses keeps
the nonce, so the form the reader posts is answered with "please sign in again", not refused.

The token travels as before: the hidden `_csrf_token` field that `csrf_input` renders, or the
`X-CSRFToken` header, whose value API clients read from the `library_csrf` cookie. That cookie
is only a way to hand the token to scripts: what is checked is the session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.types import ASGIApp, Empty, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

# The session key that holds the nonce; `library.web.auth` keeps it when a sign-in lapses.
SESSION_KEY = "csrf"
FORM_FIELD = "_csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The detail `library.web.errors` recognises to answer with its "form expired" page.
REFUSAL = "CSRF token verification failed"


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


class SessionBoundCSRFMiddleware:
    """Innermost of the app's middleware: it needs the session loaded, and the session
    middleware's send wrapper must run after ours so that a nonce we add is stored."""

    def __init__(self, app: ASGIApp, *, secret: str, cookie_name: str, header_name: str,
                 cookie_secure: bool, exclude: list[str]) -> None:
        self.app = app
        self.key = hashlib.sha256(("csrf:" + secret).encode()).digest()
        self.cookie_name = cookie_name
        self.header_name = header_name.lower()
        self.cookie_secure = cookie_secure
        self.exclude = re.compile("|".join(exclude)) if exclude else None

    def token_for(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exclude and self.exclude.search(scope["path"])):
            await self.app(scope, receive, send)
            return
        if "session" not in scope:
            # Paths the session middleware skips (static files, health): nothing to bind a
            # token to, so nothing there may change anything.
            if scope["method"] not in SAFE_METHODS:
                raise PermissionDeniedException(REFUSAL)
            await self.app(scope, receive, send)
            return

        request = scope["litestar_app"].request_class(scope=scope, receive=receive)
        session = scope.get("session")
        nonce = session.get(SESSION_KEY) if isinstance(session, dict) else None
        if scope["method"] in SAFE_METHODS:
            if not isinstance(nonce, str):
                nonce = new_nonce()
                scope["session"] = {**(session if isinstance(session, dict) else {}), SESSION_KEY: nonce}
        else:
            submitted = await self._submitted_token(request)
            if not (isinstance(nonce, str) and submitted
                    and hmac.compare_digest(submitted.encode(), self.token_for(nonce).encode())):
                raise PermissionDeniedException(REFUSAL)
        ScopeState.from_scope(scope).csrf_token = self.token_for(nonce)
        await self.app(scope, receive, self._send_wrapper(scope, send, request.cookies.get(self.cookie_name)))

    async def _submitted_token(self, request: Any) -> str | None:
        token = request.headers.get(self.header_name)
        if not token and request.content_type[0] in (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART):
            value = (await request.form()).get(FORM_FIELD)
            token = value if isinstance(value, str) else None
        return token

    def _send_wrapper(self, scope: Scope, send: Send, cookie: str | None) -> Send:
        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The handler may have replaced the session (sign-in) or cleared it (sign-out):
                # the new session gets a nonce of its own, and scripts the matching cookie.
                session = scope.get("session")
                if session is Empty:
                    # Signed out: the session cookie is deleted, so is the token's; the next
                    # page starts a new visit.
                    if cookie is not None:
                        self._set_cookie(message, "", max_age=0)
                else:
                    if not (isinstance(session, dict) and isinstance(session.get(SESSION_KEY), str)):
                        session = {**(session if isinstance(session, dict) else {}), SESSION_KEY: new_nonce()}
                        scope["session"] = session
                    token = self.token_for(session[SESSION_KEY])
                    if cookie != token:
                        self._set_cookie(message, token)
            await send(message)

        return send_wrapper

    def _set_cookie(self, message: Message, value: str, max_age: int | None = None) -> None:
        # Not HttpOnly: scripts and API clients read the token from it.
        MutableScopeHeaders.from_message(message).add("set-cookie", Cookie(
            key=self.cookie_name, value=value, path="/", max_age=max_age, secure=self.cookie_secure,
            httponly=False, samesite="lax").to_header(header=""))
