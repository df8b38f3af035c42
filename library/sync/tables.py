"""Branch sync: the change log, the branch's upload queue, and what the central node keeps.

Every write to a replicated table leaves a row in `sync_change` (database triggers, written
by hand in the migrations, so no code path — a bulk MARC import, a raw-SQL checkout — can
forget it). On the central node the log is the change feed; on a branch it is what waits
to go up. The branch's apply of the central node's changes does not log itself: it runs
with `sync_state.applying` set, which only its own transaction sees.
"""

from __future__ import annotations

from enum import Enum

from piccolo.columns import JSONB, UUID, Boolean, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Unique
from piccolo.table import Table

from library.branches.tables import Branch, _utc_now
from library.catalog.tables import Item


class SyncChange(Table):
    """One change to one replicated entity; `seq` orders them (the id, in commit order).

    `branches` names the branch ids the row touched before and after the change ("|2|5|"),
    so a copy that leaves a branch still reaches that branch's feed once more.
    """

    seq = Serial(primary_key=True)
    kind = Varchar(length=24, required=True)
    entity_uuid = Varchar(length=36, required=True)
    branches = Varchar(length=64, default="")


class SyncState(Table):
    """The one row of this node's sync state (id 1, made by the migration)."""

    applying = Boolean(default=False)
    cursor = Text(default="")
    last_attempt_at = Timestamptz(null=True, default=None)
    last_success_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    uploaded_through = Integer(default=0)


class SyncOutbox(Table):
    """A packaged upload transaction: frozen images of local changes, sent until acknowledged."""

    uuid = UUID(unique=True)
    seq_through = Integer(required=True)
    changes = Integer(default=0)
    payload = JSONB(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    attempts = Integer(default=0)
    acknowledged_at = Timestamptz(null=True, default=None)
    result = JSONB(default={})


class SyncCredential(Table):
    """A branch's credential on the central node: only its SHA-256 is kept."""

    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    secret_sha256 = Varchar(length=64, unique=True, required=True)
    created_at = Timestamptz(default=TimestamptzNow())
    created_by = Varchar(length=100, default="")
    revoked_at = Timestamptz(null=True, default=None)


class SyncApplied(Table):
    """An upload transaction the central node applied: the uuid makes a resend a no-op."""

    uuid = UUID(unique=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    applied_at = Timestamptz(default=TimestamptzNow())
    changes = Integer(default=0)
    result = JSONB(default={})


class SyncOrigin(Table):
    """Which branch created an entity the central node took from an upload.

    `alias_of`: the branch's record was the same book as one the central node already had
    (same ISBN); the branch's uuid is an alias of that record's, for ever.
    """

    kind = Varchar(length=24, required=True)
    entity_uuid = Varchar(length=36, unique=True, required=True)
    alias_of = Varchar(length=36, default="")
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)


class SyncWriter(Table):
    """The branch whose upload last wrote an entity on the central node, and the log row that
    write left: how a later upload tells the branch's own earlier change from a concurrent one."""

    entity_uuid = Varchar(length=36, unique=True, required=True)
    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    seq = Integer(required=True)


class ConflictState(str, Enum):
    open = "open"
    resolved = "resolved"


class SyncConflict(Table):
    """Something an upload asked for that a rule refused or changed, for staff to see."""

    uuid = UUID(unique=True)
    branch_code = Varchar(length=16, default="")
    kind = Varchar(length=24, required=True)
    entity_uuid = Varchar(length=36, default="")
    rule = Varchar(length=40, required=True)
    detail = JSONB(default={})
    upload = Varchar(length=36, default="")
    state = Varchar(length=16, choices=ConflictState, default=ConflictState.open, index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    resolved_at = Timestamptz(null=True, default=None)
    resolved_by = Varchar(length=100, default="")
    resolution = Text(default="")


class TransferStatus(str, Enum):
    requested = "requested"
    sent = "sent"
    received = "received"
    cancelled = "cancelled"


class Transfer(Table):
    """A rotation: the central library reassigns a copy to another branch.

    Requested by the central node (the copy's home branch changes at once, so a return
    anywhere routes it to its new home); the branch holding the copy sends it (the copy
    goes in transit); the receiving branch's check-in receives it.
    """

    uuid = UUID(unique=True)
    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.cascade)
    from_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    to_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    status = Varchar(length=16, choices=TransferStatus, default=TransferStatus.requested, index=True)
    batch = Varchar(length=100, default="")
    requested_at = Timestamptz(required=True)
    requested_by = Varchar(length=100, default="")
    sent_at = Timestamptz(null=True, default=None)
    received_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)


class SyncVault(Table):
    """The central node's copy of a branch's own rows (activities, registrations, reading logs,
    staff accounts): data that lives on no other node, kept here so a dead branch box can be
    rebuilt (`library recover-branch`). Never applied to the central node's live tables.

    `entity_key` is the row's uuid, or for a row without one the uuids of what it joins
    ("programme|patron"). Only the credential of `branch` writes or reads its rows.
    """

    branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.cascade)
    kind = Varchar(length=32, required=True)
    entity_key = Varchar(length=80, required=True)
    image = JSONB(default={})
    digest = Varchar(length=64, default="")
    received_at = Timestamptz(default=TimestamptzNow())

    sync_vault_unique = Unique([branch, kind, entity_key])


class SyncVaultSent(Table):
    """On a branch box: the digest of each own row as the central node acknowledged it, so a
    round sends only what changed (and which rows are gone) since the last acknowledged one."""

    kind = Varchar(length=32, required=True)
    entity_key = Varchar(length=80, required=True)
    digest = Varchar(length=64, required=True)

    sync_vault_sent_unique = Unique([kind, entity_key])
