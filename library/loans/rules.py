"""Circulation decisions. Pure: plain values in, a decision with every reason out.

Which rule applies: the rules of the *lending* branch — where the desk (or the renewing
reader's original loan) is — matched on the reader's category and the copy's item type,
the most specific rule winning (branch outweighs category, category outweighs item type).
One network rule with no branch, category or type always exists as the last resort. The
lending branch was chosen over the copy's home branch because the desk that lends is the
one that answers for the due date and its calendar; a copy returned anywhere still goes
home afterwards.

A refusal lists every reason that applies, not only the first. Some reasons staff may
override with a written comment; none that would let a reader jump a hold queue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from library.branches.rules import BranchCalendar, PublicCalendar, next_open_day

ANY = "*"
# Reasons staff may set aside with a written comment. Holds, blocks and copies that are
# simply not on the shelf are never overridable.
OVERRIDABLE = frozenset({"card_expired", "loan_limit", "item_not_loanable", "renewal_limit", "too_overdue"})
LENDABLE_STATUSES = frozenset({"available", "in_processing"})
UNAVAILABLE_REASONS = {"on_loan": "item_on_loan", "in_transit": "item_in_transit", "withdrawn": "item_withdrawn"}
ACTIVE_HOLD = ("waiting", "in_transit", "ready")
SET_ASIDE = ("in_transit", "ready")  # a copy is travelling to the reader or waits on the hold shelf


@dataclass(frozen=True)
class Terms:
    """What a circulation rule sets, and which parts of the network it covers."""

    id: int
    scope: str
    branch_id: int | None = None
    patron_category: str | None = None
    item_type: str | None = None
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

    def specificity(self) -> int:
        return (4 if self.branch_id is not None else 0) + (2 if self.patron_category else 0) + (
            1 if self.item_type else 0)

    def matches(self, branch_id: int, patron_category: str, item_type: str) -> bool:
        return ((self.branch_id is None or self.branch_id == branch_id)
                and (not self.patron_category or self.patron_category == patron_category)
                and (not self.item_type or self.item_type == item_type))


def scope_of(branch_code: str | None, patron_category: str | None, item_type: str | None) -> str:
    return "|".join(part or ANY for part in (branch_code, patron_category, item_type))


@dataclass(frozen=True)
class ChosenRule:
    terms: Terms
    # The rules that matched, most specific first: staff see why this one won.
    considered: tuple[str, ...]


def choose_rule(rules: Iterable[Terms], branch_id: int, patron_category: str, item_type: str) -> ChosenRule | None:
    matching = sorted((rule for rule in rules if rule.matches(branch_id, patron_category, item_type)),
                      key=lambda rule: (-rule.specificity(), rule.scope))
    if not matching:
        return None
    return ChosenRule(matching[0], tuple(rule.scope for rule in matching))


@dataclass(frozen=True)
class Refusal:
    code: str
    params: dict = field(default_factory=dict)

    @property
    def overridable(self) -> bool:
        return self.code in OVERRIDABLE


@dataclass(frozen=True)
class PatronFacts:
    id: int
    category: str
    expires_on: dt.date
    block_reason: str | None
    open_loans: int = 0


@dataclass(frozen=True)
class ItemFacts:
    status: str
    item_type: str
    # The reader a copy is set aside for (on the hold shelf or travelling to it), if any.
    held_for_patron_id: int | None = None


def card_refusals(patron: PatronFacts, today: dt.date) -> list[Refusal]:
    refusals = []
    if patron.block_reason is not None:
        refusals.append(Refusal("card_blocked", {"reason": patron.block_reason}))
    if patron.expires_on < today:
        refusals.append(Refusal("card_expired", {"day": patron.expires_on.isoformat()}))
    return refusals


def checkout_refusals(patron: PatronFacts, item: ItemFacts, terms: Terms, today: dt.date) -> list[Refusal]:
    """Every reason this reader may not take this copy home today (empty: they may)."""
    refusals = card_refusals(patron, today)
    if patron.open_loans >= terms.max_loans:
        refusals.append(Refusal("loan_limit", {"limit": terms.max_loans}))
    if not terms.loanable:
        refusals.append(Refusal("item_not_loanable"))
    if item.held_for_patron_id is not None and item.held_for_patron_id != patron.id:
        refusals.append(Refusal("item_held_for_other"))
    elif item.status not in LENDABLE_STATUSES and item.held_for_patron_id is None:
        refusals.append(Refusal(UNAVAILABLE_REASONS.get(item.status, "item_unavailable")))
    return refusals


def blocking(refusals: Sequence[Refusal], override_comment: str | None) -> list[Refusal]:
    """The refusals that still stand: with a comment, staff set aside the overridable ones."""
    if override_comment and override_comment.strip():
        return [refusal for refusal in refusals if not refusal.overridable]
    return list(refusals)


def due_date(start: dt.date, days: int, calendar: BranchCalendar, public: PublicCalendar) -> dt.date:
    """`days` after `start`, moved forward to the branch's next open day.

    A branch with no open day within a year (closed for works) keeps the plain date:
    the copy can be returned at any other branch.
    """
    plain = start + dt.timedelta(days=days)
    return next_open_day(plain, calendar, public) or plain


@dataclass(frozen=True)
class LoanFacts:
    due_on: dt.date
    renewals: int


@dataclass(frozen=True)
class RenewalDecision:
    refusals: tuple[Refusal, ...]
    new_due_on: dt.date | None

    @property
    def allowed(self) -> bool:
        return not self.refusals


def overdue_days(due_on: dt.date, today: dt.date) -> int:
    return max(0, (today - due_on).days)


def renewal(loan: LoanFacts, patron: PatronFacts, terms: Terms, others_waiting: int, today: dt.date,
            calendar: BranchCalendar, public: PublicCalendar) -> RenewalDecision:
    """May this loan be renewed today, and until when. An early renewal never shortens a loan."""
    refusals = card_refusals(patron, today)
    if others_waiting > 0:
        refusals.append(Refusal("hold_waiting", {"count": others_waiting}))
    if loan.renewals >= terms.max_renewals:
        refusals.append(Refusal("renewal_limit", {"count": loan.renewals, "limit": terms.max_renewals}))
    late = overdue_days(loan.due_on, today)
    if late > terms.renewal_refused_after_overdue_days:
        refusals.append(Refusal("too_overdue", {"days": late, "limit": terms.renewal_refused_after_overdue_days}))
    if not terms.loanable:
        refusals.append(Refusal("item_not_loanable"))
    # From the old due date only while it is still ahead: an overdue loan renews from today,
    # so a renewed due date is never in the past.
    base = loan.due_on if terms.renew_from == "due_date" and loan.due_on >= today else today
    proposed = due_date(base, terms.renewal_days, calendar, public)
    new_due_on = max(proposed, loan.due_on)
    if new_due_on == loan.due_on:
        refusals.append(Refusal("renewal_not_needed", {"day": loan.due_on.isoformat()}))
    return RenewalDecision(tuple(refusals), new_due_on)


@dataclass(frozen=True)
class WaitingHold:
    id: int
    patron_id: int
    pickup_branch_id: int
    placed_at: dt.datetime


@dataclass(frozen=True)
class Route:
    """Where a returned copy goes: `shelve` here, `transit_home`, `hold_shelf` here, or `hold_transit`."""

    kind: str
    to_branch_id: int
    hold_id: int | None = None


def route_returned_copy(here_branch_id: int, home_branch_id: int, waiting: Iterable[WaitingHold],
                        holds_allowed: bool = True) -> Route:
    """A returned copy satisfies the oldest waiting hold on its record, first come first served;
    without one it goes back to its home branch's shelf (通借通还)."""
    if holds_allowed:
        queue = sorted(waiting, key=lambda hold: (hold.placed_at, hold.id))
        if queue:
            first = queue[0]
            if first.pickup_branch_id == here_branch_id:
                return Route("hold_shelf", here_branch_id, first.id)
            return Route("hold_transit", first.pickup_branch_id, first.id)
    if home_branch_id == here_branch_id:
        return Route("shelve", here_branch_id)
    return Route("transit_home", home_branch_id)


