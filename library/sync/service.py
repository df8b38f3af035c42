"""Sync as staff and nodes see it: credentials, the state at a glance, conflicts, rotation."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import uuid as uuid_module
from collections import deque
from typing import Any

from piccolo.query.functions.aggregate import Count, Max, Sum

from library import audit, db
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog.tables import Item
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted, NotSignedIn, TooManyAttempts
from library.loans.tables import Transit
from library.settings import Settings
from library.sync.tables import (ConflictState, SyncApplied, SyncChange, SyncConflict, SyncCredential, SyncOutbox,
                                 SyncState, Transfer, TransferStatus)

CREDENTIAL_BYTES = 32


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _branch(code: str) -> dict[str, Any]:
    row = await Branch.select(Branch.id, Branch.uuid, Branch.code, Branch.name_zh, Branch.name_en).where(
        Branch.code == code).first()
    if row is None:
        raise NotFound("branch_not_found", code=code)
    return {**row, "uuid": str(row["uuid"])}


# --- credentials (central node) ------------------------------------------------------------


async def issue_credential(branch_code: str, issued_by: str) -> str:
    """A new credential for a branch node: shown once, only its hash is kept."""
    branch = await _branch(branch_code)
    secret = secrets.token_urlsafe(CREDENTIAL_BYTES)
    await SyncCredential.insert(SyncCredential(branch=branch["id"], secret_sha256=_sha256(secret),
                                               created_by=issued_by))
    await audit.record(issued_by, "sync.credential_issued", branch["code"])
    return f"{branch['code']}.{secret}"


async def revoke_credentials(branch_code: str, revoked_by: str) -> int:
    branch = await _branch(branch_code)
    rows = await SyncCredential.update({SyncCredential.revoked_at: dt.datetime.now(dt.timezone.utc)}).where(
        (SyncCredential.branch == branch["id"]) & SyncCredential.revoked_at.is_null()).returning(SyncCredential.id)
    await audit.record(revoked_by, "sync.credentials_revoked", branch["code"], count=len(rows))
    return len(rows)


async def branch_of_credential(authorization: str | None) -> dict[str, Any]:
    """The branch a request's `Authorization: Bearer CODE.secret` speaks for, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    code, dot, secret = token.strip().partition(".")
    if scheme.lower() != "bearer" or not dot or not code or not secret:
        raise NotSignedIn("sync_credential")
    row = await SyncCredential.select(
        SyncCredential.branch.id.as_alias("id"), SyncCredential.branch.uuid.as_alias("uuid"),
        SyncCredential.branch.code.as_alias("code")).where(
        (SyncCredential.secret_sha256 == _sha256(secret)) & SyncCredential.revoked_at.is_null()).first()
    if row is None or not hmac.compare_digest(row["code"], code):
        raise NotSignedIn("sync_credential")
    return {"id": row["id"], "uuid": str(row["uuid"]), "code": row["code"]}


