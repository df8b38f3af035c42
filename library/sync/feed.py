"""The central node's change feed: what a branch needs, after its cursor, in pages.

What a branch gets (the choice, and why):
- every branch with its calendar, every circulation rule, every reader and guardian link:
  one card works everywhere, so a reader registered at the central library must be able to
  borrow at the branch while the link is down;
- the copies it owns or holds (home or current branch), copies travelling to or from it
  (transits, rotation transfers), their records, their open loans, and the holds it must
  serve (pickup there, or on a record it has copies of);
- a copy that leaves the branch is sent once more (the change log keeps the branches a row
  touched before and after), so the branch sees it go.

What a branch is not given (a branch box can be stolen): the PIN verifier, phone and e-mail
of a reader who has no business there. It gets them only for the readers who need them
there (`VERIFIER_HOLDERS`): registered there (home branch), who borrowed there within
LIBRARY_SYNC_VERIFIER_DAYS, and the guardians of either (a parent signs in to act for her
child). Lending at the desk needs only the card; every other reader's image comes with
those three fields empty.

A cursor is opaque to the branch. "" starts an initial sync: a snapshot, kind after kind in
id order, then the log from the sequence number the snapshot began at (changes made during
the snapshot come again; writing an image twice is harmless). Each page ends on a cursor
the branch stores with the page's rows, so an interrupted sync resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from library.branches.tables import Branch
from library.errors import InvalidInput
from library.sync.entities import FED, KINDS, ORDER, images_of, images_where

EVERYONE = ("branch", "circulation_rule", "patron", "guardian_link")
ACTIVE_HOLD = "('waiting', 'in_transit', 'ready')"
PAGE_LIMIT = 2000


def item_here(alias: str, branch_id: int) -> str:
    """A copy this branch owns, holds, or that travels to or from it (branch id is an int: safe to inline)."""
    b = int(branch_id)
    return (f"({alias}.home_branch = {b} OR {alias}.current_branch = {b} "
            f"OR EXISTS (SELECT 1 FROM transit tr WHERE tr.item = {alias}.id AND tr.received_at IS NULL "
            f"AND (tr.to_branch = {b} OR tr.from_branch = {b})) "
            f"OR EXISTS (SELECT 1 FROM transfer tf WHERE tf.item = {alias}.id AND tf.status IN ('requested', 'sent') "
            f"AND (tf.to_branch = {b} OR tf.from_branch = {b})))")


def changed_relevant(kind: str, branch_id: int) -> str:
    """SQL on alias t: a changed row of `kind` this branch must hear of, whatever its state now.

    Wider than `relevant`: a loan returned or a hold cancelled elsewhere is no longer one the
    branch keeps, but the branch has the open one and must see it close.
    """
    b = int(branch_id)
    if kind == "loan":
        return f"EXISTS (SELECT 1 FROM item i WHERE i.id = t.item AND {item_here('i', b)})"
    if kind == "hold":
        return (f"(t.pickup_branch = {b} OR EXISTS (SELECT 1 FROM item i WHERE i.record = t.record "
                f"AND {item_here('i', b)}))")
    if kind == "transit":
        return f"(t.from_branch = {b} OR t.to_branch = {b} OR EXISTS (SELECT 1 FROM item i WHERE i.id = t.item " \
               f"AND {item_here('i', b)}))"
    return relevant(kind, branch_id)


def relevant(kind: str, branch_id: int) -> str:
    """SQL on alias t: the rows of `kind` this branch keeps a copy of."""
    b = int(branch_id)
    if kind in EVERYONE:
        return "1 = 1"
    if kind == "record":
        return (f"(EXISTS (SELECT 1 FROM item i WHERE i.record = t.id AND {item_here('i', b)}) "
                f"OR EXISTS (SELECT 1 FROM hold h WHERE h.record = t.id AND h.pickup_branch = {b} "
                f"AND h.status IN {ACTIVE_HOLD}))")
    if kind == "item":
        return item_here("t", b)
    if kind == "loan":
        return f"(t.returned_at IS NULL AND EXISTS (SELECT 1 FROM item i WHERE i.id = t.item AND {item_here('i', b)}))"
    if kind == "hold":
        return (f"(t.status IN {ACTIVE_HOLD} AND (t.pickup_branch = {b} OR EXISTS (SELECT 1 FROM item i "
                f"WHERE i.record = t.record AND (i.home_branch = {b} OR i.current_branch = {b}))))")
    if kind == "transit":
        return f"(t.received_at IS NULL AND (t.from_branch = {b} OR t.to_branch = {b}))"
    if kind == "transfer":
        return f"(t.from_branch = {b} OR t.to_branch = {b})"
    raise ValueError(kind)


# A reader's fields a branch gets only for the readers it needs them for.
PRIVATE_FIELDS = ("pin_hash", "phone", "email")
VERIFIER_DAYS = 90


def verifier_holders(alias: str, branch_id: int) -> str:
    """SQL on a patron alias: the readers whose verifier branch `branch_id` holds. Two `{}`
    parameters, both the earliest checkout that still counts (branch id is an int: safe to inline)."""
    b = int(branch_id)
    recent = f"SELECT l.patron FROM loan l WHERE l.branch = {b} AND l.checked_out_at >= {{}}"
    return (f"({alias}.home_branch = {b} OR {alias}.id IN ({recent}) "
            f"OR {alias}.id IN (SELECT g.guardian FROM guardian_link g JOIN patron c ON c.id = g.child "
            f"WHERE c.home_branch = {b} OR c.id IN ({recent})))")


def verifier_since(now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(days=days)


async def holders_among(branch_id: int, uuids: list[str], since: dt.datetime) -> set[str]:
    """Which of these readers' verifiers the branch holds."""
    found: set[str] = set()
    condition = verifier_holders("t", branch_id)
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        marks = ", ".join("{}" for _ in chunk)
        # Raw SQL: the condition is shared with the central node's check of a PIN change, and
        # Piccolo's builder cannot say "IN (a sub-select over a join)".
        rows = await Branch.raw(f"SELECT t.uuid FROM patron t WHERE t.uuid IN ({marks}) AND {condition}",
                                *chunk, since, since)
        found.update(str(row["uuid"]) for row in rows)
    return found


