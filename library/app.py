"""create_app(settings) -> Litestar: every route, the templates, sessions, CSRF, errors."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.plugins.jinja import JinjaTemplateEngine as Jinja

from library import __version__
from library.accounts.controllers import ROUTES as ACCOUNT_ROUTES
from library.branches.controllers import ROUTES as BRANCH_ROUTES
from library.catalog.controllers import ROUTES as CATALOG_ROUTES
from library.catalog.duplicate_controllers import ROUTES as DUPLICATE_ROUTES
from library.catalog.imports import ROUTES as IMPORT_ROUTES
from library.catalog.matching import checked_setting
from library.catalog.marc_pages import ROUTES as MARC_PAGE_ROUTES
from library.catalog.sru_controllers import SruServer
from library.catalog import search as catalog_search, search_text
from library.activities.calendar_controllers import CalendarPages
from library.activities.challenge_controllers import ChallengePages
from library.activities.controllers import ROUTES as ACTIVITY_ROUTES
from library.activities.service import NOTICE_STEPS as ACTIVITY_NOTICE_STEPS
from library.loans.controllers import ROUTES as LOAN_ROUTES
from library.db import close_connections, engine, prepare_sqlite
from library.loans.outbox import NOTICE_STEPS as LOAN_NOTICE_STEPS
from library.notices.controllers import ROUTES as NOTICE_ROUTES
from library.notices.worker import start_notice_loop
from library.sync.client import start_sync_loop
from library.privacy.controllers import ROUTES as PRIVACY_ROUTES
from library.privacy.retention import start_retention_loop
from library.selfcheck.pages import ROUTES as SELFCHECK_ROUTES
from library.reports.controllers import ReportPages
from library.volunteers.controllers import ROUTES as VOLUNTEER_ROUTES
from library.sync.controllers import ROUTES as SYNC_ROUTES
from library.i18n import translations
from library.settings import LANGUAGES, PACKAGE_ROOT, Settings, load_settings
from library.web.auth import SessionPrincipalMiddleware, permission_guard
from library.web.csrf import SessionBoundCSRFMiddleware
from library.web.conditional import answer_not_modified
from library.web.controllers import ROUTES as SHELL_ROUTES
from library.web.errors import EXCEPTION_HANDLERS
from library.web.input import check_input
from library.web.logs import configure_logging
from library.web.metrics import check_multiprocess_dir, metrics_route, record_request, start_pool_sampler
from library.web.openapi import make_document_true
from library.web.request_id import observe_requests
from library.web.security import add_security_headers
from library.web.sessions import SteadyCookieConfig
from library.web.transport import answer_head_like_get, secure_cookies_over_https
from library.web.visit import VisitGate
from library.web.templating import build_environment

log = logging.getLogger("library.app")

EXPIRED_NOTICE_SECONDS = 7 * 24 * 3600
# Each domain's scans in the notice round (library.notices.worker), in this order.
NOTICE_STEPS = (*LOAN_NOTICE_STEPS, *ACTIVITY_NOTICE_STEPS)
# Routes outside a reader's visit: no session, no principal, no CSRF (library/web/visit.py), matched
# against the route's template. /api/sync/ is node to node: a branch's credential in the Authorization
# header, no cookies. The feeds are read by calendar apps: the branch's are public, a reader's carries
# its own token. /metrics has its own token. The handlers in library/web say so by `opt` instead.
STATELESS_PATHS = ["^/static", "^/covers", "^/health$", "^/api/ping$", "^/schema", "^/api/sync/",
                   "^/metrics$", "^/sru$", "^/activities/feeds/"]
# /sru: other libraries' cataloguing clients, GET only, no session (library.catalog.sru_controllers).
CSRF_EXEMPT_PATHS = ["^/api/sync/", "^/sru$"]
# The style sheet and scripts keep their names from one release to the next: a browser may use its
# copy for five minutes, then asks again with its ETag (a 304 when unchanged), so an upgrade reaches
# every reader within minutes. A cover may be replaced by a librarian under the same name: an hour.
STATIC_CACHE = CacheControlHeader(public=True, max_age=300)
COVER_CACHE = CacheControlHeader(public=True, max_age=3600)


def _session_key(secret: str) -> bytes:
    """AES-GCM needs exactly 32 bytes; derive them so the setting may be any long string."""
    return hashlib.sha256(("session:" + secret).encode()).digest()


# The pages a first visitor most likely asks for (the home page, a catalogue search).
WARM_TEMPLATES = ("home.html", "catalog/search.html")


def _warm(environment) -> None:
    """OpenCC's and the pinyin tables, the translations and the first pages' templates: loaded
    at start-up, so that the first search answers as fast as the hundredth (measured after a
    start, a pinyin search took 0.77 s, then 5-8 ms; warmed, the first takes what the rest do
    but the database's first connection)."""
    search_text.warm()
    for language in LANGUAGES:
        translations(language)
    for name in WARM_TEMPLATES:
        environment.get_template(name)


async def before_handler(request: Request) -> None:
    """Litestar's `before_request`, the app's only one (a layer that set its own would replace it:
    tests/http/test_input_boundary.py checks none does). It runs before the handler's parameters
    are parsed: first every route's declared permission (library/accounts/permissions.py), so an
    anonymous caller cannot make a staff route parse its body; then the one input boundary, no
    control characters in any text. The permission check is not a Litestar guard: Litestar copies
    the route handler (some 60 attributes) for every guard call, 15% of a small request's time."""
    await permission_guard(request, request.route_handler)
    await check_input(request)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    checked_setting(settings)  # a wrong match point stops the start, not an import later
    settings.covers_dir.mkdir(parents=True, exist_ok=True)
    if settings.metrics_token:
        check_multiprocess_dir()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = engine()
        if settings.engine == "postgres":
            await db.start_connection_pool(min_size=2, max_size=20)
        else:
            await prepare_sqlite()
        # Reminders, the hold shelf, lapsed seat offers, anonymisation and sending, every interval.
        stop_notices = start_notice_loop(settings, NOTICE_STEPS)
        # A branch node with a central node: a sync round every interval.
        stop_sync = start_sync_loop(settings)
        # The retention table (library/privacy/retention.py), every notice interval.
        stop_retention = start_retention_loop(settings)
        stop_pool_sampler = start_pool_sampler(settings)
        # What a first request needs, loaded before the server takes one (see `_warm`).
        await asyncio.to_thread(_warm, environment)
        try:
            await catalog_search.warm()
        except Exception:  # noqa: BLE001 - a slower first search, never a service that does not start
            log.warning("the warm-up searches failed", exc_info=True)
        try:
            yield
        finally:
            await stop_pool_sampler()
            await stop_retention()
            await stop_sync()
            await stop_notices()
            if settings.engine == "postgres":
                await db.close_connection_pool()
            else:
                await close_connections()

    session = SteadyCookieConfig(
        secret=_session_key(settings.secret_key),
        key="library_session",
        # The cookie outlives the sign-in by a week so that the server, which enforces
        # the session's own expiry, can tell the reader their session expired.
        max_age=settings.session_minutes * 60 + EXPIRED_NOTICE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    # Tokens bound to the session (library/web/csrf.py), not Litestar's CSRFConfig, whose
    # pairs are valid in any session.
    csrf = DefineMiddleware(
        SessionBoundCSRFMiddleware,
        secret=settings.secret_key,
        cookie_name="library_csrf",
        cookie_secure=settings.secure_cookies,
        header_name="x-csrftoken",
        exclude=[],  # the exempt paths never reach it: the gate sends them past the visit (visit.py)
    )
    environment = build_environment()
    app = Litestar(
        route_handlers=[
            *SHELL_ROUTES,
            *ACCOUNT_ROUTES,
            *BRANCH_ROUTES,
            *CATALOG_ROUTES,
            *DUPLICATE_ROUTES,
            *IMPORT_ROUTES,
            *MARC_PAGE_ROUTES,
            SruServer,
            *LOAN_ROUTES,
            CalendarPages, *ACTIVITY_ROUTES, ChallengePages,
            *SYNC_ROUTES,
            *PRIVACY_ROUTES,
            *NOTICE_ROUTES,
            *SELFCHECK_ROUTES,
            ReportPages,
            *VOLUNTEER_ROUTES,
            create_static_files_router(path="/static", directories=[PACKAGE_ROOT / "static"], include_in_schema=False,
                                       cache_control=STATIC_CACHE,
                                       opt={"permission": "public"}),
            create_static_files_router(path="/covers", directories=[settings.covers_dir], include_in_schema=False,
                                       cache_control=COVER_CACHE,
                                       name="covers", opt={"permission": "public"}),
            # Only with a token: without one the address does not exist (library/web/metrics.py).
            *([metrics_route(settings.metrics_token)] if settings.metrics_token else []),
        ],
        # One gate, decided once per route: pages and the API go through the session, the principal
        # and CSRF (in that order: CSRF needs the session loaded, and adds to it before it is
        # stored); static files, feeds, health, ping, metrics, sync and /sru skip all three.
        middleware=[DefineMiddleware(
            VisitGate, visit=lambda app: session.middleware(SessionPrincipalMiddleware(csrf(app))),
            stateless_paths=STATELESS_PATHS, csrf_exempt_paths=CSRF_EXEMPT_PATHS)],
        before_request=before_handler,  # who may call the route, then what they send
        before_send=[add_security_headers,  # every response, errors and static files too
                     secure_cookies_over_https(settings.secure_cookies, settings.forwarded_allow_ips)],
        template_config=TemplateConfig(engine=Jinja.from_environment(environment)),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Library branch network API",
            version=__version__,
            path="/schema",
            openapi_router=Router("/schema", route_handlers=[], include_in_schema=False,
                                  opt={"permission": "public"}),
            # The JSON document only: Swagger UI's page loads its code from a CDN and runs an
            # inline script, which the closed network and the CSP both refuse.
            render_plugins=[JsonRenderPlugin()],
        ),
        lifespan=[lifespan],
        # JSON lines: ours alone (library/web/logs.py); text: Litestar's own set-up, as before.
        **({"logging_config": None} if settings.log_format == "json" else {}),
        request_max_body_size=settings.max_body_bytes,
        debug=settings.debug,
    )
    app.state.settings = settings
    # Every error each operation can answer, as the problem body it is (library/web/openapi.py).
    csrf_exempt = re.compile("|".join(CSRF_EXEMPT_PATHS))
    make_document_true(app, lambda path: bool(csrf_exempt.search(path)))
    # Before routing, which would answer a HEAD with 405 (library/web/transport.py).
    # Each request's id and, with metrics on, its route, status and time: around the router, so that
    # an unknown address or a refused method is counted too (library/web/request_id.py); inside the
    # HEAD wrapper, whose copy of the scope would hide the route the router found.
    # Inside both, the conditional GET (library/web/conditional.py), so that a 304 is what is counted.
    app.asgi_handler = answer_head_like_get(observe_requests(
        answer_not_modified(app.asgi_handler), record_request if settings.metrics_token else None))
    logging.getLogger("library").setLevel(logging.INFO)
    configure_logging(settings.log_format)
    return app
