"""Kiosk accounts (SIP2 machines) and their failed logins; self-check page stations; daily tallies."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import UUID, Boolean, Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Unique
from piccolo.table import Table

from library.branches.tables import Branch, _utc_now


class KioskEncoding(str, Enum):
    utf_8 = "utf-8"
    # Many machines sold in China send GBK; GB18030 reads GBK and every other Chinese character.
    gb18030 = "gb18030"


class Kiosk(Table):
    """A self-check machine of one branch: what it logs in with, which messages it may send.

    `allowed_messages` holds request codes separated by commas ("11,09,17"); the login,
    status, resend and end-session messages are always allowed.
    """

    uuid = UUID(unique=True)
    login = Varchar(length=64, unique=True, required=True)
    password_hash = Varchar(length=255, required=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    location_code = Varchar(length=64, default="")
    allowed_messages = Varchar(length=100, default="")
    encoding = Varchar(length=16, choices=KioskEncoding, default=KioskEncoding.utf_8)
    # Screen messages for readers whose card does not say (a return needs no card).
    language = Varchar(length=8, default="zh_CN")
    # Whether a reader must give their PIN (AD) to borrow, renew, place holds or see their loans.
    patron_pin_required = Boolean(default=True)
    enabled = Boolean(default=True)
    created_by = Varchar(length=160, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class KioskLoginFailure(Table):
    """A wrong kiosk password, kept shortly: throttles guessing across server processes."""

    login = Varchar(length=64, required=True, index=True)
    address = Varchar(length=64, default="")
    at = Timestamptz(required=True, index=True)


class SelfCheckStation(Table):
    """A tablet by the door that runs the self-check page (/selfcheck) for one branch.

    Staff issue it from the tablet itself: the tablet keeps a random token in an HttpOnly
    cookie, and only the token's SHA-256 is stored here (the token is 256 random bits, so a
    fast hash is enough: nothing to guess from it). Revoking sets `revoked_at`; the page
    checks the station on every request, so a revoked tablet stops at its next tap.
    """

    uuid = UUID(unique=True)
    name = Varchar(length=64, required=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    token_hash = Varchar(length=64, unique=True, required=True)
    issued_by = Varchar(length=160, default="")
    issued_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)
    revoked_by = Varchar(length=160, default="")


class SelfCheckTally(Table):
    """How many checkouts, returns, renewals, refusals and errors one machine had on one day.

    One row per machine, branch-local day and kind, counted up with an upsert (`total = total + n`):
    the staff home reads a handful of rows, not the day's loans. `machine` is the kiosk's or
    the station's uuid (what its loans record as `staff:<uuid>`).
    """

    machine = Varchar(length=36, required=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    day = Date(required=True)
    kind = Varchar(length=16, required=True)
    total = Integer(default=0)

    selfcheck_tally_unique = Unique([machine, day, kind])
