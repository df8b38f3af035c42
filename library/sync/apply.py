"""Writing what came from the other node, by the written rules.

On the central node, an upload from branch B (one transaction, applied once: its uuid is
remembered in the same database transaction as its rows) is taken change by change, each
checked against what B is entitled to change: the authority table and the rule on time are
at the top of `library/sync/rules.py` (and in docs/sync.md). A change B may not make is
not applied: it is recorded as a conflict with what B asked for, the central version of
the entity goes back to B with its next page, and the rest of the upload still applies.
Besides the authority:
- **Records**: the central library is the authority for bibliographic data. A record the
  branch created is taken (and the branch may go on editing it). A new one is matched by the
  catalogue's match points (library.catalog.matching): the same book catalogued on both sides
  (by default the same ISBN and title) becomes one record — the branch's uuid is an alias of
  the central one, its copies attach to the central record; a record that only shares an ISBN
  (or 001, or title, author and year) with one here is taken as a record of its own and the
  pair is flagged as a possible duplicate for the central library's cataloguers, never merged
  blindly. A record a librarian merges into another is an alias of it from then on.
- **Copies, readers**: a new copy whose barcode the central node has at that branch, a new
  reader whose card number and name it has, is the same one (an alias); another copy's
  barcode, another reader's card number is a conflict.
- **Loans**: a new loan of a copy that already has another open loan — lent at two branches
  while both were offline — is not applied: both loans are recorded in a conflict for
  staff. A returned loan stays returned.
- **Holds**: a hold closed centrally stays closed. The database's own constraints (one
  active hold per reader and record, ...) refuse what cannot be, as a conflict.
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

from library import audit, db
from library.accounts.principal import Principal
from library.accounts.tables import GuardianLink, Patron
from library.branches.tables import Branch
from library.catalog import duplicates, matching
from library.catalog.tables import Record
from library.errors import InvalidInput
from library.loans.tables import Transit
from library.sync import feed, rules
from library.sync.entities import (KINDS, ORDER, UPLOADED, MalformedImage, is_refusal, check_image,
                                   delete_entity, images_of, local_ids, release, rollback_to, savepoint,
                                   write_images)
from library.sync.tables import SyncApplied, SyncConflict, SyncOrigin, SyncWriter

MAX_UPLOAD_CHANGES = 1000


# --- checking an upload before anything is written -----------------------------------------


@dataclass(frozen=True)
class UploadClock:
    """What an upload says of time: how far into the central node's log the branch had read when
    it packaged the upload (`seen_through`), and the branch's clock when it sent it."""

    seen_through: int = 0
    sent_at: dt.datetime | None = None


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


def parse_upload_clock(body: Any) -> UploadClock:
    """The upload's `seen_through` (a log position) and `sent_at` (an instant with its zone), both optional."""
    if not isinstance(body, dict):
        raise InvalidInput("sync_payload", detail="the body must be an object")
    seen = body.get("seen_through", 0)
    if isinstance(seen, bool) or not isinstance(seen, int) or not 0 <= seen < 2**63:
        raise InvalidInput("sync_payload", detail="seen_through must be a log position (a whole number)")
    sent_at = None
    if body.get("sent_at") is not None:
        try:
            sent_at = dt.datetime.fromisoformat(str(body["sent_at"]))
        except ValueError:
            sent_at = None
        if sent_at is None or sent_at.tzinfo is None:
            raise InvalidInput("sync_payload", detail="sent_at must be an ISO instant with its time zone")
    return UploadClock(seen_through=seen, sent_at=sent_at)


# --- central: applying an upload --------------------------------------------------------------


@dataclass
class Outcome:
    applied: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_kinds: dict[str, str] = field(default_factory=dict)
    clock_ahead_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "conflicts": self.conflicts, "aliases": self.aliases,
                "alias_kinds": self.alias_kinds, "clock_ahead_seconds": round(self.clock_ahead_seconds, 3)}