class RequestBudget:
    """Sync requests per branch credential per minute, in this server process (a sliding minute).

    A broken or hostile branch box that loops on the feed or the uploads is slowed down
    before it costs the central node the other branches' service."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def take(self, key: str, now: dt.datetime) -> None:
        moment = now.timestamp()
        recent = self._seen.setdefault(key, deque())
        while recent and recent[0] <= moment - 60:
            recent.popleft()
        if len(recent) >= self.per_minute:
            raise TooManyAttempts("sync_throttled", retry_after=max(1, math.ceil(recent[0] + 60 - moment)))
        recent.append(moment)


def require_central(settings: Settings) -> None:
    if settings.node_role != "central":
        raise NotFound("sync_not_central")


# --- at a glance --------------------------------------------------------------------------


async def status(settings: Settings) -> dict[str, Any]:
    # A page view only reads: a missing state row (a database emptied by hand) reads as "never synced".
    state = await SyncState.select(SyncState.cursor, SyncState.last_attempt_at, SyncState.last_success_at,
                                   SyncState.last_error, SyncState.uploaded_through).where(SyncState.id == 1).first()
    if state is None:
        state = {"cursor": "", "last_attempt_at": None, "last_success_at": None, "last_error": "",
                 "uploaded_through": 0}
    waiting_changes = await SyncChange.count(distinct=[SyncChange.entity_uuid])
    outbox = await SyncOutbox.select(Count().as_alias("n"), Sum(SyncOutbox.changes).as_alias("changes")).where(
        SyncOutbox.acknowledged_at.is_null()).first()
    open_conflicts = await SyncConflict.count().where(SyncConflict.state == ConflictState.open)
    view: dict[str, Any] = {
        "role": settings.node_role,
        "branch_code": settings.branch_code,
        "central_url": settings.central_url,
        "configured": settings.node_role == "branch" and bool(settings.central_url),
        "cursor": state["cursor"],
        "initial_sync_done": state["cursor"].startswith("log:"),
        "last_attempt_at": state["last_attempt_at"],
        "last_success_at": state["last_success_at"],
        "last_error": state["last_error"],
        "waiting_changes": int(waiting_changes or 0) if settings.node_role == "branch" else 0,
        "waiting_uploads": int(outbox["n"] or 0),
        "waiting_upload_changes": int(outbox["changes"] or 0),
        "open_conflicts": int(open_conflicts or 0),
    }
    if settings.node_role == "central":
        log = await SyncChange.select(Max(SyncChange.seq).as_alias("s")).first()
        view["log_seq"] = int(log["s"] or 0)
        uploads = {row["code"]: row for row in await SyncApplied.select(
            SyncApplied.branch.code.as_alias("code"), Max(SyncApplied.applied_at).as_alias("last_upload_at"),
            Count().as_alias("uploads")).group_by(SyncApplied.branch.code)}
        branches = []
        for branch in await Branch.select(Branch.code).order_by(Branch.code):
            seen = uploads.get(branch["code"], {})
            last = seen.get("last_upload_at")
            if isinstance(last, str):  # SQLite gives an aggregate's timestamp back as text
                last = dt.datetime.fromisoformat(last)
            branches.append({"code": branch["code"], "last_upload_at": last, "uploads": seen.get("uploads", 0)})
        view["branches"] = branches
    return view


# --- conflicts ----------------------------------------------------------------------------


async def conflicts(state: str = "open", limit: int = 200) -> list[dict[str, Any]]:
    rows = await SyncConflict.select(
        SyncConflict.uuid, SyncConflict.branch_code, SyncConflict.kind, SyncConflict.entity_uuid, SyncConflict.rule,
        SyncConflict.detail, SyncConflict.upload, SyncConflict.state, SyncConflict.created_at,
        SyncConflict.resolved_at, SyncConflict.resolved_by, SyncConflict.resolution).where(
        SyncConflict.state == state).order_by(SyncConflict.created_at, ascending=False).limit(int(limit))
    return [{**row, "uuid": str(row["uuid"]), "detail": db.json_object(row["detail"])} for row in rows]


async def resolve_conflict(principal: Principal, conflict_uuid: str, resolution: str) -> None:
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    resolution = (resolution or "").strip()
    if not resolution:
        raise InvalidInput("required", field="resolution")
    if len(resolution) > 500:
        raise InvalidInput("too_long", field="resolution", limit=500)
    try:
        uuid_module.UUID(conflict_uuid)
    except ValueError:
        raise NotFound("conflict_not_found") from None
    rows = await SyncConflict.update({
        SyncConflict.state: ConflictState.resolved, SyncConflict.resolved_at: dt.datetime.now(dt.timezone.utc),
        SyncConflict.resolved_by: principal.name, SyncConflict.resolution: resolution,
    }).where((SyncConflict.uuid == conflict_uuid) & (SyncConflict.state == ConflictState.open)).returning(
        SyncConflict.id)
    if not rows:
        raise NotFound("conflict_not_found")
    await audit.record(principal.audit_name, "sync.conflict_resolved", conflict_uuid, resolution=resolution)


# --- rotation -----------------------------------------------------------------------------


async def request_transfers(principal: Principal, barcodes: list[str], to_branch_code: str, batch: str,
                            now: dt.datetime) -> list[dict[str, Any]]:
    """The central library reassigns copies to another branch, all or none.

    The copy's home changes now (a copy out on loan comes back to its new home wherever it
    is returned); the branch holding a copy on its shelf sees it in its "to send" list.
    """
    if not principal.is_administrator:
        raise NotPermitted("administrator_only")
    to_branch = await _branch(to_branch_code)
    cleaned = [b.strip().upper() for b in barcodes if b and b.strip()]
    if not cleaned:
        raise InvalidInput("required", field="barcodes")
    if len(set(cleaned)) != len(cleaned):
        repeated = next(b for b in cleaned if cleaned.count(b) > 1)
        raise InvalidInput("barcodes_repeated", field="barcodes", barcode=repeated)
    if len(batch) > 100:
        raise InvalidInput("too_long", field="batch", limit=100)

    async def work() -> list[dict[str, Any]]:
        made = []
        for barcode in cleaned:
            item = await Item.select(Item.id, Item.status, Item.current_branch,
                                     Item.current_branch.code.as_alias("code")).where(Item.barcode == barcode).first()
            if item is None:
                raise NotFound("item_not_found", field="barcodes", barcode=barcode)
            if item["status"] in ("withdrawn", "lost", "in_transit"):
                raise Conflict("transfer_copy_busy", field="barcodes", barcode=barcode, status=item["status"])
            if item["current_branch"] == to_branch["id"]:
                raise Conflict("transfer_same_branch", field="barcodes", barcode=barcode, code=to_branch["code"])
            if await Transfer.exists().where((Transfer.item == item["id"]) & Transfer.status.is_in(
                    [TransferStatus.requested, TransferStatus.sent])):
                raise Conflict("transfer_copy_busy", field="barcodes", barcode=barcode, status="requested")
            transfer_uuid = str(uuid_module.uuid4())
            await Transfer.insert(Transfer(uuid=transfer_uuid, item=item["id"], from_branch=item["current_branch"],
                                           to_branch=to_branch["id"], batch=batch.strip(), requested_at=now,
                                           requested_by=principal.name))
            await Item.update({Item.home_branch: to_branch["id"], Item.updated_at: now}).where(Item.id == item["id"])
            made.append({"uuid": transfer_uuid, "barcode": barcode, "from_branch": item["code"],
                         "to_branch": to_branch["code"]})
        await audit.record(principal.audit_name, "sync.transfers_requested", to_branch["code"],
                           count=len(made), batch=batch)
        return made

    return await db.run_in_write_transaction(work)


async def transfers(branch_code: str) -> dict[str, list[dict[str, Any]]]:
    """This branch's rotation at a glance: copies to send, copies on their way here."""
    branch = await _branch(branch_code)
    rows = await Transfer.select(
        Transfer.uuid, Transfer.status, Transfer.batch, Transfer.requested_at, Transfer.sent_at,
        Transfer.item.barcode.as_alias("barcode"), Transfer.item.status.as_alias("item_status"),
        Transfer.item.shelf_location.as_alias("shelf_location"), Transfer.item.record.title.as_alias("title"),
        Transfer.item.record.call_number.as_alias("call_number"), Transfer.from_branch.code.as_alias("from_code"),
        Transfer.to_branch.code.as_alias("to_code"), Transfer.from_branch, Transfer.to_branch,
    ).where(Transfer.status.is_in([TransferStatus.requested, TransferStatus.sent])
            & ((Transfer.from_branch == branch["id"]) | (Transfer.to_branch == branch["id"]))
            ).order_by(Transfer.requested_at).order_by(Transfer.item.barcode)
    views = [{**row, "uuid": str(row["uuid"])} for row in rows]
    return {
        "to_send": [v for v in views if v["from_branch"] == branch["id"] and v["status"] == "requested"],
        "on_the_way_out": [v for v in views if v["from_branch"] == branch["id"] and v["status"] == "sent"],
        "incoming": [v for v in views if v["to_branch"] == branch["id"]],
    }


