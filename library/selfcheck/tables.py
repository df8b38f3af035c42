"""Kiosk accounts: the self-check machines allowed to speak SIP2 to this node, and failed logins."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import UUID, Boolean, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
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
