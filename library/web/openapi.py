"""The OpenAPI document made true in one place: every error an operation can answer, as the
problem body it really is.

Litestar documents each route's success and, for a route with parameters, a 400 in its own
`{"status_code", "detail"}` shape as `application/json`; what the API really sends for every
error is `application/problem+json` (`library.web.errors`), and most refusals come from the
guards, the input boundary and the services, which Litestar cannot see. So once the document is
built, this step rewrites each operation's error responses from what can really answer it:

- Litestar itself: 400 when the operation has parameters or a body that may fail to parse;
- the app's layers, the same for every route: the input boundary (`library.web.input`) answers
  422 on any operation (a control character in any query parameter, a body a handler needs and
  did not get, a date past the calendar); a changing method is refused 403 without its CSRF token
  and 413 above the body limit, since the boundary reads every body; 503 when the database
  cannot be reached (every operation but those marked `opt={"database": False}`);
- the code: the domain errors (`library.errors`) that the handler, its guards and everything
  they call construct, found by reading their source (`raised_by`). A refusal built in a helper
  and raised elsewhere counts too, and a function is followed wherever it is named (called, or
  passed as a value); one reached only through a registry at run time (a hook list) is not.

Every error response then points at one `Problem` schema. A download (`Stream`) is documented
with the media types its code gives it, not as Litestar's guess of JSON. What the reading could
miss, the tests catch: every API answer the HTTP tests see is held to this document
(tests/http/contract.py), and so is every answer of the fuzzer (tests/fuzz/).
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.response import Stream
from litestar.routes import HTTPRoute

from library.errors import MESSAGES, DomainError
from library.web.auth import guard_refusals, permission_guard

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM = "Problem"
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# What each status means for this API, in the document's words.
DESCRIPTIONS = {
    400: "The request could not be parsed: a parameter or the body has the wrong type or shape "
         "(`code`: invalid_request, `errors` per field).",
    401: "Not signed in, the sign-in failed, or (sync) no valid branch credential.",
    403: "Not permitted for this account, or (a changing method) the CSRF token is missing or not this "
         "session's (`code`: csrf_failed): send the `library_csrf` cookie's value as `X-CSRFToken`.",
    404: "What the request names does not exist.",
    409: "Refused in the current state (`reasons` lists each refusal for a checkout, renewal, hold or "
         "registration).",
    413: "The body is larger than the service accepts.",
    422: "Some input is not valid; `field` names it. Any text with a control character such as NUL "
         "(`code`: control_characters), a missing body (body_required), a date the calendar cannot "
         "compute (date_beyond_calendar), and the service's own checks.",
    429: "Too many attempts; `Retry-After` says how many seconds to wait.",
    503: "The database cannot be reached just now (`code`: database_unavailable).",
}


def problem_schema() -> Schema:
    """The body of every error (`library.web.errors._problem`), RFC 9457 plus the library's fields."""
    text = Schema(type=OpenAPIType.STRING)
    return Schema(
        type=OpenAPIType.OBJECT,
        title=PROBLEM,
        description="An error, in the language of the request (RFC 9457 problem details).",
        required=["type", "status", "title", "detail"],
        properties={
            "type": Schema(type=OpenAPIType.STRING, description="Always about:blank: `code` says which error"),
            "status": Schema(type=OpenAPIType.INTEGER, minimum=400, maximum=599),
            "title": text,
            "detail": Schema(type=OpenAPIType.STRING, description="What went wrong, for a person to read"),
            "code": Schema(type=OpenAPIType.STRING, description="The reason code, stable across languages",
                           examples=[code for code in ("control_characters", "item_not_found", "refused")
                                     if code in MESSAGES] + ["csrf_failed", "invalid_request"]),
            "field": Schema(type=OpenAPIType.STRING, description="The parameter, form field or body member at fault"),
            "request_id": Schema(type=OpenAPIType.STRING, description="The request's id, as in its X-Request-ID "
                                 "header and the server's log lines"),
            "reasons": Schema(
                type=OpenAPIType.ARRAY,
                description="Every reason a checkout, renewal, hold or registration was refused",
                items=Schema(type=OpenAPIType.OBJECT, required=["code", "message", "overridable"], properties={
                    "code": text, "message": text, "overridable": Schema(type=OpenAPIType.BOOLEAN)}),
            ),
            "errors": Schema(
                type=OpenAPIType.ARRAY,
                description="Each parameter or body member that could not be parsed",
                items=Schema(type=OpenAPIType.OBJECT, properties={
                    "field": Schema(one_of=[text, Schema(type=OpenAPIType.NULL)]),
                    "message": Schema(one_of=[text, Schema(type=OpenAPIType.NULL)])}),
            ),
        },
    )