@dataclass
class Context:
    """One upload being applied: who sent it, what it said of time, and what was decided so far."""

    branch: dict[str, Any]  # id, uuid, code of the uploading branch
    upload: str
    clock: UploadClock
    now: dt.datetime  # the central node's clock
    skew: dt.timedelta  # how far ahead of `now` a branch's timestamp may be
    verifier_days: int
    outcome: Outcome = field(default_factory=Outcome)
    aliases: dict[str, str] = field(default_factory=dict)
    origins: dict[str, int] = field(default_factory=dict)

    @property
    def branch_uuid(self) -> str:
        return self.branch["uuid"]


async def apply_upload(branch: dict[str, Any], upload: str, changes: list[dict[str, Any]],
                       clock: UploadClock | None = None, now: dt.datetime | None = None,
                       skew_seconds: int = 300, verifier_days: int = 90) -> dict[str, Any]:
    """Apply one upload exactly once; a resend gets the first answer back."""
    done = await SyncApplied.raw("SELECT result FROM sync_applied WHERE uuid = {}", upload)
    if done:
        return {**db.json_object(done[0]["result"]), "uuid": upload, "already_applied": True}

    async def work() -> dict[str, Any]:
        again = await SyncApplied.raw("SELECT result FROM sync_applied WHERE uuid = {}", upload)
        if again:
            return {**db.json_object(again[0]["result"]), "uuid": upload, "already_applied": True}
        context = Context(branch=branch, upload=upload, clock=clock or UploadClock(),
                          now=now or dt.datetime.now(dt.timezone.utc), skew=dt.timedelta(seconds=skew_seconds),
                          verifier_days=verifier_days)
        await _apply_changes(context, changes)
        outcome = context.outcome
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


async def _conflict(ctx: Context, kind: str, entity: str, rule: str, detail: dict[str, Any],
                    resolved: bool = False) -> None:
    conflict_uuid = str(uuid_module.uuid4())
    await SyncConflict.insert(SyncConflict(
        uuid=conflict_uuid, branch_code=ctx.branch["code"], kind=kind, entity_uuid=entity, rule=rule, detail=detail,
        upload=ctx.upload, state="resolved" if resolved else "open",
        resolved_at=ctx.now if resolved else None,
        resolved_by="sync" if resolved else "", resolution="merged automatically" if resolved else ""))
    # The branch records the same conflict from the answer (staff see it on both nodes); what
    # it uploaded it has already, so the answer carries the detail without the images.
    shown = {key: value for key, value in detail.items() if key != "image"}
    ctx.outcome.conflicts.append({"uuid": conflict_uuid, "kind": kind, "entity": entity, "rule": rule,
                                  "resolved": resolved, "detail": shown})


async def _apply_changes(ctx: Context, changes: list[dict[str, Any]]) -> None:
    ctx.aliases = await _aliases()
    ctx.origins = await _origins([change["uuid"] for change in changes])
    latest = ctx.now + ctx.skew
    for change in changes:
        kind, entity, image = change["kind"], change["uuid"], change["image"]
        if entity in ctx.aliases and kind != "record":
            # a copy or reader the central node knows by another uuid: the branch hears of it
            # with the answer, but uploads packaged before that still use its own
            entity = ctx.aliases[entity]
            image = {**image, "uuid": entity} if image is not None else None
        if image is not None:
            image, ahead = rules.clamp_times(image, KINDS[kind].timestamp_columns, latest)
            ctx.outcome.clock_ahead_seconds = max(ctx.outcome.clock_ahead_seconds, ahead)
        await _HANDLERS[kind](ctx, entity, image)
    await _note_clock(ctx)


async def _note_clock(ctx: Context) -> None:
    """A branch whose clock is off by more than the allowed skew is told to staff, once while open."""
    offset = (ctx.clock.sent_at - ctx.now).total_seconds() if ctx.clock.sent_at else 0.0
    if ctx.outcome.clock_ahead_seconds:
        offset = max(offset, ctx.outcome.clock_ahead_seconds + ctx.skew.total_seconds())
    if abs(offset) <= ctx.skew.total_seconds():
        return
    already = await SyncConflict.count().where((SyncConflict.branch_code == ctx.branch["code"])
                                               & (SyncConflict.rule == "clock_skew")
                                               & (SyncConflict.state == "open"))
    if not already:
        await _conflict(ctx, "upload", ctx.upload, "clock_skew", {"offset_seconds": round(offset)})


