"""A branch's own rows kept on the central node, and a dead branch box rebuilt from them.

The feed carries the catalogue, copies, readers and loans both ways; a branch's activities,
sessions, registrations (with attendance), reading logs, rooms and staff accounts exist on
its box only. Every sync round the box sends those that changed since the central node last
acknowledged them, and the keys of those that are gone (`send_changes`). The central node
keeps them per branch in `sync_vault`, as images, never applied to its own tables; only the
credential of that branch writes or reads them (`keep`, `page`).

What changed is found by digest, not by triggers: the box compares each row's image with the
digest the central node acknowledged (`sync_vault_sent`). A branch holds a few thousand such
rows, so reading them all once a round costs little and a row written by any code path (a
raw UPDATE of attendance, a bulk import) cannot be missed.

`recover` on a new, empty box: an initial sync as any new node does, then the vault written
back into the local tables with the same uuids. Running it again writes the same rows again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx

from library import db
from library.errors import InvalidInput
from library.settings import Settings
from library.sync.entities import (VAULT_KINDS, Kind, MalformedImage, check_image, images_where, is_refusal,
                                   local_ids, release, resolve_refs, rollback_to, row_of, savepoint, upsert_sql)
from library.sync.tables import SyncVault, SyncVaultSent

CHUNK = 500  # rows per vault request
KEY_LENGTH = 80


def digest_of(image: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(image, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def key_of(kind: Kind, image: dict[str, Any]) -> str:
    return "|".join(str(image.get(column) or "") for column in kind.key)


# --- on the branch box ------------------------------------------------------------------------


async def local_images() -> dict[tuple[str, str], dict[str, Any]]:
    """Every own row of this box as (kind, key) -> image, read in one transaction (one moment)."""

    async def read() -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for kind in VAULT_KINDS.values():
            for _, image in await images_where(kind, "1 = 1"):
                found[(kind.name, key_of(kind, image))] = image
        return found

    async with db.read_transaction():
        return await read()


async def pending() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """What the central node has not acknowledged: rows new or changed, and keys of rows gone."""
    images = await local_images()
    sent = {(row["kind"], row["entity_key"]): row["digest"] for row in
            await SyncVaultSent.select(SyncVaultSent.kind, SyncVaultSent.entity_key, SyncVaultSent.digest)}
    put = []
    for (kind, key), image in images.items():
        digest = digest_of(image)
        if sent.get((kind, key)) != digest:
            put.append({"kind": kind, "key": key, "image": image, "digest": digest})
    gone = [{"kind": kind, "key": key} for (kind, key) in sent if (kind, key) not in images]
    return put, gone


async def _acknowledged(put: list[dict[str, Any]], gone: list[dict[str, str]]) -> None:
    async def work() -> None:
        for change in gone:
            await SyncVaultSent.delete().where((SyncVaultSent.kind == change["kind"])
                                               & (SyncVaultSent.entity_key == change["key"]))
        if put:
            await SyncVaultSent.insert(*[SyncVaultSent(kind=c["kind"], entity_key=c["key"], digest=c["digest"])
                                         for c in put]).on_conflict(
                target=(SyncVaultSent.kind, SyncVaultSent.entity_key), action="DO UPDATE",
                values=[SyncVaultSent.digest])

    await db.run_in_write_transaction(work)


async def send_changes(call: Callable[..., Any], client: httpx.AsyncClient, settings: Settings) -> int:
    """Send what the central node has not acknowledged, CHUNK rows a request; how many were sent.

    A row counts as kept only once the central node answered for it: a round cut off half-way
    sends the rest (and anything unanswered again) next round."""
    put, gone = await pending()
    changes = [("put", c) for c in put] + [("gone", c) for c in gone]
    for start in range(0, len(changes), CHUNK):
        chunk = changes[start:start + CHUNK]
        body_put = [{k: c[k] for k in ("kind", "key", "image")} for what, c in chunk if what == "put"]
        body_gone = [c for what, c in chunk if what == "gone"]
        await call(client, "POST", "/api/sync/vault",
                   json={"branch": settings.branch_code, "put": body_put, "gone": body_gone})
        await _acknowledged([c for what, c in chunk if what == "put"], body_gone)
    return len(changes)


# --- on the central node ----------------------------------------------------------------------


def parse_vault_upload(body: Any) -> tuple[list[tuple[Kind, str, dict[str, Any]]], list[tuple[str, str]]]:
    """The rows and keys of a vault upload, or InvalidInput naming the first thing wrong (nothing kept)."""
    if not isinstance(body, dict) or not isinstance(body.get("put", []), list) \
            or not isinstance(body.get("gone", []), list):
        raise InvalidInput("sync_payload", detail="a vault upload has lists put and gone")
    if len(body.get("put", [])) + len(body.get("gone", [])) > CHUNK * 2:
        raise InvalidInput("sync_payload", detail=f"at most {CHUNK * 2} rows in one vault upload")
    put, gone = [], []
    for change in body.get("put", []):
        kind, key = _kind_and_key(change)
        image = change.get("image")
        try:
            check_image(kind, image)
        except MalformedImage as error:
            raise InvalidInput("sync_payload", detail=str(error)) from None
        if key_of(kind, image) != key:
            raise InvalidInput("sync_payload", detail=f"{kind.name} {key}: the key is not the row's")
        put.append((kind, key, image))
    for change in body.get("gone", []):
        kind, key = _kind_and_key(change)
        gone.append((kind.name, key))
    # One row once (the last image sent for it): PostgreSQL refuses an upsert that meets a row twice.
    unique = {(kind.name, key): (kind, key, image) for kind, key, image in put}
    return list(unique.values()), sorted(set(gone))


def _kind_and_key(change: Any) -> tuple[Kind, str]:
    if not isinstance(change, dict) or change.get("kind") not in VAULT_KINDS:
        raise InvalidInput("sync_payload", detail="a vault row of an unknown kind")
    key = change.get("key")
    if not isinstance(key, str) or not key or len(key) > KEY_LENGTH:
        raise InvalidInput("sync_payload", detail="a vault row's key is text of at most 80 characters")
    return VAULT_KINDS[change["kind"]], key


async def keep(node: dict[str, Any], put: list[tuple[Kind, str, dict[str, Any]]], gone: list[tuple[str, str]],
               now: dt.datetime) -> dict[str, int]:
    """Keep a branch's rows in its vault, all or nothing; the branch is the credential's, never the body's."""

    async def work() -> None:
        for kind_name, key in gone:
            await SyncVault.delete().where((SyncVault.branch == node["id"]) & (SyncVault.kind == kind_name)
                                           & (SyncVault.entity_key == key))
        if put:
            await SyncVault.insert(*[SyncVault(branch=node["id"], kind=kind.name, entity_key=key, image=image,
                                               digest=digest_of(image), received_at=now)
                                     for kind, key, image in put]).on_conflict(
                target=(SyncVault.branch, SyncVault.kind, SyncVault.entity_key), action="DO UPDATE",
                values=[SyncVault.image, SyncVault.digest, SyncVault.received_at])

    await db.run_in_write_transaction(work)
    return {"kept": len(put), "dropped": len(gone)}


