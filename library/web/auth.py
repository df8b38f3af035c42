"""Who is asking, and in which language: loaded once per request from the session.

The session cookie (encrypted and signed, HttpOnly, SameSite=Lax) carries only the
account kind, its id and an expiry; everything else is read from the database on
each request, so a deactivated account or a changed role takes effect at once.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from library.accounts.principal import Principal
from library.accounts.service import load_principal
from library.errors import NotPermitted, NotSignedIn
from library.i18n import choose_language, current_language
from library.web.csrf import SESSION_KEY as CSRF_NONCE

LANGUAGE_COOKIE = "lang"


def session_for(principal: Principal, lifetime_seconds: int, now: float | None = None) -> dict[str, Any]:
    return {"kind": principal.kind, "id": principal.id, "exp": int((now or time.time()) + lifetime_seconds)}


def request_language(connection: ASGIConnection, principal: Principal | None) -> str:
    settings = connection.app.state.settings
    return choose_language(
        connection.cookies.get(LANGUAGE_COOKIE),
        principal.language if principal else None,
        connection.headers.get("accept-language"),
        settings.default_language,
    )


def _forget_sign_in(connection: ASGIConnection, session: dict[str, Any]) -> None:
    """The sign-in goes, the visit stays: the CSRF nonce is kept, so the form the reader had
    open is answered with "please sign in again" rather than refused as forged."""
    if CSRF_NONCE in session:
        connection.set_session({CSRF_NONCE: session[CSRF_NONCE]})
    else:
        connection.clear_session()


class SessionPrincipalMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        principal: Principal | None = None
        session = connection.scope.get("session")
        if isinstance(session, dict) and session.get("kind") in ("patron", "staff"):
            if int(session.get("exp", 0)) < time.time():
                _forget_sign_in(connection, session)
                connection.state.session_expired = True
            else:
                # The same query reads the configuration's version, which a checkout needs.
                principal = await load_principal(session["kind"], int(session["id"]), with_config_version=True)
                if principal is None:
                    _forget_sign_in(connection, session)
        language = request_language(connection, principal)
        connection.state.language = language
        current_language.set(language)
        return AuthenticationResult(user=principal, auth=None)


# Guards are coroutines: Litestar would run plain functions in a thread pool, on every request.


def principal_of(connection: ASGIConnection) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


async def requires_signed_in(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if principal_of(connection) is None:
        raise NotSignedIn("sign_in_required")


async def requires_staff(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    principal = principal_of(connection)
    if principal is None:
        raise NotSignedIn("sign_in_required")
    if not principal.is_staff:
        raise NotPermitted("staff_only")


async def requires_administrator(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    await requires_staff(connection, handler)
    if not principal_of(connection).is_administrator:  # type: ignore[union-attr]
        raise NotPermitted("administrator_only")


async def requires_patron(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    principal = principal_of(connection)
    if principal is None:
        raise NotSignedIn("sign_in_required")
    if not principal.is_patron:
        raise NotPermitted("patron_only")
