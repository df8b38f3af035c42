"""The whole API, fuzzed: every operation of /schema/openapi.json, as an anonymous visitor, a
reader and a librarian, against a real server on the suite's database (SQLite or PostgreSQL).

Schemathesis makes the requests from the document itself — valid ones, and ones that break
the schema on purpose — and checks each answer: no 5xx, a status the document lists for that
operation, the content type it lists, a body that matches the listed schema. A 500 is a bug
and so is an answer the document does not describe.

Bounded and reproducible, so it can run in CI on both engines: a fixed number of examples per
operation and user (`LIBRARY_FUZZ_EXAMPLES`, 20 by default: about one minute on SQLite and two
on PostgreSQL on the 2-core machine), Hypothesis derandomised (the same requests on every run)
and not shrinking (a failure is reported as found, so a failing run is bounded too), no
deadline (a slow answer on a busy machine is not a failure here; speed is measured in bench/).

The server is uvicorn in a thread of this process with the app's lifespan, so the clock can be
frozen for it as for the HTTP tests. Each request carries the user's cookies and CSRF header
afresh, so an operation that signs in or out changes nothing for the next one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import SERVER_START_SECONDS

FROZEN_NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.timezone.utc)  # as tests/http: Saturday 09:00 in Jiaxing
# Examples per operation and user: 46 operations x 3 users x this many requests (and a few more
# that Schemathesis adds from the document's own examples) must stay within ~3 minutes.
MAX_EXAMPLES = int(os.environ.get("LIBRARY_FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
CSRF_COOKIE, CSRF_HEADER = "library_csrf", "X-CSRFToken"


@dataclass
class User:
    """What a client of the API keeps between requests: its cookies and the CSRF token."""

    name: str
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.cookies[CSRF_COOKIE]}


USERS = {
    "anonymous": None,
    "reader": {"kind": "patron", "login": "ZX10000001", "secret": "123456"},
    "librarian": {"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Identifiers that exist, by the name of the parameter or body member that takes them: random
# text reaches little beyond "not found", so part of the requests name real copies, readers,
# records, sessions and loans instead, and go as deep as the services go.
KNOWN: dict[str, list] = {}


async def _emptied() -> None:
    from library.db import close_connections
    from tests.support import empty_all_tables

    try:
        await empty_all_tables()
    finally:
        await close_connections()


async def _fresh_demo() -> None:
    from library.accounts.tables import Patron
    from library.activities.tables import Occurrence, Registration
    from library.branches.tables import Branch, Room
    from library.catalog.tables import Item, Record
    from library.db import close_connections
    from library.demo import load_demo
    from library.loans.tables import Hold, Loan
    from tests.support import empty_all_tables

    async def column(table, name: str) -> list:
        return sorted(str(row[name]) for row in await table.select(getattr(table, name)) if row[name] is not None)

    try:
        await empty_all_tables()
        await load_demo(FROZEN_NOW.date(), books=True)
        records, cards, branches = await column(Record, "uuid"), await column(Patron, "card_number"), \
            await column(Branch, "code")
        loans = await column(Loan, "uuid")
        KNOWN.update({
            "uuid": records + await column(Occurrence, "uuid") + loans + await column(Hold, "uuid")
            + await column(Registration, "uuid"),
            "record": records, "barcode": await column(Item, "barcode"), "text": await column(Record, "isbn13"),
            "code": branches, "branch": branches, "pickup_branch": branches, "room": await column(Room, "code"),
            "card_number": cards, "card_numbers": [[card] for card in cards], "loans": [[loan] for loan in loans],
        })
    finally:
        await close_connections()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """uvicorn serving the app on the demo data, in a thread with its own event loop."""
    import uvicorn

    from library.app import create_app
    from library.clock import set_clock
    from library.settings import load_settings

    set_clock(lambda: FROZEN_NOW)
    asyncio.run(_fresh_demo())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(load_settings()), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="fuzzed-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        set_clock(None)
        asyncio.run(_emptied())  # what the fuzz wrote (closed days, withdrawn copies) stays here


@pytest.fixture(scope="module")
def users(base_url) -> dict[str, User]:
    """Each user's cookies: a visit (which gives the CSRF cookie), then a sign-in through the API."""
    signed: dict[str, User] = {}
    for name, credentials in USERS.items():
        with httpx.Client(base_url=base_url) as client:
            client.get("/api/branches").raise_for_status()
            if credentials is not None:
                response = client.post("/api/session", json=credentials,
                                       headers={CSRF_HEADER: client.cookies[CSRF_COOKIE]})
                assert response.status_code == 201, response.text
            signed[name] = User(name, dict(client.cookies))
    return signed


def _document() -> dict:
    """The document the server serves: the app builds it from its routes alone, so the app built
    here (collection time, before the server starts) gives the same one."""
    from library.app import create_app
    from library.settings import load_settings

    return create_app(load_settings()).openapi_schema.to_schema()


# Loaded at collection, so that each operation is a test of its own in the report.
schema = schemathesis.openapi.from_dict(_document())


def _sometimes_known(values):
    """Each member that takes an identifier: what Schemathesis generated, or one that exists."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries({
        key: st.one_of(st.just(value), st.sampled_from(KNOWN[key])) if KNOWN.get(key) else st.just(value)
        for key, value in values.items()})


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    return _sometimes_known(path_parameters)


@schema.hook
def flatmap_query(context, query):
    return _sometimes_known(query)


@schema.hook
def flatmap_body(context, body):
    return _sometimes_known(body)


FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def _call(case, user: User, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=user.headers, cookies=user.cookies, checks=CHECKS)


# One test per user: Schemathesis makes each operation a test of its own and takes no
# pytest parametrisation of its own on top.
@schema.parametrize()
@FUZZ_SETTINGS
def test_anonymous_visitor(case, users, base_url):
    _call(case, users["anonymous"], base_url)


@schema.parametrize()
@FUZZ_SETTINGS
def test_reader(case, users, base_url):
    _call(case, users["reader"], base_url)


@schema.parametrize()
@FUZZ_SETTINGS
def test_librarian(case, users, base_url):
    _call(case, users["librarian"], base_url)
