"""The notice outbox and the reader's choices of which notices to receive.

`Notice` was made by the loans app's first migrations (table `notice`); the notices app took
it over with its data (library/notices/piccolo_migrations, the first migration).
"""

from __future__ import annotations

from piccolo.columns import UUID, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Unique
from piccolo.table import Table

from library.accounts.tables import Patron
from library.branches.tables import _utc_now


class Notice(Table):
    """The outbox: one message to a reader, written with the change that causes it, sent later.

    `key` makes queueing idempotent: the same reminder for the same loan and due date is
    queued once, however often the reminder job runs.
    """

    uuid = UUID(unique=True)
    key = Varchar(length=200, unique=True, required=True)
    patron = ForeignKey(references=Patron, null=True, on_delete=OnDelete.set_null)
    kind = Varchar(length=32, required=True)
    language = Varchar(length=8, default="zh_CN")
    to_address = Varchar(length=254, required=True)
    subject = Varchar(length=300, required=True)
    body = Text(required=True)
    created_at = Timestamptz(required=True)
    send_after = Timestamptz(required=True, index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")
    sent_at = Timestamptz(null=True, default=None, index=True)


class NoticeChoice(Table):
    """A reader's choice for one kind of notice; no row means the kind's default (receive it)."""

    patron = ForeignKey(references=Patron, null=False, on_delete=OnDelete.cascade)
    kind = Varchar(length=32, required=True)
    receive = Boolean(default=True)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    notice_choice_unique = Unique([patron, kind])