def hold_refusals(patron: PatronFacts, terms: Terms, today: dt.date, loanable_copies: int,
                  has_copy_on_loan: bool, already_holding: bool) -> list[Refusal]:
    refusals = card_refusals(patron, today)
    if not terms.holds_allowed or not terms.loanable:
        refusals.append(Refusal("holds_not_allowed"))
    if loanable_copies == 0:
        refusals.append(Refusal("no_copies_to_hold"))
    if has_copy_on_loan:
        refusals.append(Refusal("already_borrowed"))
    if already_holding:
        refusals.append(Refusal("hold_exists"))
    return refusals


def hold_shelf_expiry(ready_on: dt.date, terms: Terms, calendar: BranchCalendar, public: PublicCalendar) -> dt.date:
    """The last day a copy waits on the hold shelf: the policy's days, ending on an open day."""
    return due_date(ready_on, terms.hold_shelf_days - 1, calendar, public) if terms.hold_shelf_days > 1 else (
        next_open_day(ready_on, calendar, public) or ready_on)


def fine_cents(due_on: dt.date, returned_on: dt.date, terms: Terms) -> int:
    return overdue_days(due_on, returned_on) * terms.fine_cents_per_day


def anonymise_before(today: dt.date, days: int) -> dt.date:
    """Returned loans older than this are anonymised (unless the reader keeps a history)."""
    return today - dt.timedelta(days=days)


# --- two records merged into one (library.loans.record_merge) ---------------------------------


def hold_to_cancel(on_kept: dict[str, Any], on_other: dict[str, Any]) -> str | None:
    """One reader's active holds on both records, which become one: which goes ("kept": the one on
    the kept record, "other"), or None when a copy is set aside for each and neither can simply go.

    The hold with a copy already set aside for the reader stays (cancelling it would strand the
    copy on the way or on the shelf); otherwise the earlier one, which keeps the reader's place in
    the queue."""
    kept_aside, other_aside = on_kept["status"] in SET_ASIDE, on_other["status"] in SET_ASIDE
    if kept_aside and other_aside:
        return None
    if kept_aside != other_aside:
        return "other" if kept_aside else "kept"
    return "kept" if _instant(on_other["placed_at"]) < _instant(on_kept["placed_at"]) else "other"


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
