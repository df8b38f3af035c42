"""Which routes are part of a reader's visit: the session, who is signed in, the CSRF token.

The session (library.web.sessions), the principal it names (library.web.auth) and the CSRF token
bound to it (library.web.csrf) are needed by pages and the API, and by nothing else: a static file,
a cover picture, `/api/ping`, `/health`, `/metrics`, the iCalendar feeds, the node-to-node sync and
`/sru` neither read nor write any of them. Issue 20 measured that stack on the cheapest request;
before this gate each of the three middlewares was still called on those routes, each matching
the path against its own list of exclusions.

The gate is the app's one middleware: Litestar builds a copy of it for each route handler, and it
decides once per handler — from the handler's `opt={"visit": False}` or, for routes declared
elsewhere, its path — whether the handler's requests go through the visit's stack or straight to
the handler. The handler's own opt is read, never written.

Nothing guarded is lost: a route that answers a changing method (POST, PUT, PATCH, DELETE) keeps
the whole stack, CSRF included, unless its path is one of the CSRF-exempt ones (node-to-node sync,
which has its own credential). The security headers are not part of the visit: they are a
`before_send` hook and reach every answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from litestar.types import ASGIApp, Receive, Scope, Send

# `opt={"visit": False}` on a route handler, router or controller: no session, no principal, no CSRF.
OPT_KEY = "visit"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needs_visit(handler, path: str, stateless_paths: re.Pattern[str] | None,
                csrf_exempt: re.Pattern[str] | None) -> bool:
    """Whether a handler's requests go through the session, principal and CSRF middleware; `path`
    is the route's template (`/activities/feeds/{name:str}`), the same for all its requests."""
    stateless = handler.opt.get(OPT_KEY) is False or bool(stateless_paths and stateless_paths.search(path))
    if not stateless:
        return True
    changing = set(getattr(handler, "http_methods", None) or ()) - SAFE_METHODS
    # A route that changes things keeps its CSRF check unless it is exempt from it by name.
    return bool(changing) and not (csrf_exempt and csrf_exempt.search(path))


def _pattern(paths: Iterable[str]) -> re.Pattern[str] | None:
    paths = list(paths)
    return re.compile("|".join(paths)) if paths else None


class VisitGate:
    """`visit(app)` is the stack a visit's request goes through; the rest skip it."""

    def __init__(self, app: ASGIApp, *, visit: Callable[[ASGIApp], ASGIApp], stateless_paths: Iterable[str] = (),
                 csrf_exempt_paths: Iterable[str] = ()) -> None:
        self.bare = app
        self.with_visit = visit(app)
        self.stateless_paths = _pattern(stateless_paths)
        self.csrf_exempt = _pattern(csrf_exempt_paths)
        # Litestar makes one gate per handler, so this holds one entry; keyed all the same, so that
        # a gate shared by several handlers could not answer one with another's choice.
        self.chosen: dict[int, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope["route_handler"]  # type: ignore[typeddict-item]
        app = self.chosen.get(id(handler))
        if app is None:
            visit = needs_visit(handler, scope["path_template"], self.stateless_paths,  # type: ignore[typeddict-item]
                                self.csrf_exempt)
            app = self.with_visit if visit else self.bare
            self.chosen[id(handler)] = app
        await app(scope, receive, send)
