"""Writing what came from the other node, by the written rules.

On the central node, an upload from branch B (one transaction, applied once: its uuid is
remembered in the same database transaction as its rows):
- **Records**: the central library is the authority for bibliographic data. A record the
  branch created is taken (and the branch may go on editing it); the same book catalogued
  on both sides (same ISBN or control number) becomes one record: the branch's uuid is an
  alias of the central one, its copies attach to the central record. A branch's edit of a
  record the central library made is not applied: it is listed as a conflict.
- **Copies**: the branch where a copy physically is decides its circulation state (status,
  current branch, due date): the branch the central node last saw holding it, or any branch
  while the copy is out on loan or travelling (it comes back wherever the reader returns
  it). Shelf, type and price follow the copy's home branch or the branch that made it.
  Anything else is a conflict ("the copy is on another branch's shelf").
- **Loans**: a new loan of a copy that already has another open loan — lent at two branches
  while both were offline — is not applied: both loans are recorded in a conflict for
  staff. A returned loan stays returned.
- **Readers**: a new card number that another reader has is a conflict; otherwise the
  newer edit (updated_at) wins.
- **Holds, transits, guardian links, transfers** are written as sent; the database's own
  constraints (one active hold per reader and record, ...) refuse what cannot be, as a conflict.
Policy and calendars never come up: they are the central library's.

On a branch, the central node's pages are written as they come, except entities this
branch changed and has not uploaded yet: the local change wins until the upload is
acknowledged, then the central node's answer comes down with the next page.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from library import db
from library.branches.tables import Branch
from library.errors import InvalidInput
from library.sync.entities import (KINDS, ORDER, UPLOADED, MalformedImage, is_refusal, check_image,
                                   delete_entity, images_of, local_ids, release, rollback_to, savepoint,
                                   write_images)
from library.sync import rules
from library.sync.tables import SyncApplied, SyncConflict, SyncOrigin

MAX_UPLOAD_CHANGES = 1000


# --- checking an upload before anything is written -----------------------------------------


def parse_upload(body: Any) -> tuple[str, list[dict[str, Any]]]:
    """(upload uuid, changes) or InvalidInput naming what is wrong; nothing is written before this passes."""
    if not isinstance(body, dict):
        raise InvalidInput("sync_payload", detail="the body must be an object")
    try:
        upload = str(uuid_module.UUID(str(body.get("uuid", ""))))
    except ValueError:
        raise InvalidInput("sync_payload", detail="uuid is not a UUID") from None
    changes = body.get("changes")
    if not isinstance(changes, list) or len(changes) > MAX_UPLOAD_CHANGES:
        raise InvalidInput("sync_payload", detail=f"changes must be a list of at most {MAX_UPLOAD_CHANGES}")
    checked = []
    for position, change in enumerate(changes):
        try:
            if not isinstance(change, dict):
                raise MalformedImage("a change must be an object")
            kind = change.get("kind")
            if kind not in UPLOADED:
                raise MalformedImage(f"kind {kind!r} cannot be uploaded")
            entity = str(uuid_module.UUID(str(change.get("uuid", ""))))
            image = change.get("image")
            if image is not None:
                check_image(KINDS[kind], image)
                if str(uuid_module.UUID(str(image["uuid"]))) != entity:
                    raise MalformedImage("the image's uuid differs from the change's")
            checked.append({"kind": kind, "uuid": entity, "image": image})
        except (MalformedImage, ValueError) as error:
            raise InvalidInput("sync_payload", detail=f"change {position + 1}: {error}") from None
    checked.sort(key=lambda change: ORDER[change["kind"]])  # stable: the branch's order within a kind
    return upload, checked


# --- central: applying an upload --------------------------------------------------------------


@dataclass
class Outcome:
    applied: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_kinds: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "conflicts": self.conflicts, "aliases": self.aliases,
                "alias_kinds": self.alias_kinds}


async def apply_upload(branch: dict[str, Any], upload: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply one upload exactly once; a resend gets the first answer back."""
    done = await SyncApplied.raw("SELECT result FROM sync_applied WHERE uuid = {}", upload)
    if done:
        return {**db.json_object(done[0]["result"]), "uuid": upload, "already_applied": True}

    async def work() -> dict[str, Any]:
        again = await SyncApplied.raw("SELECT result FROM sync_applied WHERE uuid = {}", upload)
        if again:
            return {**db.json_object(again[0]["result"]), "uuid": upload, "already_applied": True}
        outcome = Outcome()
        await _apply_changes(branch, upload, changes, outcome)
        await SyncApplied.insert(SyncApplied(uuid=upload, branch=branch["id"], changes=len(changes),
                                             result=outcome.as_json()))
        return {**outcome.as_json(), "uuid": upload, "already_applied": False}

    try:
        return await db.run_in_write_transaction(work)
    except Exception as error:  # noqa: BLE001 - a concurrent resend of the same upload won
        if not db.is_unique_violation(error):
            raise
        done = await SyncApplied.raw("SELECT result FROM sync_applied WHERE uuid = {}", upload)
        if not done:
            raise  # another unique violation, not a resend: the sender's error stays visible
        return {**db.json_object(done[0]["result"]), "uuid": upload, "already_applied": True}