async def send_transfers(principal: Principal, branch_code: str, transfer_uuids: list[str],
                         now: dt.datetime) -> int:
    """The branch packs the copies: each goes in transit to its new home (received by check-in there)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    branch = await _branch(branch_code)
    if not principal.all_branches and branch["id"] not in principal.branch_ids:
        raise NotPermitted("not_your_branch", code=branch["code"])
    wanted = []
    for value in transfer_uuids:
        try:
            wanted.append(str(uuid_module.UUID(str(value))))
        except ValueError:
            raise NotFound("transfer_not_found") from None
    if not wanted:
        raise InvalidInput("required", field="transfers")

    async def work() -> int:
        sent = 0
        for transfer_uuid in wanted:
            transfer = await Transfer.select(
                Transfer.id, Transfer.status, Transfer.item, Transfer.from_branch, Transfer.to_branch,
                Transfer.item.status.as_alias("item_status"), Transfer.item.barcode.as_alias("barcode"),
                Transfer.item.current_branch.as_alias("item_current_branch")).where(
                Transfer.uuid == transfer_uuid).first()
            if transfer is None or transfer["from_branch"] != branch["id"]:
                raise NotFound("transfer_not_found")
            if transfer["status"] != "requested":
                raise Conflict("transfer_state")
            if transfer["item_current_branch"] != branch["id"]:
                raise Conflict("transfer_copy_busy", barcode=transfer["barcode"], status=transfer["item_status"])
            if transfer["item_status"] != "available":
                raise Conflict("transfer_copy_busy", barcode=transfer["barcode"], status=transfer["item_status"])
            await Transfer.update({Transfer.status: TransferStatus.sent, Transfer.sent_at: now,
                                   Transfer.updated_at: now}).where(Transfer.id == transfer["id"])
            await Item.update({Item.status: "in_transit", Item.updated_at: now}).where(Item.id == transfer["item"])
            await Transit.insert(Transit(uuid=str(uuid_module.uuid4()), item=transfer["item"],
                                         from_branch=transfer["from_branch"], to_branch=transfer["to_branch"],
                                         sent_at=now, updated_at=now))
            sent += 1
        await audit.record(principal.audit_name, "sync.transfers_sent", branch["code"], count=sent)
        return sent

    return await db.run_in_write_transaction(work)