# --- what the code raises ------------------------------------------------------------------------


def _source_tree(function: Callable[..., Any]) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None


def _owner(function: Callable[..., Any]) -> Any:
    """The class a method is defined in, for `self.x` and `cls.x`."""
    owner: Any = inspect.getmodule(function)
    for part in function.__qualname__.split(".")[:-1]:
        if part == "<locals>":
            return None
        owner = getattr(owner, part, None)
    return owner if inspect.isclass(owner) else None


def _ours(value: Any) -> bool:
    return (getattr(value, "__module__", None) or "").startswith("library.")


def _resolve(node: ast.expr, namespace: dict[str, Any], owner: Any) -> Any:
    """What a name or dotted name refers to, as far as it can be known without running anything:
    only modules and classes are looked into, never an instance (whose attribute may be computed)."""
    if isinstance(node, ast.Name):
        if node.id in ("self", "cls"):
            return owner
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace, owner)
        if isinstance(base, types.ModuleType) or inspect.isclass(base):
            return inspect.getattr_static(base, node.attr, None)
    return None


def _functions(value: Any) -> Iterator[Callable[..., Any]]:
    """The library's functions behind a value: a function, a method, a property, a class's __init__."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        yield from (f for f in (value.fget, value.fset) if f is not None and _ours(f))
        return
    if inspect.isclass(value):
        if _ours(value) and not issubclass(value, BaseException):
            init = value.__dict__.get("__init__")
            if init is not None:
                yield init
        return
    value = getattr(value, "fn", value)  # a Litestar handler or guard wrapper
    if callable(value) and _ours(value):
        function = inspect.unwrap(value)
        if inspect.isfunction(function) or inspect.ismethod(function):
            yield function


def _constants(node: ast.expr | None) -> Iterator[str]:
    """The text constants an expression can be: a constant, or either branch of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _constants(node.body)
        yield from _constants(node.orelse)


@functools.cache
def _direct(function: Callable[..., Any]) -> tuple[frozenset[type[DomainError]], frozenset[str],
                                                   tuple[Callable[..., Any], ...]]:
    """The domain errors a function constructs itself, the media types of the downloads (`Stream`)
    it makes, and the library functions it names."""
    tree = _source_tree(function)
    if tree is None:
        return frozenset(), frozenset(), ()
    namespace = getattr(function, "__globals__", {})
    owner = _owner(function)
    errors: set[type[DomainError]] = set()
    media_types: set[str] = set()
    named: list[Callable[..., Any]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            target = _resolve(node.func, namespace, owner)
            if inspect.isclass(target) and issubclass(target, DomainError):
                errors.add(target)
            if inspect.isclass(target) and issubclass(target, Stream):
                for keyword in node.keywords:
                    if keyword.arg == "media_type":
                        media_types.update(_constants(keyword.value))
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            named.extend(_functions(_resolve(node, namespace, owner)))
    return frozenset(errors), frozenset(media_types), tuple(dict.fromkeys(named))


def _reach(*functions: Callable[..., Any]) -> tuple[set[type[DomainError]], set[str]]:
    errors: set[type[DomainError]] = set()
    media_types: set[str] = set()
    seen: set[Any] = set()
    pending = [f for value in functions for f in _functions(value)]
    while pending:
        function = pending.pop()
        if function in seen:
            continue
        seen.add(function)
        found, made, named = _direct(function)
        errors |= found
        media_types |= made
        pending.extend(named)
    return errors, media_types


def raised_by(*functions: Callable[..., Any]) -> set[type[DomainError]]:
    """Every domain error the functions, and the library functions they reach, construct."""
    return _reach(*functions)[0]


def streamed_by(*functions: Callable[..., Any]) -> set[str]:
    """The media types of the downloads the functions, and what they reach, make."""
    return _reach(*functions)[1]


# --- the document ----------------------------------------------------------------------------------


def _error_response(status: int) -> OpenAPIResponse:
    headers = None
    if status == 429:
        headers = {"Retry-After": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$"),
                                                description="Seconds to wait before trying again")}
    return OpenAPIResponse(
        description=DESCRIPTIONS.get(status) or HTTPStatus(status).phrase,
        headers=headers,
        content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{PROBLEM}"))},
    )