async def _aliases() -> dict[str, str]:
    rows = await SyncOrigin.raw("SELECT entity_uuid, alias_of FROM sync_origin WHERE alias_of != ''")
    return {row["entity_uuid"]: row["alias_of"] for row in rows}


async def _origins(uuids: list[str]) -> dict[str, int]:
    if not uuids:
        return {}
    marks = ", ".join("{}" for _ in uuids)
    rows = await SyncOrigin.raw(f"SELECT entity_uuid, branch FROM sync_origin WHERE entity_uuid IN ({marks})", *uuids)
    return {row["entity_uuid"]: row["branch"] for row in rows}


async def _conflict(outcome: Outcome, branch: dict[str, Any], upload: str, kind: str, entity: str, rule: str,
                    detail: dict[str, Any], resolved: bool = False) -> None:
    conflict_uuid = str(uuid_module.uuid4())
    await SyncConflict.insert(SyncConflict(
        uuid=conflict_uuid, branch_code=branch["code"], kind=kind, entity_uuid=entity, rule=rule, detail=detail,
        upload=upload, state="resolved" if resolved else "open",
        resolved_at=dt.datetime.now(dt.timezone.utc) if resolved else None,
        resolved_by="sync" if resolved else "", resolution="merged automatically" if resolved else ""))
    outcome.conflicts.append({"uuid": conflict_uuid, "kind": kind, "entity": entity, "rule": rule})


async def _apply_changes(branch: dict[str, Any], upload: str, changes: list[dict[str, Any]], outcome: Outcome) -> None:
    aliases = await _aliases()
    origins = await _origins([change["uuid"] for change in changes])
    for change in changes:
        kind, entity, image = change["kind"], change["uuid"], change["image"]
        if entity in aliases and kind != "record":
            # a copy or reader the central node knows by another uuid: the branch hears of it
            # with the answer, but uploads packaged before that still use its own
            entity = aliases[entity]
            image = {**image, "uuid": entity} if image is not None else None
        await _HANDLERS[kind](branch, upload, entity, image, outcome, aliases, origins)


async def _alias(outcome: Outcome, aliases: dict[str, str], branch, upload, kind: str, mine: str, central: str,
                 detail: dict[str, Any]) -> None:
    """The branch's `mine` is the central node's `central`, for ever (same ISBN, barcode or card)."""
    aliases[mine] = central
    outcome.aliases[mine] = central
    outcome.alias_kinds[mine] = kind
    await _remember_origin(kind, mine, branch, alias_of=central)
    await _conflict(outcome, branch, upload, kind, mine, "merged_duplicate", {**detail, "into": central},
                    resolved=True)


async def _write_one(kind: str, image: dict[str, Any], outcome: Outcome, branch, upload, aliases) -> bool:
    written = await write_images(KINDS[kind], [image], aliases)
    if written.applied:
        outcome.applied += 1
        return True
    for entity, why in written.refused:
        await _refuse(outcome, branch, upload, kind, entity, "refused_by_database", {"why": why})
    return False


async def _remember_origin(kind: str, entity: str, branch: dict[str, Any], alias_of: str = "") -> None:
    await SyncOrigin.insert(SyncOrigin(kind=kind, entity_uuid=entity, branch=branch["id"], alias_of=alias_of))