async def withhold_secrets(branch: dict[str, Any], changes: list[dict[str, Any]], now: dt.datetime,
                           days: int = VERIFIER_DAYS) -> None:
    """Empty the private fields of every reader in `changes` the branch has no business with."""
    readers = [c for c in changes if c["kind"] == "patron" and c["image"] is not None]
    if not readers:
        return
    holders = await holders_among(branch["id"], [c["uuid"] for c in readers], verifier_since(now, days))
    for change in readers:
        if change["uuid"] not in holders:
            change["image"] = {**change["image"], **{name: "" for name in PRIVATE_FIELDS}}


@dataclass(frozen=True)
class Cursor:
    snapshot: bool
    tail_seq: int
    kind_index: int = 0
    last_id: int = 0

    def encode(self) -> str:
        if self.snapshot:
            return f"snapshot:{self.kind_index}:{self.last_id}:{self.tail_seq}"
        return f"log:{self.tail_seq}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """None means: start an initial sync."""
        if not text:
            return None
        try:
            parts = text.split(":")
            if parts[0] == "log" and len(parts) == 2:
                return cls(snapshot=False, tail_seq=_natural(parts[1]))
            if parts[0] == "snapshot" and len(parts) == 4:
                kind_index = _natural(parts[1])
                if kind_index > len(FED):
                    raise ValueError
                return cls(snapshot=True, kind_index=kind_index, last_id=_natural(parts[2]),
                           tail_seq=_natural(parts[3]))
        except ValueError:
            pass
        raise InvalidInput("sync_cursor", field="cursor")


def _natural(text: str) -> int:
    value = int(text)
    if value < 0 or value >= 2**63:
        raise ValueError
    return value


async def _max_seq() -> int:
    rows = await Branch.raw("SELECT MAX(seq) AS seq FROM sync_change")
    return int(rows[0]["seq"] or 0)


async def _count_snapshot(branch_id: int) -> int:
    total = 0
    for kind in FED:
        rows = await Branch.raw(f"SELECT COUNT(*) AS n FROM {KINDS[kind].table_name} t WHERE {relevant(kind, branch_id)}")
        total += int(rows[0]["n"])
    return total


async def changes(branch: dict[str, Any], cursor_text: str, limit: int = 500, now: dt.datetime | None = None,
                  verifier_days: int = VERIFIER_DAYS) -> dict[str, Any]:
    """One page of the feed for `branch` ({"id", "code", ...})."""
    limit = max(1, min(int(limit), PAGE_LIMIT))
    cursor = Cursor.decode(cursor_text)
    total = None
    if cursor is None:
        cursor = Cursor(snapshot=True, tail_seq=await _max_seq())
        total = await _count_snapshot(branch["id"])
    if cursor.snapshot:
        page = await _snapshot_page(branch, cursor, limit)
    else:
        page = await _log_page(branch, cursor, limit)
    if total is not None:
        page["snapshot_total"] = total
    await withhold_secrets(branch, page["changes"], now or dt.datetime.now(dt.timezone.utc), verifier_days)
    return page


async def _snapshot_page(branch: dict[str, Any], cursor: Cursor, limit: int) -> dict[str, Any]:
    names = list(FED)
    kind_index, last_id = cursor.kind_index, cursor.last_id
    out: list[dict[str, Any]] = []
    while kind_index < len(names) and len(out) < limit:
        kind = KINDS[names[kind_index]]
        wanted = limit - len(out)
        rows = await images_where(kind, f"t.id > {{}} AND {relevant(kind.name, branch['id'])} ORDER BY t.id "
                                        f"LIMIT {wanted}", last_id)
        out.extend({"kind": kind.name, "uuid": image["uuid"], "image": image} for _, image in rows)
        if len(rows) < wanted:
            kind_index, last_id = kind_index + 1, 0
        else:
            last_id = rows[-1][0]
    if kind_index >= len(names):  # the log since the snapshot began comes next
        next_cursor = Cursor(snapshot=False, tail_seq=cursor.tail_seq)
    else:
        next_cursor = Cursor(snapshot=True, tail_seq=cursor.tail_seq, kind_index=kind_index, last_id=last_id)
    return {"changes": out, "cursor": next_cursor.encode(), "more": True, "snapshot": True}


async def _log_page(branch: dict[str, Any], cursor: Cursor, limit: int) -> dict[str, Any]:
    rows = await Branch.raw("SELECT seq, kind, entity_uuid, branches FROM sync_change WHERE seq > {} "
                            f"ORDER BY seq LIMIT {int(limit)}", cursor.tail_seq)
    if not rows:
        return {"changes": [], "cursor": cursor.encode(), "more": False, "snapshot": False}
    marker = f"|{int(branch['id'])}|"
    touched: dict[str, dict[str, bool]] = {}  # kind -> uuid -> the log names this branch
    for row in rows:
        entities = touched.setdefault(row["kind"], {})
        entities[row["entity_uuid"]] = entities.get(row["entity_uuid"], False) or marker in (row["branches"] or "")
    out: list[dict[str, Any]] = []
    records_needed: set[str] = set()
    for kind_name in sorted(touched, key=lambda k: ORDER.get(k, 99)):
        if kind_name not in FED:
            continue
        kind = KINDS[kind_name]
        uuids = list(touched[kind_name])
        current = await images_of(kind, uuids)
        wanted = set(current) if kind_name in EVERYONE else await _relevant_uuids(kind_name, branch["id"],
                                                                                   list(current), changed=True)
        for entity in uuids:
            image = current.get(entity)
            if image is None:
                out.append({"kind": kind_name, "uuid": entity, "image": None})
            elif entity in wanted or touched[kind_name][entity]:
                out.append({"kind": kind_name, "uuid": entity, "image": image})
                if kind_name in ("item", "hold"):
                    records_needed.add(image["record"])
    # A copy that just became this branch's comes with what hangs on it: its open loan, its
    # journeys, the holds waiting on its record (and the record, which may be new here).
    sent_items = [c["image"] for c in out if c["kind"] == "item" and c["image"] is not None]
    if sent_items:
        have = {(c["kind"], c["uuid"]) for c in out}
        for kind_name, found in (await _hanging_on(sent_items)).items():
            for image in found:
                if (kind_name, image["uuid"]) not in have:
                    out.append({"kind": kind_name, "uuid": image["uuid"], "image": image})
                    have.add((kind_name, image["uuid"]))
                    if kind_name == "hold":
                        records_needed.add(image["record"])
        out.sort(key=lambda change: ORDER[change["kind"]])
    # A copy that just became this branch's may belong to a record the branch has never seen.
    records_needed -= {c["uuid"] for c in out if c["kind"] == "record"}
    if records_needed:
        extra = await images_of(KINDS["record"], sorted(records_needed))
        out = [{"kind": "record", "uuid": u, "image": image} for u, image in extra.items()] + out
        out.sort(key=lambda change: ORDER[change["kind"]])
    last = rows[-1]["seq"]
    return {"changes": out, "cursor": Cursor(snapshot=False, tail_seq=last).encode(),
            "more": len(rows) == limit, "snapshot": False}


async def _hanging_on(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Open loans, open transits and transfers of these copies, and active holds on their records."""
    item_uuids = sorted({image["uuid"] for image in items})
    record_uuids = sorted({image["record"] for image in items if image.get("record")})
    found: dict[str, list[dict[str, Any]]] = {}
    for kind_name, uuids, where in (
            ("loan", item_uuids, "t.returned_at IS NULL AND t.item IN (SELECT id FROM item WHERE uuid IN ({marks}))"),
            ("transit", item_uuids, "t.received_at IS NULL AND t.item IN (SELECT id FROM item WHERE uuid IN ({marks}))"),
            ("transfer", item_uuids, "t.status IN ('requested', 'sent') AND t.item IN "
                                     "(SELECT id FROM item WHERE uuid IN ({marks}))"),
            ("hold", record_uuids, f"t.status IN {ACTIVE_HOLD} AND t.record IN "
                                   "(SELECT id FROM record WHERE uuid IN ({marks}))")):
        for start in range(0, len(uuids), 500):
            chunk = uuids[start:start + 500]
            marks = ", ".join("{}" for _ in chunk)
            rows = await images_where(KINDS[kind_name], where.replace("{marks}", marks), *chunk)
            found.setdefault(kind_name, []).extend(image for _, image in rows)
    return found


