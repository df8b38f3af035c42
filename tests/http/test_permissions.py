"""Who may do what (library/accounts/permissions.py), held to every route of the app.

The adversary: a volunteer (晨星志愿者) signed in at the Zhenxing desk who types a librarian's URL —
the rules page, a reader's contact details, the reader export — or an override comment into the
lending form; and a librarian of the central library who edits the Zhenxing calendar. The walk
below calls every route of `app.routes` as each of them and holds each answer to the matrix.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from library.accounts import service as accounts
from library.accounts.permissions import (AUDIENCES, CREDENTIAL, PERMISSIONS, PUBLIC, READER, ROLES, SIGNED_IN,
                                          declared_permission, may, permission_table, readers_too)
from library.accounts.principal import Principal
from library.accounts.tables import Patron
from library.app import create_app
from library.settings import load_settings
from tests.support import client_for, csrf_token_from, sign_in_patron, sign_in_staff

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOBODY = "00000000-0000-4000-8000-000000000000"
REFUSED = {401, 403}
# Where the walk's calls go: an existing branch, card, day, so that a call gets past parsing.
PATH_VALUES = {"code": "ZX", "card": "ZX10000004", "day": "2026-12-01", "uuid": NOBODY, "station_uuid": NOBODY,
               "pair": f"{NOBODY}.{NOBODY}", "barcode": "NOSUCHCOPY", "text": "9787000000000", "name": "x",
               "file_path": "nothing.css", "path": "nothing"}
# Calls that reach the branch check (the form is valid, so the branch decides): route -> body.
BRANCH_CALLS = {
    ("POST", "/staff/branches/{code:str}/calendar"): {"day": "2026-12-20", "is_open": "closed", "reason_zh": "盘点"},
    ("POST", "/staff/branches/{code:str}/calendar/yearly"): {},
    ("POST", "/staff/branches/{code:str}/calendar/{day:str}/delete"): {},
    ("POST", "/api/branches/{code:str}/calendar-exceptions"): {"day": "2026-12-21", "reason_zh": "盘点"},
    ("DELETE", "/api/branches/{code:str}/calendar-exceptions/{day:date}"): {},
    ("POST", "/staff/volunteers/profiles"): {"branch": "ZX", "username": "volunteer", "card_number": "NOSUCHCARD"},
}
# Signing in and out: public, and their own answer to a wrong PIN is a 401 (test_sign_in_is_public).
SIGNING = {"/signout", "/api/session/end", "/signin", "/staff/signin", "/api/session"}
WHO = ["anonymous", "reader", "volunteer", "librarian", "administrator", "librarian_elsewhere"]
STAFF_ROLE = {"volunteer": "volunteer", "librarian": "librarian", "administrator": "administrator",
              "librarian_elsewhere": "librarian"}


def handlers(app):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                if method != "OPTIONS":  # Litestar's own answer: the allowed methods, no handler runs
                    yield route.path, method, handler


def test_every_route_declares_who_may_call_it():
    undeclared = [f"{method} {path}: {handler.opt.get('permission')!r}" for path, method, handler
                  in handlers(create_app(load_settings())) if declared_permission(handler.opt) is None]
    assert not undeclared, "routes without a known permission or audience:\n" + "\n".join(undeclared)


def test_the_documented_table_is_the_code():
    documented = (PROJECT_ROOT / "docs" / "permissions.md").read_text(encoding="utf-8")
    assert documented == permission_table(), "docs/permissions.md is stale: run `library permissions > " \
                                             "docs/permissions.md`"
    for name in PERMISSIONS:
        assert f"| `{name}` |" in documented


def _staff(role: str, branches: frozenset[int] = frozenset({2}), all_branches: bool = False) -> Principal:
    return Principal(kind="staff", id=1, uuid="u", name="n", language="en", role=role, branch_ids=branches,
                     all_branches=all_branches)


@pytest.mark.parametrize(("permission", "volunteer_may"), [
    ("loans.lend", True), ("loans.return", True), ("transits.receive", True), ("activities.check_in", True),
    ("selfcheck.help", True),
    ("rules.edit", False), ("calendars.edit", False), ("records.edit", False), ("readers.export", False),
    ("readers.contact", False), ("readers.loan_history", False), ("loans.override", False),
])
def test_what_a_volunteer_may_and_may_not(permission, volunteer_may):
    assert may(_staff("volunteer"), permission) is volunteer_may
    assert may(_staff("administrator"), permission)  # the administrator holds every one


def test_a_branch_bound_permission_holds_at_the_own_branches_only():
    librarian = _staff("librarian", frozenset({2}))
    assert may(librarian, "calendars.edit", 2) and not may(librarian, "calendars.edit", 3)
    assert may(librarian, "readers.contact", 3)  # not bound: a card works at every branch
    assert may(_staff("administrator", frozenset(), all_branches=True), "calendars.edit", 3)


def test_no_one_holds_an_unknown_permission_and_a_reader_holds_no_staff_one():
    reader = Principal(kind="patron", id=1, uuid="u", name="n", language="en")
    assert not may(_staff("administrator", all_branches=True), "loans.lendd")
    assert not may(reader, "loans.lend") and not may(None, "loans.lend")
    assert may(reader, READER) and may(reader, SIGNED_IN) and not may(None, SIGNED_IN) and may(None, PUBLIC)
    assert not may(_staff("janitor"), "loans.lend")  # a role the matrix does not know


def refused_by_matrix(who: str, permission: str, reader_too: bool, zhenxing_named: bool) -> bool:
    if permission in (PUBLIC, CREDENTIAL):
        return False
    if who == "anonymous":
        return True
    if permission == SIGNED_IN:
        return False
    if permission == READER:
        return who != "reader"
    if who == "reader":
        return not reader_too
    if STAFF_ROLE[who] not in PERMISSIONS[permission].roles:
        return True
    # The branch is in the path or the form: the handler asks may() with it.
    return who == "librarian_elsewhere" and zhenxing_named and PERMISSIONS[permission].branch_bound


async def _signed_in(client: httpx.AsyncClient, who: str) -> str:
    """Signs `who` in on `client`; answers a CSRF token bound to that session."""
    if who == "reader":
        assert (await sign_in_patron(client)).status_code == 303
    elif who != "anonymous":
        username, password = {"volunteer": ("volunteer", "volunteer-demo"),
                              "librarian": ("librarian", "librarian-demo"),
                              "administrator": ("admin", "admin-demo-pass"),
                              "librarian_elsewhere": ("jxlibrarian", "central-librarian")}[who]
        assert (await sign_in_staff(client, username, password)).status_code == 303
    return csrf_token_from((await client.get("/signin")).text)


@pytest.fixture
async def elsewhere(demo):
    """A librarian of the central library (JX), not of Zhenxing."""
    await accounts.create_staff("jxlibrarian", "Central librarian", "central-librarian", "librarian", ["JX"], "test")


@pytest.mark.parametrize("who", WHO)
async def test_every_route_answers_each_role_as_the_matrix_says(app, demo, elsewhere, who):
    calls = [call for call in handlers(app) if call[0] not in SIGNING]
    wrong, walked = [], 0
    async with client_for(app) as client:
        token = await _signed_in(client, who)
        for path, method, handler in calls:
            if method == "HEAD":
                continue  # answered like GET (library/web/transport.py)
            permission = declared_permission(handler.opt)
            url = re.sub(r"\{(\w+):\w+\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)
            body = BRANCH_CALLS.get((method, path))
            headers = {"accept": "application/json", "x-csrftoken": token}
            if method in ("GET", "DELETE"):
                response = await client.request(method, url, headers=headers)
            elif url.startswith("/api/"):
                response = await client.request(method, url, headers=headers, json=body or {})
            else:
                response = await client.request(method, url, headers=headers, data={**(body or {}),
                                                                                     "_csrf_token": token})
            walked += 1
            # A card in the path is a Zhenxing reader's (ZX10000004).
            zhenxing_named = (method, path) in BRANCH_CALLS or "{card:str}" in path
            expected = refused_by_matrix(who, permission, readers_too(handler.opt), zhenxing_named)
            refused = response.status_code in REFUSED
            if permission == CREDENTIAL:
                # The handler checks its credential itself; the guard lets everyone through to it.
                continue
            if refused != expected:
                wrong.append(f"{method} {url} [{permission}]: {response.status_code}, "
                             f"{'expected a refusal' if expected else 'refused'} "
                             f"{response.text[:160] if refused else ''}")
    assert walked == sum(1 for _, method, _ in calls if method != "HEAD") > 150  # every route, not a few
    assert not wrong, f"{who}:\n" + "\n".join(wrong)


def test_sign_in_is_public():
    app = create_app(load_settings())
    signing = {path: declared_permission(handler.opt) for path, method, handler in handlers(app) if path in SIGNING}
    assert set(signing) == SIGNING and set(signing.values()) == {PUBLIC}


async def test_credential_routes_answer_everyone_alike(app, demo):
    """A kiosk's, a branch node's or Prometheus's address: the session neither opens nor shuts it."""
    answers: dict[str, list[int]] = {}
    for who in ("anonymous", "reader", "volunteer"):
        async with client_for(app) as client:
            token = await _signed_in(client, who)
            for path, method, handler in handlers(app):
                if method in ("GET", "POST") and declared_permission(handler.opt) == CREDENTIAL:
                    url = re.sub(r"\{(\w+):\w+\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)
                    response = await client.request(method, url, headers={"accept": "application/json",
                                                                          "x-csrftoken": token})
                    answers.setdefault(f"{method} {url}", []).append(response.status_code)
    assert answers
    assert all(len(set(codes)) == 1 for codes in answers.values()), answers


async def test_a_volunteer_at_the_desk_sees_no_contact_details_and_cannot_override(client, demo):
    await Patron.update({Patron.phone: "13800000001", Patron.email: "wang@example.cn"}).where(
        Patron.card_number == "ZX10000001")
    await sign_in_staff(client, "volunteer", "volunteer-demo")
    card = await client.get("/staff/patrons/ZX10000001")
    assert card.status_code == 200 and "王芳" in card.text
    assert "13800000001" not in card.text and "wang@example.cn" not in card.text
    token = csrf_token_from(card.text)
    overridden = await client.post("/staff/circulation/checkout", data={
        "branch": "ZX", "card": "ZX10000004", "barcode": "ZX0000001", "override_comment": "I know her",
        "_csrf_token": token})
    assert overridden.status_code == 403
    api = await client.post("/api/loans/checkout", headers={"x-csrftoken": token}, json={
        "branch": "ZX", "card_number": "ZX10000004", "barcode": "ZX0000001", "override_comment": "I know her"})
    assert api.status_code == 403 and api.json()["code"] == "not_for_your_role"
    history = await client.get("/api/loans", params={"card_number": "ZX10000001"})
    assert history.status_code == 403
    rules = await client.post("/staff/circulation/rules", data={"_csrf_token": token})
    assert rules.status_code == 403


async def test_a_librarian_sees_the_contact_details(client, demo):
    await Patron.update({Patron.phone: "13800000001"}).where(Patron.card_number == "ZX10000001")
    await sign_in_staff(client)
    card = await client.get("/staff/patrons/ZX10000001")
    assert "13800000001" in card.text
    found = await client.get("/staff/patrons", params={"q": "ZX10000001"})
    assert found.status_code == 200


def test_every_role_is_a_staff_role_the_accounts_accept():
    from library.accounts.tables import StaffRole

    assert {role.value for role in StaffRole} == set(ROLES)
    assert not set(AUDIENCES) & set(PERMISSIONS)


async def test_a_volunteer_account_is_created_and_an_unknown_role_refused(demo):
    from library.errors import InvalidInput

    await accounts.create_staff("helper", "Helper", "long-enough-pass", "volunteer", ["ZX"], "test")
    with pytest.raises(InvalidInput):
        await accounts.create_staff("boss", "Boss", "long-enough-pass", "janitor", ["ZX"], "test")
