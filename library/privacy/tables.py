"""A reader's requests about their own data."""

from __future__ import annotations

from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.table import Table


class AccountClosure(Table):
    """A reader (or a guardian, for a child) asked to close the account; staff complete it at the
    desk once the loans are back. Keyed by the card number, not the reader's row: the row is
    erased when the closing is completed, and this is what is kept of it (who asked, when, who
    completed it), as the retention table says."""

    card_number = Varchar(length=32, unique=True, required=True)
    requested_at = Timestamptz(required=True)
    requested_by = Varchar(length=160, default="")
    note = Text(default="")
    completed_at = Timestamptz(null=True, default=None)
    completed_by = Varchar(length=160, default="")