async def _relevant_uuids(kind_name: str, branch_id: int, uuids: list[str], changed: bool = False) -> set[str]:
    found: set[str] = set()
    table = KINDS[kind_name].table_name
    condition = changed_relevant(kind_name, branch_id) if changed else relevant(kind_name, branch_id)
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        marks = ", ".join("{}" for _ in chunk)
        rows = await Branch.raw(f"SELECT t.uuid FROM {table} t WHERE t.uuid IN ({marks}) "
                                f"AND {condition}", *chunk)
        found.update(str(row["uuid"]) for row in rows)
    return found


async def compact_log(batch: int = 2000) -> int:
    """Drop log rows that a later row of the same entity makes redundant; how many were dropped.

    The feed sends an entity's current image, so only its newest row matters — but the
    branches its older rows named still need to hear of it, so they are kept on the newest.
    """
    from library import db

    dropped = 0
    while True:
        groups = await Branch.raw(
            "SELECT kind, entity_uuid, MAX(seq) AS last FROM sync_change GROUP BY kind, entity_uuid "
            f"HAVING COUNT(*) > 1 LIMIT {int(batch)}")
        if not groups:
            return dropped

        async def work() -> int:
            done = 0
            for group in groups:
                rows = await Branch.raw("SELECT seq, branches FROM sync_change WHERE kind = {} AND entity_uuid = {} "
                                        "AND seq <= {}", group["kind"], group["entity_uuid"], group["last"])
                named = sorted({part for row in rows for part in (row["branches"] or "").split("|") if part},
                               key=int)
                union = f"|{'|'.join(named)}|" if named else ""
                if len(union) > 64:
                    continue  # too many branches to name in one row: leave this entity's rows alone
                await Branch.raw("UPDATE sync_change SET branches = {} WHERE seq = {}", union, group["last"])
                deleted = await Branch.raw("DELETE FROM sync_change WHERE kind = {} AND entity_uuid = {} AND seq < {} "
                                           "RETURNING seq", group["kind"], group["entity_uuid"], group["last"])
                done += len(deleted)
            return done

        step = await db.run_in_write_transaction(work)
        dropped += step
        if step == 0:
            return dropped
