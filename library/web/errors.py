"""The one mapping from errors to HTTP: problem bodies for the API, pages for people.

Nothing here decides *whether* something is an error — services do. A stack trace
never reaches a user: an unexpected exception is logged and shown as a friendly 500
(and counted as the bug it is); an unreachable database is a 503.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.response import Redirect, Template

from library import i18n
from library.errors import CirculationRefused, DomainError, NotSignedIn, TooManyAttempts
from library.i18n import N_, gettext
from library.web.auth import principal_of, request_language
from library.web.request_id import current_request_id

log = logging.getLogger("library.errors")

API_PREFIXES = ("/api/", "/health", "/schema", "/metrics")

STATUS_TITLES = {
    400: N_("Bad request"),
    401: N_("Sign-in required"),
    403: N_("Not permitted"),
    404: N_("Page not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    413: N_("Too much data"),
    422: N_("Some input is not valid"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Service unavailable"),
}

STATUS_DETAILS = {
    400: N_("The request could not be understood."),
    403: N_("You do not have the rights to open this page."),
    404: N_("We could not find the page you asked for. It may have moved, or the address may be mistyped."),
    405: N_("This address does not accept that kind of request."),
    413: N_("The data sent is larger than the library accepts."),
    500: N_("Something went wrong on our side. The library staff have been told; please try again later."),
    503: N_("The library's database cannot be reached just now. Please try again in a few minutes."),
}

CSRF_DETAIL = N_("This form has expired or did not come from this site. Reload the page and try again.")


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(API_PREFIXES):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _ensure_language(request: Request) -> None:
    """Errors raised before the middleware ran (an unknown URL) still speak the reader's language."""
    if not hasattr(request.state, "language"):
        language = request_language(request, principal_of(request))
        request.state.language = language
        i18n.current_language.set(language)


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "status": status, "title": title, "detail": detail}
    body.update({key: value for key, value in extra.items() if value is not None})
    # The same id as the answer's X-Request-ID header and the request's log lines: a client that
    # reports the error with its body hands staff the way into the log.
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    return Response(content=body, status_code=status, media_type="application/problem+json", headers=headers)


def _error_page(request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Template(
        template_name="errors/error.html",
        context={
            "status": status,
            "title": title,
            "detail": detail,
            "principal": principal_of(request),
            "language": i18n.current_language.get(),
            "path": request.url.path,
            "query": request.url.query,
        },
        status_code=status,
        headers=headers,
        media_type=MediaType.HTML,
    )


def _respond(request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    if wants_json(request):
        return _problem(status, title, detail, headers, **extra)
    return _error_page(request, status, title, detail, headers)


def _signin_redirect(request: Request) -> Response:
    target = "/staff/signin" if request.url.path.startswith("/staff") else "/signin"
    query = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
    if getattr(request.state, "session_expired", False):
        query["expired"] = "1"
    return Redirect(path=f"{target}?{urlencode(query)}", status_code=303)


def refusal_headers(error: BaseException | None) -> dict[str, str] | None:
    """The HTTP headers a refusal's answer carries, page or problem body: `Retry-After` (seconds)
    when the reader is throttled."""
    if isinstance(error, TooManyAttempts):
        return {"Retry-After": str(error.retry_after)}
    return None


def domain_error_handler(request: Request, error: DomainError) -> Response:
    _ensure_language(request)
    if isinstance(error, NotSignedIn) and not wants_json(request):
        return _signin_redirect(request)
    headers = refusal_headers(error)
    reasons = error.reasons() if isinstance(error, CirculationRefused) else None
    return _respond(request, error.status, error.translated_title(), error.message(), headers,
                    code=error.code, field=error.field, reasons=reasons)


def http_error_handler(request: Request, error: HTTPException) -> Response:
    _ensure_language(request)
    status = error.status_code
    title = gettext(STATUS_TITLES.get(status, STATUS_TITLES[400]))
    if isinstance(error, PermissionDeniedException) and "csrf" in str(error.detail).lower():
        return _respond(request, 403, title, gettext(CSRF_DETAIL), code="csrf_failed")
    if isinstance(error, ValidationException):
        errors = [
            {"field": item.get("key"), "message": item.get("message")}
            for item in (error.extra or [])
            if isinstance(item, dict)
        ]
        return _respond(request, 400, title, gettext(STATUS_DETAILS[400]), code="invalid_request", errors=errors or None)
    if isinstance(error, NotFoundException):
        return _respond(request, 404, title, gettext(STATUS_DETAILS[404]), code="not_found")
    detail = STATUS_DETAILS.get(status)
    headers = dict(error.headers or {})
    return _respond(request, status, title, gettext(detail) if detail else str(error.detail), headers or None)


def _is_database_unreachable(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, OSError, TimeoutError)):
        return True
    module = type(error).__module__
    return module.startswith("asyncpg") and "Connect" in type(error).__name__


def unexpected_error_handler(request: Request, error: Exception) -> Response:
    _ensure_language(request)
    if _is_database_unreachable(error):
        log.error("database unreachable: %s", error)
        return _respond(request, 503, gettext(STATUS_TITLES[503]), gettext(STATUS_DETAILS[503]), code="database_unavailable")
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _respond(request, 500, gettext(STATUS_TITLES[500]), gettext(STATUS_DETAILS[500]), code="internal_error")


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
