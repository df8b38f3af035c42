"""Encrypted cookie sessions (Litestar's), sent again only when the session changed.

Litestar encrypts the session and sets its cookie anew on every response. Ours do not
slide: the expiry that counts is inside the session, fixed at sign-in (see
`library.web.auth.session_for`), and the cookie's own lifetime is that plus a week so the
reader can be told their session expired. An unchanged session therefore needs no new
cookie — and encrypting, encoding and formatting it was a tenth of an API request's time.
Likewise a cookie that arrives again is not decrypted again.

Both keep the session as its JSON text, never as a dict: a handler that changes a value inside
the session (the self-check visit appends to its list of scans in place) would otherwise change
the copy it is compared with, or the cache, too — and its change would never be sent.
"""

from __future__ import annotations

import time
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.client_side import AAD, ClientSideSessionBackend, CookieBackendConfig
from litestar.serialization import decode_json, encode_json
from litestar.types import Message, ScopeSession

# Where the session as it arrived is kept, in the request's scope.
_ARRIVED = "library.session_arrived"


# Decrypted sessions by their cookie: the same ciphertext always decrypts to the same session.
MAX_DECRYPTED = 1024


class SteadyCookieBackend(ClientSideSessionBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decrypted: dict[tuple[bytes, ...], tuple[int, dict[str, Any]]] = {}

    def load_data(self, data: list[bytes]) -> dict[str, Any]:
        """Litestar's decryption, done once per cookie; the cookie's own expiry is still checked."""
        key = tuple(data)
        known = self._decrypted.get(key)
        if known is not None and known[0] > round(time.time()):
            return decode_json(known[1])
        session = super().load_data(data)
        if session:
            decoded = b64decode(b"".join(data))
            expires_at = decode_json(decoded[decoded.find(AAD):].replace(AAD, b""))["expires_at"]
            if len(self._decrypted) >= MAX_DECRYPTED:
                self._decrypted.clear()
            self._decrypted[key] = (expires_at, encode_json(session))
        return session

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        connection.scope[_ARRIVED] = encode_json(data) if data else None  # type: ignore[literal-required]
        return data

    async def store_in_message(self, scope_session: ScopeSession, message: Message,
                               connection: ASGIConnection) -> None:
        arrived = connection.scope.get(_ARRIVED)
        # A valid session that nobody changed: its cookie stands. Anything else — a new,
        # changed or cleared session, or a cookie that did not decrypt — goes through Litestar.
        if arrived and isinstance(scope_session, dict) and encode_json(scope_session) == arrived:
            return
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SteadyCookieConfig(CookieBackendConfig):
    _backend_class = SteadyCookieBackend