async def page(node: dict[str, Any], after: int, limit: int) -> dict[str, Any]:
    """One page of the credential's branch's vault, in id order after `after`."""
    rows = await SyncVault.select(SyncVault.id, SyncVault.kind, SyncVault.entity_key, SyncVault.image).where(
        (SyncVault.branch == node["id"]) & (SyncVault.id > after)).order_by(SyncVault.id).limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"rows": [{"kind": row["kind"], "key": row["entity_key"], "image": db.json_object(row["image"])}
                     for row in rows],
            "after": rows[-1]["id"] if rows else after, "more": more}


# --- recovering a dead box ----------------------------------------------------------------------


async def fetch_all(call: Callable[..., Any], client: httpx.AsyncClient, branch_code: str,
                    limit: int = 1000) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = await call(client, "GET", "/api/sync/vault",
                            params={"after": after, "limit": limit, "branch": branch_code})
        rows.extend(answer.get("rows") or [])
        if not answer.get("more"):
            return rows
        after = int(answer["after"])


async def restore(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the vault's rows into this box's tables with their uuids, in one transaction.

    A row whose reference this box lacks (a reader the feed has not brought) or that the
    database refuses (a staff username already taken here by another account) is skipped and
    named; the rest are written. A row the box had sent and the vault no longer holds (it was
    deleted after the backup this box was restored from) is deleted. Afterwards the box counts
    what came from the vault as acknowledged."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("kind") in VAULT_KINDS and isinstance(row.get("image"), dict):
            by_kind.setdefault(row["kind"], []).append(row["image"])
    sqlite = db.is_sqlite()
    written: dict[str, int] = {}
    skipped: list[tuple[str, str, str]] = []
    dropped: list[tuple[str, str]] = []
    vault_keys = {(row.get("kind"), row.get("key")) for row in rows}

    async def work() -> None:
        written.clear()
        skipped.clear()
        dropped.clear()
        # A box restored from a backup first (a USB disk) holds rows it had sent that were
        # deleted later: the central node acknowledged them once and no longer keeps them.
        sent = {(row["kind"], row["entity_key"]) for row in
                await SyncVaultSent.select(SyncVaultSent.kind, SyncVaultSent.entity_key)}
        for kind in reversed(list(VAULT_KINDS.values())):
            for (kind_name, key) in sorted(sent - vault_keys):
                if kind_name == kind.name:
                    await _delete_by_key(kind, key)
                    dropped.append((kind.name, key))
        for kind in VAULT_KINDS.values():
            images = by_kind.get(kind.name, [])
            if not images:
                continue
            ids = await resolve_refs(kind, images)
            sql = upsert_sql(kind)
            for image in images:
                values = row_of(kind, image, ids, sqlite)
                if isinstance(values, str):
                    skipped.append((kind.name, key_of(kind, image), values))
                    continue
                await savepoint("vault_row")
                try:
                    await db.executemany(sql, [values])
                    await release("vault_row")
                    written[kind.name] = written.get(kind.name, 0) + 1
                except Exception as error:  # noqa: BLE001 - a refused row is named, the rest go on
                    if not is_refusal(error):
                        raise
                    await rollback_to("vault_row")
                    skipped.append((kind.name, key_of(kind, image), str(error).splitlines()[0][:200]))

    await db.run_in_write_transaction(work)
    # What came from the vault is what the central node holds: not sent back. A row made on this
    # box before the recovery (its first staff account) still goes up with the next round.
    put, _ = await pending()
    await _acknowledged([c for c in put if (c["kind"], c["key"]) in vault_keys],
                        [{"kind": kind, "key": key} for kind, key in dropped])
    return {"written": written, "skipped": skipped, "dropped": dropped}


async def _delete_by_key(kind: Kind, key: str) -> None:
    # Raw SQL: the table is the kind's, chosen at run time (as entities.delete_entity does).
    if kind.key == ("uuid",):
        await SyncVault.raw(f"DELETE FROM {kind.table_name} WHERE uuid = {{}}", key)
        return
    # a row named by what it joins: the uuids of its references, in the key's order
    wheres, args = [], []
    for column, value in zip(kind.key, key.split("|")):
        found = await local_ids(kind.refs[column], {value})
        if value not in found:
            return  # what it joined is not here: neither is the row
        wheres.append(f'"{column}" = {{}}')
        args.append(found[value])
    await SyncVault.raw(f"DELETE FROM {kind.table_name} WHERE {' AND '.join(wheres)}", *args)


async def recover(settings: Settings, round_: Callable[..., Any], call: Callable[..., Any],
                  client: httpx.AsyncClient, progress: Callable[[str, int, int | None], None] | None = None
                  ) -> dict[str, Any]:
    """Rebuild this box: the initial sync, then the branch's own rows from the central node's vault."""
    if settings.node_role != "branch" or not settings.central_url or not settings.sync_credential:
        raise InvalidInput("sync_not_configured")
    report = await round_(settings, progress, client)
    rows = await fetch_all(call, client, settings.branch_code or "")
    restored = await restore(rows)
    return {"round": report, "vault_rows": len(rows), **restored}