async def _resend(kind: str, entity: str, branch: dict[str, Any]) -> None:
    """The branch's change was not taken: log the entity again for that branch, so its next
    page carries the central node's version and the branch stops showing its own."""
    if not db.is_sqlite():
        await Branch.raw("SELECT pg_advisory_xact_lock(747001)")  # seq order stays commit order
    await Branch.raw("INSERT INTO sync_change (kind, entity_uuid, branches) VALUES ({}, {}, {})",
                     kind, entity, f"|{int(branch['id'])}|")


async def _refuse(outcome: Outcome, branch, upload, kind: str, entity: str, rule: str, detail: dict[str, Any],
                  resolved: bool = False) -> None:
    await _conflict(outcome, branch, upload, kind, entity, rule, detail, resolved=resolved)
    if await local_ids(kind, {entity}):
        await _resend(kind, entity, branch)


async def _tombstone(kind, branch, upload, entity, outcome, origins) -> None:
    if kind in ("record", "item", "patron") and origins.get(entity) != branch["id"]:
        await _refuse(outcome, branch, upload, kind, entity, "central_authority", {"change": "delete"})
        return
    if kind in ("loan", "hold", "transit", "transfer"):
        column = {"loan": "branch", "hold": "pickup_branch", "transit": "from_branch", "transfer": "from_branch"}[kind]
        rows = await Branch.raw(f"SELECT {column} AS b FROM {KINDS[kind].table_name} WHERE uuid = {{}}", entity)
        if rows and rows[0]["b"] != branch["id"]:
            await _refuse(outcome, branch, upload, kind, entity, "not_this_branch", {"change": "delete"})
            return
    why = await delete_entity(KINDS[kind], entity)
    if why:
        await _conflict(outcome, branch, upload, kind, entity, "refused_by_database", {"why": why, "change": "delete"})
    else:
        outcome.applied += 1


