"""The one input boundary: text no field may hold is refused before any handler reads it.

A NUL byte cannot be stored in a PostgreSQL text column at all (the driver raises, which was a
500), while SQLite stores it and every later reader, export and feed trips over it; the other C0
control characters are never typed by a person and arrive only as garbage or an attack. Rather
than a check in each handler, this hook looks once at every query parameter, path parameter,
form field and JSON string of every request and refuses with a 422 that names the field, the
same on both engines.

A multi-line text (a textarea, a JSON string such as a description) keeps tab, CR and LF,
which people do type; a value in the URL is one line and keeps none of them (a CR or LF there
could only split a header or a log line).

It runs in the app's `before_request` hook (library.app.before_handler), after the permission
check (an anonymous caller cannot make a staff route parse its body) and before the handler's
parameters are parsed. The body it reads is cached on the request, so the handler does not read
it twice. A layer that sets its own `before_request` would replace the app's:
tests/http/test_input_boundary.py checks none does.

Node-to-node sync (/api/sync/) is held to NUL only: what a branch uploads is its own stored data,
which may carry a control character that came in with a MARC-8 record (library.catalog.marc keeps
them), and refusing it would stop that branch's sync at a record no librarian can see the fault
in. A NUL stays refused there too: the central node's PostgreSQL cannot store it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request

from library.errors import InvalidInput

# C0 controls and DEL. One line: all of them; several lines: all but tab, LF and CR.
_ONE_LINE = re.compile("[\x00-\x1f\x7f]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NUL = re.compile("\x00")
_SYNC_PREFIX = "/api/sync/"
# In JSON text a control character can only be written as a \\u escape (a raw one is invalid
# JSON, which the handler refuses anyway), so a body without such an escape needs no decoding.
_JSON_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-f]|\\u007f", re.IGNORECASE)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _shown(name: str) -> str:
    """A field's name as the refusal may show it: never the control character itself."""
    return _ONE_LINE.sub("?", name) or "?"


def _refuse(field: str) -> InvalidInput:
    return InvalidInput("control_characters", field=field, name=field)


def _check_text(field: str, value: str, pattern: re.Pattern[str]) -> None:
    if pattern.search(value):
        raise _refuse(_shown(field))


def _check_json(value: Any, path: str, pattern: re.Pattern[str]) -> None:
    """Every string in a decoded JSON document, and every key; `path` names where it is."""
    if isinstance(value, str):
        _check_text(path or "body", value, pattern)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and pattern.search(key):
                raise _refuse(_shown(name))
            _check_json(item, name, pattern)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", pattern)


def _expects_body(request: Request) -> bool:
    """Whether the handler needs a body (a `data` parameter that is neither optional nor defaulted)."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    return data is not None and not data.has_default and not data.is_optional


async def check_input(request: Request) -> None:
    """Refuse control characters in any text of the request; refuse a missing body a handler needs."""
    # The scope's path and query string as they are: building the request's URL for them cost
    # more than the rest of this check on a request without parameters (issue 20).
    sync = request.scope["path"].startswith(_SYNC_PREFIX)
    one_line, multi_line = (_NUL, _NUL) if sync else (_ONE_LINE, _MULTI_LINE)
    if request.scope.get("query_string"):
        for name, value in request.query_params.multi_items():
            _check_text(name, name, one_line)
            _check_text(name, value, one_line)
    for name, value in request.path_params.items():
        if isinstance(value, str):
            _check_text(name, value, one_line)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    media_type = request.content_type[0]
    if media_type in _FORM_TYPES:
        form = await request.form()
        for name, value in form.multi_items():
            _check_text(name, name, one_line)
            if isinstance(value, str):
                _check_text(name, value, multi_line)
        return
    body = await request.body()
    if not body.strip():
        if _expects_body(request):
            # Without this the handler's parameter parsing answers with Python's own words.
            raise InvalidInput("body_required", field="body")
        return
    # Whatever the declared type: the handler's parsing may take JSON sent as text/plain.
    if _JSON_CONTROL_ESCAPE.search(body):
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return  # not JSON: the handler's own parsing refuses it with a 400
        _check_json(document, "", multi_line)
