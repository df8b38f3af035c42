"""Request and response types of the circulation API, and the page context of a renewal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from library.errors import reason_views


def renewal_views(outcomes: list[Any]) -> list[dict[str, Any]]:
    """Renewal outcomes (loans.service.RenewalOutcome) as a page shows them, reasons in the reader's language."""
    return [{"loan": o.loan_uuid, "barcode": o.barcode, "title": o.title, "renewed": o.renewed, "due_on": o.due_on,
             "reasons": reason_views(o.reasons)} for o in outcomes]


class CheckoutIn(msgspec.Struct, forbid_unknown_fields=True):
    branch: str
    card_number: str
    barcode: str
    override_comment: str | None = None


class CheckoutOut(msgspec.Struct):
    loan: str
    barcode: str
    title: str
    due_on: dt.date
    rule: str
    overridden: list[str]


class CheckinIn(msgspec.Struct, forbid_unknown_fields=True):
    branch: str
    barcode: str


class CheckinOut(msgspec.Struct):
    barcode: str
    title: str
    was_on_loan: bool
    days_overdue: int
    fine_cents: int
    # shelve | transit_home | hold_shelf | hold_transit | still_in_transit
    route: str
    to_branch: str
    to_branch_name: str
    received_transit: bool
    hold_patron_card: str | None = None


class RenewIn(msgspec.Struct, forbid_unknown_fields=True):
    loans: list[str] = []
    # Renew every open loan of the signed-in reader and their children (or of `card_number`).
    all: bool = False
    card_number: str | None = None
    override_comment: str | None = None


class Reason(msgspec.Struct):
    code: str
    message: str
    overridable: bool


class RenewalOut(msgspec.Struct):
    loan: str
    barcode: str
    title: str
    renewed: bool
    due_on: dt.date
    reasons: list[Reason]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    record: str
    pickup_branch: str
    card_number: str | None = None


class HoldOut(msgspec.Struct):
    hold: str
    title: str
    pickup_branch: str
    position: int


class LoanOut(msgspec.Struct):
    loan: str
    barcode: str
    title: str
    record: str
    due_on: dt.date
    overdue_days: int
    renewals: int
    branch: str


class HoldViewOut(msgspec.Struct):
    hold: str
    title: str
    record: str
    status: str
    pickup_branch: str
    position: int | None
    expires_on: dt.date | None


class OverrideOut(msgspec.Struct):
    code: str
    comment: str | None
    by: str | None


class LoanDetailOut(msgspec.Struct):
    loan: str
    barcode: str
    title: str
    branch: str
    due_on: dt.date
    renewals: int
    item_type: str
    patron_category: str
    # The rule that set the loan's terms, and every rule that matches it now, most specific first.
    rule: str
    rules_considered: list[str]
    overrides: list[OverrideOut]
    returned_at: dt.datetime | None
    fine_cents: int


class ReaderLoansOut(msgspec.Struct):
    card_number: str
    name: str
    loans: list[LoanOut]
    holds: list[HoldViewOut]