async def _record(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return await _tombstone("record", branch, upload, entity, outcome, origins)
    existing = await images_of(KINDS["record"], [aliases.get(entity, entity)])
    if existing:
        if entity in aliases:
            return  # the branch edits its alias of a central record: the central record stands
        if origins.get(entity) == branch["id"]:
            await _write_one("record", image, outcome, branch, upload, aliases)
        else:
            await _refuse(outcome, branch, upload, "record", entity, "central_authority",
                          {"title": image.get("title", ""), "isbn13": image.get("isbn13")})
        return
    # ISBN only: a control number (001) is one system's own numbering, another system's 001
    # may be a different book
    keys = [(column, image.get(column)) for column in ("isbn13",) if image.get(column)]
    same_book = await Branch.raw(
        "SELECT uuid FROM record WHERE " + " OR ".join(f"{column} = {{}}" for column, _ in keys),
        *[value for _, value in keys]) if keys else []
    if same_book:
        await _alias(outcome, aliases, branch, upload, "record", entity, str(same_book[0]["uuid"]),
                     {"title": image.get("title", ""), "isbn13": image.get("isbn13")})
        return
    if await _write_one("record", image, outcome, branch, upload, aliases):
        await _remember_origin("record", entity, branch)
        origins[entity] = branch["id"]


async def _item(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return await _tombstone("item", branch, upload, entity, outcome, origins)
    current = (await images_of(KINDS["item"], [entity])).get(entity)
    if current is None:
        taken = await Branch.raw("SELECT uuid, home_branch, current_branch FROM item WHERE barcode = {}",
                                 image["barcode"])
        if taken and branch["id"] in (taken[0]["home_branch"], taken[0]["current_branch"]):
            # the branch has this copy from elsewhere (another system's export, say): the same copy
            central = str(taken[0]["uuid"])
            await _alias(outcome, aliases, branch, upload, "item", entity, central, {"barcode": image["barcode"]})
            return await _item(branch, upload, central, {**image, "uuid": central}, outcome, aliases, origins)
        if taken:
            await _conflict(outcome, branch, upload, "item", entity, "duplicate_barcode",
                            {"barcode": image["barcode"], "other": str(taken[0]["uuid"])})
            return
        if await _write_one("item", image, outcome, branch, upload, aliases):
            await _remember_origin("item", entity, branch)
            origins[entity] = branch["id"]
        return
    decision = rules.copy_change(current, image, branch["uuid"], origins.get(entity) == branch["id"])
    if decision.row is None:
        await _refuse(outcome, branch, upload, "item", entity, decision.refusal,
                      {"barcode": current["barcode"], "status": image["status"],
                       "central_status": current["status"], "central_branch": current["current_branch"]})
        return
    await _write_one("item", decision.row, outcome, branch, upload, aliases)
    if any(decision.row[key] != image[key] for key in ("home_branch", "record")):
        await _resend("item", entity, branch)


async def _loan(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return await _tombstone("loan", branch, upload, entity, outcome, origins)
    current = (await images_of(KINDS["loan"], [entity])).get(entity)
    if current is None and image["returned_at"] is None:
        item_ids = await local_ids("item", {image["item"]})
        if image["item"] in item_ids:
            other = await Branch.raw(
                "SELECT l.uuid, b.code AS branch, p.card_number FROM loan l JOIN branch b ON b.id = l.branch "
                "LEFT JOIN patron p ON p.id = l.patron WHERE l.item = {} AND l.returned_at IS NULL",
                item_ids[image["item"]])
            if other:
                patron = await Branch.raw("SELECT card_number FROM patron WHERE uuid = {}", image["patron"]) \
                    if image.get("patron") else []
                barcode = await Branch.raw("SELECT barcode FROM item WHERE id = {}", item_ids[image["item"]])
                await _conflict(outcome, branch, upload, "loan", entity, "lent_twice", {
                    "barcode": barcode[0]["barcode"],
                    "this_loan": {"uuid": entity, "branch": branch["code"],
                                  "card_number": patron[0]["card_number"] if patron else None,
                                  "checked_out_at": image["checked_out_at"], "due_on": image["due_on"]},
                    "other_loan": {"uuid": str(other[0]["uuid"]), "branch": other[0]["branch"],
                                   "card_number": other[0]["card_number"]},
                    "image": image})
                return
    item = None
    if current is not None and current["branch"] != branch["uuid"]:
        item = (await images_of(KINDS["item"], [current["item"]])).get(current["item"])
    decision = rules.loan_change(current, image, branch["uuid"], item)
    if decision.refusal:
        await _refuse(outcome, branch, upload, "loan", entity, decision.refusal,
                      {"lent_at": (current or image)["branch"], "returned_at": (current or {}).get("returned_at"),
                       "renewals": image["renewals"]}, resolved=decision.resolved)
    elif decision.row is not None:
        await _write_one("loan", decision.row, outcome, branch, upload, aliases)


async def _patron(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return await _tombstone("patron", branch, upload, entity, outcome, origins)
    current = (await images_of(KINDS["patron"], [entity])).get(entity)
    if current is None:
        taken = await Branch.raw("SELECT uuid, name FROM patron WHERE card_number = {}", image["card_number"])
        if taken and taken[0]["name"] == image["name"]:
            # one card, one reader: registered at both nodes before they synced
            central = str(taken[0]["uuid"])
            await _alias(outcome, aliases, branch, upload, "patron", entity, central,
                         {"card_number": image["card_number"]})
            return await _patron(branch, upload, central, {**image, "uuid": central}, outcome, aliases, origins)
        if taken:
            await _conflict(outcome, branch, upload, "patron", entity, "duplicate_card",
                            {"card_number": image["card_number"], "other": str(taken[0]["uuid"])})
            return
        if await _write_one("patron", image, outcome, branch, upload, aliases):
            await _remember_origin("patron", entity, branch)
        return
    decision = rules.reader_change(current, image)
    if decision.row is not None:
        await _write_one("patron", decision.row, outcome, branch, upload, aliases)
    else:
        await _resend("patron", entity, branch)  # the central edit is newer: the branch takes it


def _as_sent(kind: str):
    async def handler(branch, upload, entity, image, outcome, aliases, origins) -> None:
        if image is None:
            return await _tombstone(kind, branch, upload, entity, outcome, origins)
        await _write_one(kind, image, outcome, branch, upload, aliases)
    return handler


async def _transfer(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return
    current = (await images_of(KINDS["transfer"], [entity])).get(entity)
    if current is None or branch["uuid"] not in (current["from_branch"], current["to_branch"]):
        await _conflict(outcome, branch, upload, "transfer", entity, "not_this_branch", {})
        return
    merged = dict(current)
    merged.update({key: image[key] for key in ("status", "sent_at", "received_at", "updated_at")})
    await _write_one("transfer", merged, outcome, branch, upload, aliases)


async def _hold(branch, upload, entity, image, outcome, aliases, origins) -> None:
    if image is None:
        return await _tombstone("hold", branch, upload, entity, outcome, origins)
    current = (await images_of(KINDS["hold"], [entity])).get(entity)
    decision = rules.hold_change(current, image)
    if decision.row is None:
        await _refuse(outcome, branch, upload, "hold", entity, decision.refusal,
                      {"status": current["status"], "branch_status": image["status"]}, resolved=decision.resolved)
        return
    await _write_one("hold", decision.row, outcome, branch, upload, aliases)


_HANDLERS = {"record": _record, "item": _item, "loan": _loan, "patron": _patron,
             "guardian_link": _as_sent("guardian_link"), "hold": _hold, "transit": _as_sent("transit"),
             "transfer": _transfer}


# --- branch: applying the central node's pages ----------------------------------------------


async def pending_entities() -> set[tuple[str, str]]:
    """Entities this branch changed and the central node has not acknowledged yet."""
    pending = {(row["kind"], row["entity_uuid"])
               for row in await Branch.raw("SELECT DISTINCT kind, entity_uuid FROM sync_change")}
    for row in await Branch.raw("SELECT payload FROM sync_outbox WHERE acknowledged_at IS NULL"):
        for change in db.json_object(row["payload"]).get("changes", []):
            pending.add((change["kind"], change["uuid"]))
    return pending


async def ensure_state() -> None:
    """The migration makes the one state row; a database emptied by hand gets it back here."""
    await Branch.raw("INSERT INTO sync_state (id, applying, cursor, last_error, uploaded_through) "
                     "SELECT 1, {}, '', '', 0 WHERE NOT EXISTS (SELECT 1 FROM sync_state WHERE id = 1)", False)


async def apply_page(changes: list[dict[str, Any]], cursor: str, snapshot: bool = False) -> dict[str, int]:
    """Write one page of the feed and its cursor in one transaction (resuming never redoes a page).

    Written without savepoints first (they cost SQLite a copy of every page the bulk writes
    touch); if the database refuses a row, that transaction is rolled back and the page is
    written again with them, so the refused rows are named and the rest written.
    """
    try:
        return await _apply_page(changes, cursor, snapshot, guarded=False)
    except Exception as error:  # noqa: BLE001 - filtered right below
        if not is_refusal(error):
            raise
    return await _apply_page(changes, cursor, snapshot, guarded=True)


async def _apply_page(changes: list[dict[str, Any]], cursor: str, snapshot: bool, guarded: bool) -> dict[str, int]:
    async def work() -> dict[str, int]:
        await ensure_state()
        await Branch.raw("UPDATE sync_state SET applying = {} WHERE id = 1", True)
        counts = {"written": 0, "deleted": 0, "kept_local": 0, "refused": 0}
        # Only while the snapshot arrives: afterwards the same card or barcode under another uuid
        # is a conflict the central node has already named, not the same thing.
        for kind in NATURAL_KEYS if snapshot else ():
            await adopt_natural_keys(kind, [c["image"] for c in changes if c.get("kind") == kind and c.get("image")])
        pending = await pending_entities()
        by_kind: dict[str, list[dict[str, Any]]] = {}
        tombstones: list[tuple[str, str]] = []
        for change in changes:
            kind, entity, image = change.get("kind"), change.get("uuid"), change.get("image")
            if kind not in KINDS:
                continue
            if (kind, entity) in pending:
                counts["kept_local"] += 1
            elif image is None:
                tombstones.append((kind, entity))
            else:
                by_kind.setdefault(kind, []).append(image)
        for kind in sorted(by_kind, key=ORDER.__getitem__):
            written = await write_images(KINDS[kind], by_kind[kind], guarded=guarded)
            counts["written"] += len(written.applied)
            for entity, why in written.refused:
                counts["refused"] += 1
                await SyncConflict.insert(SyncConflict(
                    uuid=str(uuid_module.uuid4()), branch_code="", kind=kind, entity_uuid=entity,
                    rule="not_applied_here", detail={"why": why}))
        for kind, entity in sorted(tombstones, key=lambda t: -ORDER[t[0]]):
            if await delete_entity(KINDS[kind], entity) is None:
                counts["deleted"] += 1
        await Branch.raw("UPDATE sync_state SET applying = {}, cursor = {} WHERE id = 1", False, cursor)
        return counts

    return await db.run_in_write_transaction(work)


def _references_to(table_name: str) -> list[tuple[str, str]]:
    """(table, column) of every foreign key, in every app, that points at `table_name`."""
    from piccolo.columns import ForeignKey
    from piccolo.conf.apps import Finder

    found = []
    for table in Finder().get_table_classes():
        for column in table._meta.columns:
            if isinstance(column, ForeignKey) and \
                    column._foreign_key_meta.resolved_references._meta.tablename == table_name:
                found.append((table._meta.tablename, column._meta.db_column_name))
    return found


async def apply_aliases(aliases: dict[str, str], kinds: dict[str, str] | None = None) -> int:
    """The central node knows rows this branch made by another uuid (same ISBN, barcode or card):
    take the central uuid here too; if that row is already here, move everything that points
    at ours onto it and drop ours. Returns how many could not be merged (listed as conflicts)."""
    if not aliases:
        return 0

    async def work() -> int:
        await ensure_state()
        await Branch.raw("UPDATE sync_state SET applying = {} WHERE id = 1", True)
        failed = 0
        for mine, central in aliases.items():
            kind = (kinds or {}).get(mine, "record")
            if kind not in KINDS:
                continue
            table = KINDS[kind].table_name
            ids = await local_ids(kind, {mine, central})
            if mine not in ids:
                continue
            await savepoint("sync_alias")
            try:
                if central in ids:
                    for other, column in _references_to(table):
                        await Branch.raw(f'UPDATE {other} SET "{column}" = {{}} WHERE "{column}" = {{}}',
                                         ids[central], ids[mine])
                    await Branch.raw(f"DELETE FROM {table} WHERE id = {{}}", ids[mine])
                else:
                    await Branch.raw(f"UPDATE {table} SET uuid = {{}} WHERE id = {{}}", central, ids[mine])
                await Branch.raw("UPDATE sync_change SET entity_uuid = {} WHERE kind = {} AND entity_uuid = {}",
                                 central, kind, mine)
                await release("sync_alias")
            except Exception as error:  # noqa: BLE001 - one merge the database refuses stays listed
                if not is_refusal(error):
                    raise
                await rollback_to("sync_alias")
                failed += 1
                await SyncConflict.insert(SyncConflict(
                    uuid=str(uuid_module.uuid4()), branch_code="", kind=kind, entity_uuid=mine,
                    rule="merge_not_applied_here", detail={"into": central, "why": str(error)[:200]}))
        await Branch.raw("UPDATE sync_state SET applying = {} WHERE id = 1", False)
        return failed

    return await db.run_in_write_transaction(work)


# Natural keys: the same branch, rule, reader, copy or book, whatever uuid it was given.
NATURAL_KEYS = {"branch": ("code",), "circulation_rule": ("scope",), "patron": ("card_number",),
                "record": ("isbn13",), "item": ("barcode",)}


async def adopt_natural_keys(kind: str, images: list[dict[str, Any]]) -> int:
    """Before writing the central node's rows: a local row that is the same thing under another
    uuid (a branch loaded from another system's export, a demo branch) takes the central uuid."""
    columns = NATURAL_KEYS.get(kind)
    if not columns or not images:
        return 0
    table = KINDS[kind].table_name
    incoming = {image["uuid"] for image in images}
    by_uuid = {image["uuid"]: image for image in images}
    adopted = 0
    for column in columns:
        wanted = {image[column]: image["uuid"] for image in images if image.get(column)}
        if not wanted:
            continue
        keys = sorted(wanted)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ", ".join("{}" for _ in chunk)
            named = ", name" if kind == "patron" else ""
            rows = await Branch.raw(f'SELECT id, uuid, "{column}" AS natural{named} FROM {table} '
                                    f'WHERE "{column}" IN ({marks})', *chunk)
            for row in rows:
                local, central = str(row["uuid"]), wanted[row["natural"]]
                if local == central or local in incoming:
                    continue
                if kind == "patron" and row["name"] != by_uuid[central]["name"]:
                    continue  # one card number, two people: not the same reader
                if await local_ids(kind, {central}):
                    continue  # both are here: the write will say which one the database refuses
                await Branch.raw(f"UPDATE {table} SET uuid = {{}} WHERE id = {{}}", central, row["id"])
                await Branch.raw("UPDATE sync_change SET entity_uuid = {} WHERE kind = {} AND entity_uuid = {}",
                                 central, kind, local)
                adopted += 1
    return adopted
