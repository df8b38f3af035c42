"""Every API answer held to the OpenAPI document: a documented status, a documented content type,
a body that matches the documented schema (date-times with their UTC offset included).

`tests/http/conftest.py` puts `check_answer` on the `client` every HTTP test uses, so each answer
those tests see — the refusals they provoke on purpose above all — is checked against what
/schema/openapi.json says of its operation. The fuzzer (tests/fuzz/) does the same with answers
nobody thought of.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import httpx
import jsonschema_rs

JSON_TYPES = ("application/json", "application/problem+json")


def document() -> dict[str, Any]:
    """The document the app serves (the same for every app of the suite: routes do not depend on settings)."""
    return _document()


@functools.cache
def _document() -> dict[str, Any]:
    from library.app import create_app
    from library.settings import load_settings

    return create_app(load_settings()).openapi_schema.to_schema()


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], int, str]]:
    """Each documented path as a pattern; the one with the most literal segments wins, as in the router."""
    templates = []
    for template in _document()["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        literal = sum(1 for segment in template.split("/") if segment and not segment.startswith("{"))
        templates.append((re.compile(f"^{pattern}$"), literal, template))
    return templates


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The documented operation a request reached, if any."""
    candidates = sorted(((literal, template) for pattern, literal, template in _templates() if pattern.match(path)),
                        reverse=True)
    for _, template in candidates:
        operation = _document()["paths"][template].get(method.lower())
        if operation is not None:
            return template, operation
    return None


@functools.cache
def _validator(template: str, method: str, status: str, media_type: str) -> Any:
    schema = _document()["paths"][template][method]["responses"][status]["content"][media_type].get("schema", {})
    return jsonschema_rs.validator_for({**schema, "components": _document()["components"]}, validate_formats=True)


def problems_with(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """What in one answer the document does not describe (nothing: an empty list)."""
    found = operation_for(method, path)
    if found is None or method == "HEAD":
        return []  # not an operation of the document (a page, an unknown URL, a method not allowed)
    template, operation = found
    where = f"{method} {path} ({template}) answered {status}"
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{where}, which the document does not list (it lists {sorted(operation['responses'])})"]
    content = response.get("content") or {}
    media_type = content_type.split(";")[0].strip()
    if not content:
        return [] if not body else [f"{where} with a {media_type} body; the document says no body"]
    if media_type not in content:
        return [f"{where} as {media_type!r}; the document says {sorted(content)}"]
    if media_type in JSON_TYPES:
        instance = json.loads(body)
        errors = [error.message for error in _validator(template, method.lower(), str(status), media_type)
                  .iter_errors(instance)]
        if errors:
            return [f"{where} with a body that does not match its schema: {errors[:3]}; body {body[:300]!r}"]
    return []


async def check_answer(response: httpx.Response) -> None:
    """An httpx response hook: fail the request whose answer the document does not describe."""
    await response.aread()
    request = response.request
    problems = problems_with(request.method, request.url.path, response.status_code,
                             response.headers.get("content-type", ""), response.content)
    assert not problems, "\n".join(problems)