async def _alias(ctx: Context, kind: str, mine: str, central: str, detail: dict[str, Any]) -> None:
    """The branch's `mine` is the central node's `central`, for ever (same ISBN, barcode or card)."""
    ctx.aliases[mine] = central
    ctx.outcome.aliases[mine] = central
    ctx.outcome.alias_kinds[mine] = kind
    await _remember_origin(kind, mine, ctx.branch, alias_of=central)
    await _conflict(ctx, kind, mine, "merged_duplicate", {**detail, "into": central}, resolved=True)


async def _write_one(ctx: Context, kind: str, image: dict[str, Any]) -> bool:
    written = await write_images(KINDS[kind], [image], ctx.aliases)
    if written.applied:
        ctx.outcome.applied += 1
        return True
    for entity, why in written.refused:
        await _refuse(ctx, kind, entity, "refused_by_database", {"why": why})
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


async def _refuse(ctx: Context, kind: str, entity: str, rule: str, detail: dict[str, Any],
                  resolved: bool = False) -> None:
    await _conflict(ctx, kind, entity, rule, detail, resolved=resolved)
    if await local_ids(kind, {entity}):
        await _resend(kind, entity, ctx.branch)


async def _refuse_change(ctx: Context, kind: str, entity: str, decision: rules.Decision, image: dict[str, Any] | None,
                         **detail: Any) -> None:
    """A change the branch is not entitled to: recorded with what it asked for, for staff to review."""
    await _refuse(ctx, kind, entity, decision.refusal or "not_this_branch", {**detail, "image": image},
                  resolved=decision.resolved)


async def _place(ctx: Context, item_uuid: str | None) -> rules.Place | None:
    """Where a copy is now, as this node knows it (within the upload's transaction)."""
    if not item_uuid:
        return None
    item_uuid = ctx.aliases.get(item_uuid, item_uuid)
    item = (await images_of(KINDS["item"], [item_uuid])).get(item_uuid)
    if item is None:
        return None
    journeys = await Transit.select(Transit.from_branch.uuid.as_alias("from_uuid"),
                                    Transit.to_branch.uuid.as_alias("to_uuid")).where(
        (Transit.item.uuid == item_uuid) & Transit.received_at.is_null())
    ends = {str(end) for row in journeys for end in (row["from_uuid"], row["to_uuid"])}
    return rules.Place(item=item, travelling_between=frozenset(ends))


async def _latest_seq(kind: str, entity: str) -> int | None:
    rows = await Branch.raw("SELECT MAX(seq) AS seq FROM sync_change WHERE kind = {} AND entity_uuid = {}",
                            kind, entity)
    return rows[0]["seq"] if rows and rows[0]["seq"] is not None else None


async def _concurrent(ctx: Context, entity: str) -> bool:
    """Whether the central node changed reader `entity` after the branch last read its log, by other means."""
    writer = await SyncWriter.select(SyncWriter.branch.uuid.as_alias("branch_uuid"), SyncWriter.seq).where(
        SyncWriter.entity_uuid == entity).first()
    last = (str(writer["branch_uuid"]), writer["seq"]) if writer else None
    return rules.is_concurrent(await _latest_seq("patron", entity), ctx.clock.seen_through, last, ctx.branch_uuid)


async def _note_writer(ctx: Context, entity: str) -> None:
    """This upload wrote reader `entity` last: remember the log row it left (see `_concurrent`)."""
    seq = await _latest_seq("patron", entity)
    if seq is None:
        return
    updated = await SyncWriter.update({SyncWriter.branch: ctx.branch["id"], SyncWriter.seq: seq}).where(
        SyncWriter.entity_uuid == entity).returning(SyncWriter.id)
    if not updated:
        await SyncWriter.insert(SyncWriter(entity_uuid=entity, branch=ctx.branch["id"], seq=seq))


