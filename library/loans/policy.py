"""Circulation rules as data: administrators list, save and remove them.

The network rule (no branch, no category, no item type) is the last resort that every
loan can fall back on; it can be edited but not removed.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import asdict, dataclass
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog.tables import ItemType
from library.db import is_unique_violation, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from library.loans import rules
from library.loans.tables import CirculationRule

CATEGORIES = ("adult", "child", "senior")
NETWORK_SCOPE = rules.scope_of(None, None, None)
# Field -> (lowest, highest) accepted value.
LIMITS = {
    "loan_days": (1, 365), "max_loans": (0, 500), "renewal_days": (1, 365), "max_renewals": (0, 50),
    "hold_shelf_days": (1, 60), "renewal_refused_after_overdue_days": (0, 3650), "fine_cents_per_day": (0, 10000),
}


@dataclass
class RuleInput:
    branch_code: str | None = None
    patron_category: str | None = None
    item_type: str | None = None
    name: str = ""
    loanable: bool = True
    loan_days: int = 28
    max_loans: int = 10
    renewal_days: int = 28
    max_renewals: int = 2
    renew_from: str = "today"
    holds_allowed: bool = True
    hold_shelf_days: int = 7
    renewal_refused_after_overdue_days: int = 30
    fine_cents_per_day: int = 0


def _require_administrator(principal: Principal) -> None:
    if not principal.is_administrator:
        raise NotPermitted("administrator_only")


def _validate(data: RuleInput) -> None:
    if data.patron_category and data.patron_category not in CATEGORIES:
        raise InvalidInput("invalid_category", field="patron_category")
    if data.item_type and data.item_type not in {kind.value for kind in ItemType}:
        raise InvalidInput("invalid_choice", field="item_type")
    if data.renew_from not in ("today", "due_date"):
        raise InvalidInput("invalid_choice", field="renew_from")
    if len(data.name) > 100:
        raise InvalidInput("name_too_long", field="name", limit=100)
    for name, (low, high) in LIMITS.items():
        value = getattr(data, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput("number_out_of_range", field=name, low=low, high=high)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    view = {key: row[key] for key in ("scope", "name", "patron_category", "item_type", "loanable", *LIMITS,
                                      "renew_from", "holds_allowed")}
    view["uuid"] = str(row["uuid"])
    view["branch_code"] = row.get("branch.code")
    view["is_network_rule"] = row["scope"] == NETWORK_SCOPE
    return view


async def list_rules() -> list[dict[str, Any]]:
    async with read_transaction():
        rows = await CirculationRule.select(*CirculationRule.all_columns(), CirculationRule.branch.code)
    views = [_view(row) for row in rows]
    # Most specific first, as the matching reads them.
    views.sort(key=lambda v: (-(4 * bool(v["branch_code"]) + 2 * bool(v["patron_category"])
                                + bool(v["item_type"])), v["scope"]))
    return views


async def save_rule(principal: Principal, data: RuleInput) -> str:
    """Create the rule for a scope, or change the one that exists (the scope is its identity)."""
    _require_administrator(principal)
    data.branch_code = (data.branch_code or "").strip().upper() or None
    data.patron_category = data.patron_category or None
    data.item_type = data.item_type or None
    data.name = (data.name or "").strip()
    _validate(data)
    scope = rules.scope_of(data.branch_code, data.patron_category, data.item_type)

    async def work() -> str:
        branch_id = None
        if data.branch_code:
            branch = await Branch.select(Branch.id).where(Branch.code == data.branch_code).first()
            if branch is None:
                raise NotFound("branch_not_found", field="branch_code", code=data.branch_code)
            branch_id = branch["id"]
        values = asdict(data)
        values.pop("branch_code")
        existing = await CirculationRule.select(CirculationRule.uuid).where(CirculationRule.scope == scope).first()
        if existing is not None:
            await CirculationRule.update({getattr(CirculationRule, k): v for k, v in values.items()}).where(
                CirculationRule.scope == scope)
            rule_uuid = str(existing["uuid"])
        else:
            rule_uuid = str(uuid_module.uuid4())
            await CirculationRule.insert(CirculationRule(uuid=rule_uuid, scope=scope, branch=branch_id, **values))
        await audit.record(principal.audit_name, "circulation_rule.saved", f"rule:{scope}", **{
            k: v for k, v in values.items() if k != "name"})
        return rule_uuid

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("rule_scope_taken", scope=scope) from None
        raise


async def remove_rule(principal: Principal, rule_uuid: str) -> None:
    _require_administrator(principal)
    try:
        rule_uuid = str(uuid_module.UUID(str(rule_uuid)))
    except ValueError:
        raise NotFound("rule_not_found") from None

    async def work() -> None:
        row = await CirculationRule.select(CirculationRule.id, CirculationRule.scope).where(
            CirculationRule.uuid == rule_uuid).first()
        if row is None:
            raise NotFound("rule_not_found")
        if row["scope"] == NETWORK_SCOPE:
            raise Conflict("network_rule_required")
        await CirculationRule.delete().where(CirculationRule.id == row["id"])
        await audit.record(principal.audit_name, "circulation_rule.removed", f"rule:{row['scope']}")

    await run_in_write_transaction(work)


async def ensure_network_rule() -> None:
    """Every database has the last-resort rule (loaded by `library demo` and at migrate time)."""
    await CirculationRule.insert(CirculationRule(uuid=str(uuid_module.uuid4()), scope=NETWORK_SCOPE,
                                                 name="Network default")).on_conflict(
        target=CirculationRule.scope, action="DO NOTHING")
