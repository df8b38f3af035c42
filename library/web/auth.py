"""Who is asking, and in which language: loaded once per request from the session.

The session cookie (encrypted and signed, HttpOnly, SameSite=Lax) carries only the
account kind, its id and an expiry; everything else is read from the database on
each request, so a deactivated account or a changed role takes effect at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from library.accounts.permissions import (CREDENTIAL, PUBLIC, READER, SIGNED_IN, declared_permission, may,
                                          readers_too)
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


async def permission_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The one permission check, for every route (run by library.app.before_handler, Litestar's
    `before_request`, with a guard's signature): the handler's `opt["permission"]` against the matrix
    (library/accounts/permissions.py). A route that declares nothing is refused to everyone,
    so a forgotten declaration shows as a refusal (and a failing test), never as an open door."""
    if connection.scope.get("method") == "OPTIONS":
        return  # Litestar's own answer with the allowed methods; it runs no handler
    permission = declared_permission(handler.opt)
    if permission in (PUBLIC, CREDENTIAL):
        return
    principal = principal_of(connection)
    if principal is None:
        raise NotSignedIn("sign_in_required")
    if permission == SIGNED_IN:
        return
    if permission == READER:
        if not principal.is_patron:
            raise NotPermitted("patron_only")
        return
    if principal.is_patron and permission is not None and readers_too(handler.opt):
        return
    if permission is None or not principal.is_staff:
        raise NotPermitted("staff_only")
    if not may(principal, permission):
        raise NotPermitted("not_for_your_role")


def guard_refusals(handler: BaseRouteHandler) -> set[type[Exception]]:
    """What `permission_guard` can refuse this handler with, for the OpenAPI document
    (library/web/openapi.py): nothing for a public route, 401 for a signed-in one, else 401 and 403."""
    permission = declared_permission(handler.opt)
    if permission in (PUBLIC, CREDENTIAL):
        return set()
    if permission == SIGNED_IN:
        return {NotSignedIn}
    return {NotSignedIn, NotPermitted}


def permitted_at(connection: ASGIConnection, permission: str) -> Callable[[int], bool]:
    """`may()` for the signed-in principal, asked per branch: for a controller whose branch is known
    only from the form or the path, and for layers below accounts that must not see a Principal."""
    principal = principal_of(connection)
    return lambda branch_id: may(principal, permission, branch_id)