async def _tombstone(ctx: Context, kind: str, entity: str) -> None:
    branch = ctx.branch
    if kind in ("record", "item", "patron") and ctx.origins.get(entity) != branch["id"]:
        await _refuse(ctx, kind, entity, "central_authority", {"change": "delete"})
        return
    if kind in ("loan", "hold", "transit", "transfer"):
        column = {"loan": "branch", "hold": "pickup_branch", "transit": "from_branch", "transfer": "from_branch"}[kind]
        rows = await Branch.raw(f"SELECT {column} AS b FROM {KINDS[kind].table_name} WHERE uuid = {{}}", entity)
        if rows and rows[0]["b"] != branch["id"]:
            await _refuse(ctx, kind, entity, "not_this_branch", {"change": "delete"})
            return
    if kind == "pin_change":
        return  # the record of a PIN set is the central node's to keep
    if kind == "guardian_link":
        link = (await images_of(KINDS["guardian_link"], [entity])).get(entity)
        child = (await images_of(KINDS["patron"], [link["child"]])).get(link["child"]) if link else None
        decision = rules.guardian_link_allowed(child, ctx.branch_uuid)
        if link is not None and decision.refusal:
            await _refuse(ctx, kind, entity, decision.refusal, {"change": "delete"})
            return
    why = await delete_entity(KINDS[kind], entity)
    if why:
        await _conflict(ctx, kind, entity, "refused_by_database", {"why": why, "change": "delete"})
    else:
        ctx.outcome.applied += 1


async def _record(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "record", entity)
    existing = await images_of(KINDS["record"], [ctx.aliases.get(entity, entity)])
    if existing:
        if entity in ctx.aliases:
            # The branch edits its alias of a central record (the same book, or a record a
            # librarian merged into another since): the central record stands, and the answer
            # names the alias again so the branch folds its row into the central one.
            ctx.outcome.aliases[entity] = ctx.aliases[entity]
            ctx.outcome.alias_kinds[entity] = "record"
            return
        if ctx.origins.get(entity) == ctx.branch["id"]:
            await _write_one(ctx, "record", image)
        else:
            await _refuse(ctx, "record", entity, "central_authority",
                          {"title": image.get("title", ""), "isbn13": image.get("isbn13"), "image": image})
        return
    # New here: the catalogue's matching rules say whether it is a book the central library has.
    decision = matching.decide(image, await _record_candidates(image),
                               getattr(ctx, "match_points", None) or matching.DEFAULT_POINTS)
    if decision.kind == "matched":
        central = str((await Record.select(Record.uuid).where(Record.id == decision.record_id).first())["uuid"])
        await _alias(ctx, "record", entity, central,
                     {"title": image.get("title", ""), "isbn13": image.get("isbn13"), "match": decision.reason})
        return
    if not await _write_one(ctx, "record", image):
        return
    await _remember_origin("record", entity, ctx.branch)
    ctx.origins[entity] = ctx.branch["id"]
    if decision.kind == "possible_duplicate":
        # Same ISBN (or 001, or title, author and year) but not the same book by the match
        # points — a publisher's reused ISBN, a donated book catalogued under the number printed
        # on it: both records stay, and the central library's cataloguers decide.
        mine = (await Record.select(Record.id).where(Record.uuid == entity).first())["id"]
        for other, reason in decision.duplicates:
            await duplicates.flag(other, mine, reason, f"sync {ctx.branch['code']}")
        await audit.record(f"sync:{ctx.branch['code']}", "record.possible_duplicate", f"record:{entity}",
                           title=image.get("title", ""), isbn13=image.get("isbn13"),
                           of=[str(row["uuid"]) for row in await Record.select(Record.uuid).where(
                               Record.id.is_in([other for other, _ in decision.duplicates]))])


