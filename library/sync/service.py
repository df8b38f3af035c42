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

from library import db
from library.accounts.principal import Principal
from library import audit
from library.branches.tables import Branch
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted, NotSignedIn, TooManyAttempts
from library.settings import Settings
from library.sync.tables import SyncConflict, SyncCredential, Transfer

CREDENTIAL_BYTES = 32


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _branch(code: str) -> dict[str, Any]:
    rows = await Branch.raw("SELECT id, uuid, code, name_zh, name_en FROM branch WHERE code = {}", code)
    if not rows:
        raise NotFound("branch_not_found", code=code)
    row = rows[0]
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
    rows = await SyncCredential.raw(
        "UPDATE sync_credential SET revoked_at = {} WHERE branch = {} AND revoked_at IS NULL RETURNING id",
        dt.datetime.now(dt.timezone.utc), branch["id"])
    await audit.record(revoked_by, "sync.credentials_revoked", branch["code"], count=len(rows))
    return len(rows)


async def branch_of_credential(authorization: str | None) -> dict[str, Any]:
    """The branch a request's `Authorization: Bearer CODE.secret` speaks for, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    code, dot, secret = token.strip().partition(".")
    if scheme.lower() != "bearer" or not dot or not code or not secret:
        raise NotSignedIn("sync_credential")
    rows = await SyncCredential.raw(
        "SELECT c.secret_sha256, b.id, b.uuid, b.code FROM sync_credential c JOIN branch b ON b.id = c.branch "
        "WHERE c.secret_sha256 = {} AND c.revoked_at IS NULL", _sha256(secret))
    if not rows or not hmac.compare_digest(rows[0]["code"], code):
        raise NotSignedIn("sync_credential")
    row = rows[0]
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
    rows = await Branch.raw("SELECT cursor, last_attempt_at, last_success_at, last_error, uploaded_through "
                            "FROM sync_state WHERE id = 1")
    state = rows[0] if rows else {"cursor": "", "last_attempt_at": None, "last_success_at": None, "last_error": "",
                                  "uploaded_through": 0}
    waiting_changes = (await Branch.raw("SELECT COUNT(DISTINCT entity_uuid) AS n FROM sync_change"))[0]["n"]
    outbox = (await Branch.raw("SELECT COUNT(*) AS n, SUM(changes) AS changes FROM sync_outbox "
                               "WHERE acknowledged_at IS NULL"))[0]
    open_conflicts = (await Branch.raw("SELECT COUNT(*) AS n FROM sync_conflict WHERE state = 'open'"))[0]["n"]
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
        view["log_seq"] = int((await Branch.raw("SELECT MAX(seq) AS s FROM sync_change"))[0]["s"] or 0)
        branches = await Branch.raw(
            "SELECT b.code, MAX(a.applied_at) AS last_upload_at, COUNT(a.id) AS uploads FROM branch b "
            "LEFT JOIN sync_applied a ON a.branch = b.id GROUP BY b.code ORDER BY b.code")
        for row in branches:  # SQLite gives an aggregate's timestamp back as text
            if isinstance(row["last_upload_at"], str):
                row["last_upload_at"] = dt.datetime.fromisoformat(row["last_upload_at"])
        view["branches"] = branches
    return view


# --- conflicts ----------------------------------------------------------------------------


async def conflicts(state: str = "open", limit: int = 200) -> list[dict[str, Any]]:
    rows = await SyncConflict.raw(
        "SELECT uuid, branch_code, kind, entity_uuid, rule, detail, upload, state, created_at, resolved_at, "
        f"resolved_by, resolution FROM sync_conflict WHERE state = {{}} ORDER BY created_at DESC LIMIT {int(limit)}",
        state)
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
    rows = await SyncConflict.raw(
        "UPDATE sync_conflict SET state = 'resolved', resolved_at = {}, resolved_by = {}, resolution = {} "
        "WHERE uuid = {} AND state = 'open' RETURNING id", dt.datetime.now(dt.timezone.utc), principal.name,
        resolution, conflict_uuid)
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
            rows = await Branch.raw(
                "SELECT i.id, i.uuid, i.status, i.current_branch, b.code FROM item i "
                "JOIN branch b ON b.id = i.current_branch WHERE i.barcode = {}", barcode)
            if not rows:
                raise NotFound("item_not_found", field="barcodes", barcode=barcode)
            item = rows[0]
            if item["status"] in ("withdrawn", "lost", "in_transit"):
                raise Conflict("transfer_copy_busy", field="barcodes", barcode=barcode, status=item["status"])
            if item["current_branch"] == to_branch["id"]:
                raise Conflict("transfer_same_branch", field="barcodes", barcode=barcode, code=to_branch["code"])
            open_transfer = await Branch.raw("SELECT 1 FROM transfer WHERE item = {} AND status IN "
                                             "('requested', 'sent')", item["id"])
            if open_transfer:
                raise Conflict("transfer_copy_busy", field="barcodes", barcode=barcode, status="requested")
            transfer_uuid = str(uuid_module.uuid4())
            await Transfer.insert(Transfer(uuid=transfer_uuid, item=item["id"], from_branch=item["current_branch"],
                                           to_branch=to_branch["id"], batch=batch.strip(), requested_at=now,
                                           requested_by=principal.name))
            await Branch.raw("UPDATE item SET home_branch = {}, updated_at = {} WHERE id = {}",
                             to_branch["id"], now, item["id"])
            made.append({"uuid": transfer_uuid, "barcode": barcode, "from_branch": item["code"],
                         "to_branch": to_branch["code"]})
        await audit.record(principal.audit_name, "sync.transfers_requested", to_branch["code"],
                           count=len(made), batch=batch)
        return made

    return await db.run_in_write_transaction(work)


async def transfers(branch_code: str) -> dict[str, list[dict[str, Any]]]:
    """This branch's rotation at a glance: copies to send, copies on their way here."""
    branch = await _branch(branch_code)
    rows = await Branch.raw(
        "SELECT tf.uuid, tf.status, tf.batch, tf.requested_at, tf.sent_at, i.barcode, i.status AS item_status, "
        "i.shelf_location, r.title, r.call_number, fb.code AS from_code, tb.code AS to_code, "
        "tf.from_branch, tf.to_branch FROM transfer tf JOIN item i ON i.id = tf.item JOIN record r ON r.id = i.record "
        "JOIN branch fb ON fb.id = tf.from_branch JOIN branch tb ON tb.id = tf.to_branch "
        "WHERE tf.status IN ('requested', 'sent') AND (tf.from_branch = {} OR tf.to_branch = {}) "
        "ORDER BY tf.requested_at, i.barcode", branch["id"], branch["id"])
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
            rows = await Branch.raw(
                "SELECT tf.id, tf.status, tf.item, tf.from_branch, tf.to_branch, i.status AS item_status, i.barcode, i.current_branch AS item_current_branch "
                "FROM transfer tf JOIN item i ON i.id = tf.item WHERE tf.uuid = {}", transfer_uuid)
            if not rows or rows[0]["from_branch"] != branch["id"]:
                raise NotFound("transfer_not_found")
            transfer = rows[0]
            if transfer["status"] != "requested":
                raise Conflict("transfer_state")
            if transfer["item_current_branch"] != branch["id"]:
                raise Conflict("transfer_copy_busy", barcode=transfer["barcode"], status=transfer["item_status"])
            if transfer["item_status"] != "available":
                raise Conflict("transfer_copy_busy", barcode=transfer["barcode"], status=transfer["item_status"])
            await Branch.raw("UPDATE transfer SET status = 'sent', sent_at = {}, updated_at = {} WHERE id = {}",
                             now, now, transfer["id"])
            await Branch.raw("UPDATE item SET status = 'in_transit', updated_at = {} WHERE id = {}",
                             now, transfer["item"])
            await Branch.raw(
                "INSERT INTO transit (uuid, item, from_branch, to_branch, sent_at, updated_at) "
                "VALUES ({}, {}, {}, {}, {}, {})", str(uuid_module.uuid4()), transfer["item"],
                transfer["from_branch"], transfer["to_branch"], now, now)
            sent += 1
        await audit.record(principal.audit_name, "sync.transfers_sent", branch["code"], count=sent)
        return sent

    return await db.run_in_write_transaction(work)
