"""Circulation's part when a cataloguer merges two records of the same book
(library.catalog.duplicates): readers' holds follow the record, and a reader who held both keeps
one hold (library.loans.rules.hold_to_cancel). Registered with the catalogue, which does not
import circulation; library.loans.service imports this module, so every process that lends
has it registered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.catalog import duplicates
from library.errors import Conflict
from library.loans.rules import ACTIVE_HOLD, hold_to_cancel
from library.loans.tables import Hold


@duplicates.record_uses
async def active_holds(record_ids: list[int]) -> dict[int, dict[str, int]]:
    """Active holds of each record, shown beside its copies on the pairs' pages."""
    counts: dict[int, dict[str, int]] = {}
    for row in await Hold.select(Hold.record, Hold.id).where(
            Hold.record.is_in(record_ids) & Hold.status.is_in(list(ACTIVE_HOLD))):
        counts.setdefault(row["record"], {"holds": 0})["holds"] += 1
    return counts


@duplicates.merge_step("hold")
async def move_holds(kept: dict[str, Any], other: dict[str, Any], merged: duplicates.Merged, principal: Principal,
                     now: dt.datetime) -> None:
    """Holds follow the record. A reader may hold a record once at a time (a unique index): one
    with a hold on each keeps one of them (`hold_to_cancel`), the other is cancelled, with the
    reason in the audit trail; one with a copy set aside on each stops the merge."""
    columns = (Hold.id, Hold.uuid, Hold.patron, Hold.status, Hold.placed_at, Hold.patron.card_number)
    on_other = await Hold.select(*columns).where((Hold.record == other["id"]) & Hold.status.is_in(list(ACTIVE_HOLD)))
    patrons = [hold["patron"] for hold in on_other]
    on_kept = {hold["patron"]: hold for hold in await Hold.select(*columns).where(
        (Hold.record == kept["id"]) & Hold.status.is_in(list(ACTIVE_HOLD)) & Hold.patron.is_in(patrons or [-1]))}
    for hold in on_other:
        twin = on_kept.get(hold["patron"])
        if twin is None:
            continue
        going = hold_to_cancel(twin, hold)
        if going is None:
            raise Conflict("duplicate_holds_set_aside", card_number=hold["patron.card_number"])
        cancelled = twin if going == "kept" else hold
        await Hold.update({Hold.status: "cancelled", Hold.closed_at: now}).where(Hold.id == cancelled["id"])
        merged.holds_cancelled.append({"hold": str(cancelled["uuid"]), "card_number": hold["patron.card_number"]})
        await audit.record(principal.audit_name, "hold.cancelled", f"hold:{cancelled['uuid']}",
                           reason="records_merged", kept_hold=str((hold if going == "kept" else twin)["uuid"]),
                           record=str(kept["uuid"]))
    moved = await Hold.update({Hold.record: kept["id"]}).where(Hold.record == other["id"]).returning(Hold.id)
    merged.holds = len(moved)