def error_statuses(handler: HTTPRouteHandler, method: str, operation: Operation, csrf_exempt: Callable[[str], bool],
                   path: str) -> set[int]:
    """Every error status the operation can answer (see the module's docstring)."""
    statuses = {422}  # the input boundary: a control character in any query parameter
    if operation.parameters or operation.request_body:
        statuses.add(400)
    if method in CHANGING_METHODS:
        statuses.add(413)
        if not csrf_exempt(path):
            statuses.add(403)
    if handler.opt.get("database", True):
        statuses.add(503)
    # The app's permission check refuses by what the route declares, not by all its source can raise.
    guards = [guard for guard in handler.resolve_guards() if guard is not permission_guard]
    errors = raised_by(handler.fn, *guards) | guard_refusals(handler)
    statuses |= {error.status for error in errors}
    return statuses


def _document_download(responses: dict[str, Any], handler: HTTPRouteHandler) -> None:
    """A download's success is the file, in the media types the code makes, not Litestar's JSON guess."""
    media_types = sorted(streamed_by(handler.fn)) or ["application/octet-stream"]
    response = responses[str(handler.status_code)]
    file = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
    response.content = {media_type: OpenAPIMediaType(schema=file) for media_type in media_types}


def complete(openapi: OpenAPI, routes: Iterable[HTTPRoute], csrf_exempt: Callable[[str], bool]) -> OpenAPI:
    """Rewrite every operation's error responses, and add the `Problem` schema they share."""
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas[PROBLEM] = problem_schema()
    for route in routes:
        path_item = (openapi.paths or {}).get(route.path_format or "/")
        if path_item is None:
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(path_item, method.lower(), None)
                if operation is None:
                    continue
                responses = {code: response for code, response in (operation.responses or {}).items()
                             if int(code) < 400}
                for status in sorted(error_statuses(handler, method, operation, csrf_exempt, route.path)):
                    responses[str(status)] = _error_response(status)
                if handler.parsed_fn_signature.return_type.is_subclass_of(Stream):
                    _document_download(responses, handler)
                operation.responses = responses
    return openapi


def make_document_true(app: Litestar, csrf_exempt: Callable[[str], bool]) -> None:
    """Have the app's OpenAPI plugin run `complete` on the document it builds (once, on first use).

    Litestar makes its OpenAPIPlugin itself and offers no hook after the document is built, which
    it builds lazily. The plugin (slotted) is given a subclass whose build completes the document:
    lazy still (an app that never serves /schema pays nothing), and `app.openapi_schema` is the
    same document as /schema/openapi.json."""
    plugin = app.plugins.get(OpenAPIPlugin)

    class CompletingOpenAPIPlugin(type(plugin)):  # type: ignore[misc]
        __slots__ = ()

        def _build_openapi(self) -> OpenAPI:
            return complete(super()._build_openapi(), self.included_routes.values(), csrf_exempt)

    plugin.__class__ = CompletingOpenAPIPlugin
