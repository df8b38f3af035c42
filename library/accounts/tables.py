from __future__ import annotations

from enum import Enum

from piccolo.columns import UUID, Boolean, Date, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from library.branches.tables import Branch, _utc_now


class PatronCategory(str, Enum):
    adult = "adult"
    child = "child"
    senior = "senior"


class StaffRole(str, Enum):
    librarian = "librarian"
    administrator = "administrator"
    # Helps at the desk, the self-check and activities; never sees readers' details (permissions.py).
    volunteer = "volunteer"


class Patron(Table):
    """A reader with a card; one card works at every branch of the network."""

    uuid = UUID(unique=True)
    card_number = Varchar(length=32, unique=True, required=True)
    name = Varchar(length=100, required=True)
    birth_date = Date(null=True, default=None)
    category = Varchar(length=16, choices=PatronCategory, default=PatronCategory.adult)
    home_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    phone = Varchar(length=32, default="")
    email = Varchar(length=254, default="")
    language = Varchar(length=8, default="zh_CN")
    expires_on = Date(required=True)
    # Not null means blocked; the reason is shown to staff and to the reader.
    block_reason = Text(null=True, default=None)
    pin_hash = Varchar(length=255, required=True)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class GuardianLink(Table):
    """A guardian may act for a child: see and renew their loans, register them for events."""

    uuid = UUID(unique=True)
    guardian = ForeignKey(references=Patron, null=False)
    child = ForeignKey(references=Patron, null=False)
    relationship = Varchar(length=32, default="")
    created_at = Timestamptz(default=TimestamptzNow())

    guardian_link_pair_unique = Unique([guardian, child])
    guardian_link_not_self_check = Check('"guardian" != "child"')


class PinChange(Table):
    """A PIN set for a reader: by whom and when (the reader themself, or staff at a desk).

    Also how a PIN set at a branch node reaches the central node: its own kind of upload
    (`pin_change`), checked against the branch's authority, never a reader's row overwritten.
    The row keeps no verifier: the upload carries the reader's verifier at the time it is
    packaged. `branch` is where it was set, as the central node knows it (empty: there).
    """

    uuid = UUID(unique=True)
    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    branch = ForeignKey(references=Branch, null=True, default=None, on_delete=OnDelete.set_null)
    set_by = Varchar(length=160, default="")
    set_at = Timestamptz(required=True)


class StaffMember(Table):
    uuid = UUID(unique=True)
    username = Varchar(length=64, unique=True, required=True)
    display_name = Varchar(length=100, required=True)
    role = Varchar(length=16, choices=StaffRole, default=StaffRole.librarian)
    # A network administrator of the central library works for every branch.
    all_branches = Boolean(default=False)
    language = Varchar(length=8, default="zh_CN")
    password_hash = Varchar(length=255, required=True)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class StaffBranch(Table):
    """The branches a staff member works for; their rights apply there only."""

    staff = ForeignKey(references=StaffMember, null=False)
    branch = ForeignKey(references=Branch, null=False)

    staff_branch_unique = Unique([staff, branch])


class SignInFailure(Table):
    """Failed sign-ins, kept shortly, to throttle guessing across server processes."""

    key = Varchar(length=128, required=True, index=True)
    at = Timestamptz(required=True, index=True)
