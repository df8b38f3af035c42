"""What the API fuzzer (tests/fuzz/) and the probes beside it found, each kept as a test: every
one was a 500 and is now a clear 4xx problem body, on both engines."""

from __future__ import annotations

import pytest

from library.catalog.tables import Item

JSON = {"Accept": "application/json"}


async def librarian(client) -> dict[str, str]:
    await client.get("/")
    await client.post("/api/session", json={"kind": "staff", "login": "librarian", "secret": "librarian-demo"},
                      headers={"X-CSRFToken": client.cookies["library_csrf"]})
    return {"X-CSRFToken": client.cookies["library_csrf"]}


@pytest.mark.parametrize("pair", ["²", "¹²", "٣"])
async def test_a_pair_number_in_other_digits_is_no_pair(client, pair):
    """`str.isdigit()` takes "²", which `int()` refuses: GET /api/catalog/duplicates/² was a 500."""
    await librarian(client)
    response = await client.get(f"/api/catalog/duplicates/{pair}")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "duplicate_not_found"
    response = await client.get(f"/staff/catalog/duplicates/{pair}", headers=JSON)
    assert response.status_code == 404


@pytest.mark.parametrize("price_cents", [2**31, 2**63, 10**30, -1])
async def test_a_price_past_any_column_is_refused_and_nothing_written(client, price_cents):
    """A copy's price past the integer column (2**31 on PostgreSQL, 2**63 on SQLite) was a 500."""
    headers = await librarian(client)
    created = await client.post("/api/records", headers=headers, json={"title": "价格测试"})
    assert created.status_code == 201, created.text
    response = await client.post(f"/api/records/{created.json()['uuid']}/items", headers=headers,
                                 json={"branch": "ZX", "count": 1, "price_cents": price_cents})
    assert response.status_code == 400, response.text  # the schema says 0 to 99999999
    assert await Item.count() == 0


async def test_the_service_refuses_a_price_past_the_form_s_too():
    """Any caller, not only the API's parsing: the service holds the same bound."""
    from library.catalog import rules
    from library.catalog.service import NewCopies, add_items
    from library.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        await add_items(None, "9b7c1e5e-7a4a-4f4e-9f55-000000000001",  # type: ignore[arg-type]
                        NewCopies(branch_code="ZX", price_cents=rules.MAX_PRICE_CENTS + 1))
    assert refused.value.code == "not_a_price"


@pytest.mark.parametrize("number", ["--5", "²", "-²"])
async def test_a_rule_number_int_cannot_read_is_explained(client, number):
    """The rules form took "--5" and "²" as numbers and `int()` then failed: a 500 for an administrator."""
    from tests.support import csrf_token_from, sign_in_staff

    await sign_in_staff(client, "admin", "admin-demo-pass")
    token = csrf_token_from((await client.get("/staff/circulation/rules")).text)
    form = {"_csrf_token": token, "branch_code": "XZ", "patron_category": "senior", "item_type": "", "name": "长者",
            "loan_days": number, "max_loans": "10", "renewal_days": "30", "max_renewals": "3", "renew_from": "today",
            "hold_shelf_days": "7", "renewal_refused_after_overdue_days": "30", "fine_cents_per_day": "0",
            "loanable": "1", "holds_allowed": "1"}
    response = await client.post("/staff/circulation/rules", data=form)
    assert response.status_code == 422, response.text[:300]
    assert "1 至 365" in response.text  # the administrator reads Chinese


@pytest.mark.parametrize("capacity", ["²", "¹⁰"])
async def test_a_session_capacity_in_superscript_is_explained(capacity):
    """The activity forms' numbers: "²" passed `isdigit()` and failed `int()`."""
    from library.activities.controllers import int_or_none as _int_or_none
    from library.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        _int_or_none(capacity, "capacity", 1, 2000)
    assert refused.value.code == "number_out_of_range"
    assert _int_or_none("１２", "capacity", 1, 2000) == 12  # full-width digits, as a Chinese keyboard types them
