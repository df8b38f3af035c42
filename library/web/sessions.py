"""Encrypted cookie sessions (Litestar's), sent again only when the session changed.

Litestar encrypts the session and sets its cookie anew on every response. Ours do not
slide: the expiry that counts is inside the session, fixed at sign-in (see
`library.web.auth.session_for`), and the cookie's own lifetime is that plus a week so the
reader can be told their session expired. An unchanged session therefore needs no new
cookie — and encrypting, encoding and formatting it was a tenth of an API request's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import Message, ScopeSession

# Where the session as it arrived is kept, in the request's scope.
_ARRIVED = "library.session_arrived"


class SteadyCookieBackend(ClientSideSessionBackend):
    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        connection.scope[_ARRIVED] = dict(data)  # type: ignore[literal-required]
        return data

    async def store_in_message(self, scope_session: ScopeSession, message: Message,
                               connection: ASGIConnection) -> None:
        arrived = connection.scope.get(_ARRIVED)
        # A valid session that nobody changed: its cookie stands. Anything else — a new,
        # changed or cleared session, or a cookie that did not decrypt — goes through Litestar.
        if arrived and isinstance(scope_session, dict) and scope_session == arrived:
            return
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SteadyCookieConfig(CookieBackendConfig):
    _backend_class = SteadyCookieBackend