async def _record_candidates(image: dict[str, Any]) -> list[dict[str, Any]]:
    """The records an uploaded one might be, oldest first: those whose ISBN is one of its ISBNs,
    with its control number, or with its title (all indexed look-ups; an ISBN that is only among
    a stored record's other ISBNs is not looked for: a JSON list has no index on both engines)."""
    keys = matching.lookup_keys(image)
    conditions = []
    if keys["isbns"]:
        conditions.append(Record.isbn13.is_in(keys["isbns"]))
    if keys["control_number"]:
        conditions.append(Record.control_number == keys["control_number"])
    if keys["title"]:
        conditions.append(Record.title == keys["title"])
    if not conditions:
        return []
    where = conditions[0]
    for condition in conditions[1:]:
        where = where | condition
    return await Record.select(Record.id, Record.isbn13, Record.other_isbns, Record.control_number,
                               Record.control_agency, Record.title, Record.subtitle, Record.contributors,
                               Record.publication_year).where(where).order_by(Record.id).limit(50)


async def _item(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "item", entity)
    branch = ctx.branch
    place = await _place(ctx, entity)
    if place is None:
        taken = await Branch.raw("SELECT uuid, home_branch, current_branch FROM item WHERE barcode = {}",
                                 image["barcode"])
        if taken and branch["id"] in (taken[0]["home_branch"], taken[0]["current_branch"]):
            # the branch has this copy from elsewhere (another system's export, say): the same copy
            central = str(taken[0]["uuid"])
            await _alias(ctx, "item", entity, central, {"barcode": image["barcode"]})
            return await _item(ctx, central, {**image, "uuid": central})
        if taken:
            await _conflict(ctx, "item", entity, "duplicate_barcode",
                            {"barcode": image["barcode"], "other": str(taken[0]["uuid"])})
            return
        decision = rules.new_copy(image, ctx.branch_uuid)
        if decision.row is None:
            await _conflict(ctx, "item", entity, decision.refusal or "copy_elsewhere",
                            {"barcode": image["barcode"], "image": image})
            return
        if await _write_one(ctx, "item", image):
            await _remember_origin("item", entity, branch)
            ctx.origins[entity] = branch["id"]
        return
    current = place.item
    decision = rules.copy_change(place, image, ctx.branch_uuid, ctx.origins.get(entity) == branch["id"])
    if decision.row is None:
        await _refuse_change(ctx, "item", entity, decision, image, barcode=current["barcode"],
                             status=image["status"], central_status=current["status"],
                             central_branch=current["current_branch"])
        return
    await _write_one(ctx, "item", decision.row)
    if any(decision.row[key] != image[key] for key in ("home_branch", "record")):
        await _resend("item", entity, branch)


async def _loan(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "loan", entity)
    branch = ctx.branch
    current = (await images_of(KINDS["loan"], [entity])).get(entity)
    if current is None and image["returned_at"] is None:
        item_uuid = ctx.aliases.get(image["item"], image["item"])
        item_ids = await local_ids("item", {item_uuid})
        if item_uuid in item_ids:
            other = await Branch.raw(
                "SELECT l.uuid, b.code AS branch, p.card_number FROM loan l JOIN branch b ON b.id = l.branch "
                "LEFT JOIN patron p ON p.id = l.patron WHERE l.item = {} AND l.returned_at IS NULL",
                item_ids[item_uuid])
            if other:
                patron = await Branch.raw("SELECT card_number FROM patron WHERE uuid = {}", image["patron"]) \
                    if image.get("patron") else []
                barcode = await Branch.raw("SELECT barcode FROM item WHERE id = {}", item_ids[item_uuid])
                await _conflict(ctx, "loan", entity, "lent_twice", {
                    "barcode": barcode[0]["barcode"],
                    "this_loan": {"uuid": entity, "branch": branch["code"],
                                  "card_number": patron[0]["card_number"] if patron else None,
                                  "checked_out_at": image["checked_out_at"], "due_on": image["due_on"]},
                    "other_loan": {"uuid": str(other[0]["uuid"]), "branch": other[0]["branch"],
                                   "card_number": other[0]["card_number"]},
                    "image": image})
                return
    place = await _place(ctx, (current or image)["item"])
    decision = rules.loan_change(current, image, ctx.branch_uuid, place)
    if decision.refusal:
        await _refuse_change(ctx, "loan", entity, decision, image, lent_at=(current or image)["branch"],
                             returned_at=(current or {}).get("returned_at"), renewals=image["renewals"])
    elif decision.row is not None:
        if await _write_one(ctx, "loan", decision.row) and current is None and decision.row.get("patron"):
            await _reader_now_served_here(ctx, decision.row["patron"])


