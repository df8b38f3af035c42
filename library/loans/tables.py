"""Circulation: the rules that set loan terms, loans, holds and transits.

The invariants concurrency could break are the database's: one open loan per copy and
one active hold per copy are partial unique indexes (written by hand in the migrations,
as Piccolo has no partial index); a reader holds a record at most once at a time.
"""

from __future__ import annotations

from enum import Enum

from piccolo.columns import JSONB, UUID, Boolean, Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from library.accounts.tables import Patron
from library.branches.tables import Branch, _utc_now
from library.catalog.tables import Item, Record


class RenewFrom(str, Enum):
    today = "today"
    due_date = "due_date"


class HoldStatus(str, Enum):
    waiting = "waiting"
    in_transit = "in_transit"
    ready = "ready"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    expired = "expired"


class CirculationRule(Table):
    """Loan terms for branch × reader category × item type; an empty part matches any.

    `scope` is the three parts joined ("ZX|child|*"): unique, so two rules never tie.
    """

    uuid = UUID(unique=True)
    scope = Varchar(length=80, unique=True, required=True)
    branch = ForeignKey(references=Branch, null=True, on_delete=OnDelete.cascade)
    patron_category = Varchar(length=16, null=True, default=None)
    item_type = Varchar(length=24, null=True, default=None)
    name = Varchar(length=100, default="")
    loanable = Boolean(default=True)
    loan_days = Integer(default=28)
    max_loans = Integer(default=10)
    renewal_days = Integer(default=28)
    max_renewals = Integer(default=2)
    renew_from = Varchar(length=16, choices=RenewFrom, default=RenewFrom.today)
    holds_allowed = Boolean(default=True)
    hold_shelf_days = Integer(default=7)
    # Renewal is refused once a loan is this many days overdue (the book should come back).
    renewal_refused_after_overdue_days = Integer(default=30)
    fine_cents_per_day = Integer(default=0)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    circulation_rule_terms_check = Check(
        '"loan_days" >= 1 AND "loan_days" <= 365 AND "max_loans" >= 0 AND "renewal_days" >= 1 '
        'AND "renewal_days" <= 365 AND "max_renewals" >= 0 AND "hold_shelf_days" >= 1 '
        'AND "renewal_refused_after_overdue_days" >= 0 AND "fine_cents_per_day" >= 0'
    )


class Loan(Table):
    """A copy lent to a reader; kept after return (anonymised later unless the reader keeps a history)."""

    uuid = UUID(unique=True)
    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.restrict)
    # Null once an old, returned loan has been anonymised.
    patron = ForeignKey(references=Patron, null=True, on_delete=OnDelete.set_null)
    # Kept through anonymisation for statistics (loans to children, to seniors).
    patron_category = Varchar(length=16, default="adult")
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    rule = ForeignKey(references=CirculationRule, null=True, on_delete=OnDelete.set_null)
    rule_scope = Varchar(length=80, default="")
    checked_out_at = Timestamptz(required=True)
    due_on = Date(required=True)
    # The end of due_on in the lending branch's time zone, in UTC.
    due_at = Timestamptz(required=True, index=True)
    renewals = Integer(default=0)
    last_renewed_at = Timestamptz(null=True, default=None)
    returned_at = Timestamptz(null=True, default=None)
    returned_branch = ForeignKey(references=Branch, null=True, on_delete=OnDelete.restrict)
    days_overdue_at_return = Integer(default=0)
    fine_cents = Integer(default=0)
    # Staff overrides: which refusals were overridden, by whom and why.
    overrides = JSONB(default=[])
    created_by = Varchar(length=160, default="")
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    loan_renewals_check = Check('"renewals" >= 0')


class Hold(Table):
    """A reader waiting for any copy of a record, to collect at a pickup branch."""

    uuid = UUID(unique=True)
    record = ForeignKey(references=Record, null=False, on_delete=OnDelete.cascade)
    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    pickup_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    status = Varchar(length=16, choices=HoldStatus, default=HoldStatus.waiting, index=True)
    placed_at = Timestamptz(required=True)
    # The copy set aside for this hold (in transit or on the hold shelf).
    item = ForeignKey(references=Item, null=True, on_delete=OnDelete.set_null)
    ready_at = Timestamptz(null=True, default=None)
    # The last day the copy waits on the hold shelf.
    expires_on = Date(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    created_by = Varchar(length=160, default="")
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class Transit(Table):
    """A copy travelling between branches: home after a return elsewhere, or to a hold's pickup branch."""

    uuid = UUID(unique=True)
    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.cascade)
    from_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    to_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    hold = ForeignKey(references=Hold, null=True, on_delete=OnDelete.set_null)
    sent_at = Timestamptz(required=True)
    received_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class ReadingHistoryChoice(Table):
    """A reader who opts in keeps their returned loans; everyone else's are anonymised."""

    patron = ForeignKey(references=Patron, null=False, unique=True, on_delete=OnDelete.cascade)
    keep_history = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