async def _reader_now_served_here(ctx: Context, patron: str) -> None:
    """A reader from elsewhere borrowed at this branch: from now on it holds their verifier (and
    their guardians'), so send them again; the feed decides what they carry."""
    reader = await Patron.select(Patron.id, Patron.home_branch).where(Patron.uuid == patron).first()
    if reader is None or reader["home_branch"] == ctx.branch["id"]:
        return
    await _resend("patron", patron, ctx.branch)
    guardians = await GuardianLink.select(GuardianLink.guardian.uuid.as_alias("uuid")).where(
        GuardianLink.child == reader["id"])
    for guardian in guardians:
        await _resend("patron", str(guardian["uuid"]), ctx.branch)


async def _patron(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        current = (await images_of(KINDS["patron"], [entity])).get(entity)
        if current is not None and current["home_branch"] != ctx.branch_uuid:
            await _refuse(ctx, "patron", entity, "reader_elsewhere", {"change": "delete"})
            return
        return await _tombstone(ctx, "patron", entity)
    branch = ctx.branch
    current = (await images_of(KINDS["patron"], [entity])).get(entity)
    if current is None:
        taken = await Branch.raw("SELECT uuid, name FROM patron WHERE card_number = {}", image["card_number"])
        if taken and taken[0]["name"] == image["name"]:
            # one card, one reader: registered at both nodes before they synced
            central = str(taken[0]["uuid"])
            await _alias(ctx, "patron", entity, central, {"card_number": image["card_number"]})
            return await _patron(ctx, central, {**image, "uuid": central})
        if taken:
            await _conflict(ctx, "patron", entity, "duplicate_card",
                            {"card_number": image["card_number"], "other": str(taken[0]["uuid"])})
            return
        decision = rules.new_reader(image, ctx.branch_uuid)
        if decision.row is None:
            await _conflict(ctx, "patron", entity, decision.refusal or "reader_elsewhere",
                            {"card_number": image["card_number"], "image": _without_secrets(image)})
            return
        if await _write_one(ctx, "patron", image):
            await _remember_origin("patron", entity, branch)
            await _note_writer(ctx, entity)
            await audit.record(f"sync:{branch['code']}", "patron.registered_at_branch",
                               f"patron:{image['card_number']}")
        return
    decision = rules.reader_change(current, image, ctx.branch_uuid, await _concurrent(ctx, entity))
    if decision.refusal:
        await _refuse(ctx, "patron", entity, decision.refusal,
                      {"card_number": current["card_number"], "image": _without_secrets(image)})
        return
    if decision.row is None:
        return  # nothing of the reader's that the branch may change was changed
    if await _write_one(ctx, "patron", decision.row):
        await _note_writer(ctx, entity)


def _without_secrets(image: dict[str, Any]) -> dict[str, Any]:
    """A reader's image kept for staff to review, without the PIN verifier."""
    return {**image, "pin_hash": ""}


async def _pin_change(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    """A PIN set at the branch: its own operation, checked against the branch's authority and kept
    (who, when, where; never the verifier) as the audit of the change."""
    if image is None:
        return await _tombstone(ctx, "pin_change", entity)
    if await local_ids("pin_change", {entity}):
        return  # already applied (the same change in a later package)
    patron = ctx.aliases.get(image["patron"], image["patron"])
    reader = (await images_of(KINDS["patron"], [patron])).get(patron)
    if reader is None:
        await _conflict(ctx, "pin_change", entity, "refused_by_database", {"why": "missing_patron"})
        return
    since = feed.verifier_since(ctx.now, ctx.verifier_days)
    holds_verifier = bool(await feed.holders_among(ctx.branch["id"], [patron], since))
    decision = rules.pin_change_allowed(reader, ctx.branch_uuid, holds_verifier)
    detail = {"card_number": reader["card_number"], "set_by": image["set_by"], "set_at": image["set_at"]}
    if decision.refusal:
        await _refuse(ctx, "pin_change", entity, decision.refusal, detail)
        await _resend("patron", patron, ctx.branch)  # the branch gets the verifier the reader has
        return
    concurrent = await _concurrent(ctx, patron)
    row = {**image, "patron": patron, "branch": ctx.branch_uuid}
    if not await _write_one(ctx, "pin_change", row):
        return
    await Patron.update({Patron.pin_hash: image["pin_hash"], Patron.updated_at: ctx.now}).where(
        Patron.uuid == patron)
    if not concurrent:
        await _note_writer(ctx, patron)
    await audit.record(f"sync:{ctx.branch['code']}", "patron.pin_set_at_branch", f"patron:{reader['card_number']}",
                       set_by=image["set_by"], set_at=image["set_at"])


async def _guardian_link(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "guardian_link", entity)
    child_uuid = ctx.aliases.get(image["child"], image["child"])
    child = (await images_of(KINDS["patron"], [child_uuid])).get(child_uuid)
    decision = rules.guardian_link_allowed(child, ctx.branch_uuid)
    if decision.refusal:
        await _refuse_change(ctx, "guardian_link", entity, decision, image)
        return
    await _write_one(ctx, "guardian_link", image)


async def _transit(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "transit", entity)
    current = (await images_of(KINDS["transit"], [entity])).get(entity)
    decision = rules.transit_change(current, image, ctx.branch_uuid, await _place(ctx, (current or image)["item"]))
    if decision.refusal:
        await _refuse_change(ctx, "transit", entity, decision, image)
    elif decision.row is not None:
        await _write_one(ctx, "transit", decision.row)


async def _transfer(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return
    current = (await images_of(KINDS["transfer"], [entity])).get(entity)
    if current is None or ctx.branch_uuid not in (current["from_branch"], current["to_branch"]):
        await _conflict(ctx, "transfer", entity, "not_this_branch", {"image": image})
        return
    merged = dict(current)
    merged.update({key: image[key] for key in ("status", "sent_at", "received_at", "updated_at")})
    await _write_one(ctx, "transfer", merged)


async def _hold(ctx: Context, entity: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return await _tombstone(ctx, "hold", entity)
    current = (await images_of(KINDS["hold"], [entity])).get(entity)
    decision = rules.hold_change(current, image, ctx.branch_uuid, await _place(ctx, image.get("item")))
    if decision.row is None:
        await _refuse_change(ctx, "hold", entity, decision, image,
                             status=(current or {}).get("status"), branch_status=image["status"])
        return
    await _write_one(ctx, "hold", decision.row)


_HANDLERS = {"record": _record, "item": _item, "loan": _loan, "patron": _patron, "pin_change": _pin_change,
             "guardian_link": _guardian_link, "hold": _hold, "transit": _transit, "transfer": _transfer}


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


@duplicates.merge_step()
async def alias_merged_record(kept_row: dict[str, Any], removed_row: dict[str, Any], merged: duplicates.Merged,
                              principal: Principal, now: dt.datetime) -> None:
    """What a branch uploads later about the merged-away record (an edit, a new copy or hold on it)
    lands on the kept one (a step of library.catalog.duplicates' merge): `_record` reads aliases
    from `sync_origin`, where a branch's record that was the same book already becomes one.
    Aliases that pointed at the removed record now point at the kept one (one step, never a chain)."""
    removed, kept = merged.removed, merged.kept
    await SyncOrigin.update({SyncOrigin.alias_of: kept}).where(SyncOrigin.alias_of == removed)
    updated = await SyncOrigin.update({SyncOrigin.alias_of: kept}).where(
        SyncOrigin.entity_uuid == removed).returning(SyncOrigin.id)
    if updated:
        return
    # Made here, not by a branch: the alias is noted as the central library's own.
    origin = await Branch.select(Branch.id).where(Branch.kind == "central").order_by(Branch.id).first() \
        or await Branch.select(Branch.id).order_by(Branch.id).first()
    if origin is not None:  # no branch at all: nothing syncs, nothing to tell
        await SyncOrigin.insert(SyncOrigin(kind="record", entity_uuid=removed, alias_of=kept, branch=origin["id"]))
