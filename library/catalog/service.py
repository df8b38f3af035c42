"""Cataloguing: ISBN intake, records, copies, labels, search. One transaction per operation."""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog import duplicates, holdings, marc, marc_record, matching, rules
from library.catalog.isbn import Isbn, IsbnRefusal, hyphenate, parse_isbn
from library.catalog.records import JSON_COLUMNS, RecordInput, record_values, row_values, search_text_of
from library.catalog.search import SearchFilters, search
from library.catalog.sources.base import Candidate, Target
from library.catalog.tables import BarcodeSequence, Item, Record, RecordProvenance
from library.db import is_unique_violation, json_list, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted

PAGE_SIZE_LIMIT = 100


def valid_uuid(value: str) -> str:
    """A record's UUID as text; anything else is simply not a record (never a database error)."""
    try:
        return str(uuid_module.UUID(str(value)))
    except ValueError:
        raise NotFound("record_not_found") from None


# --- ISBN ---------------------------------------------------------------------------


def require_isbn(text: str, field_name: str = "isbn") -> Isbn:
    result = parse_isbn(text)
    if isinstance(result, IsbnRefusal):
        raise InvalidInput(result.code, field=field_name, expected=result.expected_check_digit, length=result.length)
    return result


# --- records ------------------------------------------------------------------------------


async def _candidates(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Records that might be the one being catalogued: same ISBN or same control number, oldest
    first. (A record that carries the ISBN only among its other ISBNs is found by the intake
    page's search, which the librarian sees before cataloguing.)"""
    keys = matching.lookup_keys(values)
    condition = Record.isbn13.is_in(keys["isbns"]) if keys["isbns"] else None
    if keys["control_number"]:
        found = Record.control_number == keys["control_number"]
        condition = found if condition is None else condition | found
    if condition is None:
        return []
    columns = (Record.id, Record.uuid, Record.isbn13, Record.other_isbns, Record.control_number,
               Record.control_agency, Record.title, Record.subtitle, Record.contributors, Record.publication_year)
    return await Record.select(*columns).where(condition).order_by(Record.id)


async def create_record(data: RecordInput, actor: str, today: dt.date,
                        points: tuple[matching.MatchPoint, ...] = matching.DEFAULT_POINTS) -> str:
    """A record catalogued here. The same book already in the network (by the match points) is
    refused, pointing at it; a different book that shares its ISBN (or control number) is
    catalogued and the pair flagged as a possible duplicate for a librarian to decide."""
    values = record_values(data, today)

    async def work() -> str:
        decision = matching.decide(values, await _candidates(values), points)
        if decision.kind == "matched":
            existing = await Record.select(Record.uuid).where(Record.id == decision.record_id).first()
            raise Conflict("record_exists", field="isbn" if values["isbn13"] else "control_number",
                           isbn=hyphenate(values["isbn13"]) if values["isbn13"] else values["control_number"] or "",
                           record=str(existing["uuid"]))
        rows = await Record.insert(Record(**row_values(values), marc_source="staff")).returning(Record.id, Record.uuid)
        uuid = str(rows[0]["uuid"])
        for other_id, reason in decision.duplicates:
            await duplicates.flag(rows[0]["id"], other_id, reason, f"staff {actor}")
        await audit.record(actor, "record.created", f"record:{uuid}", isbn=values["isbn13"], title=values["title"],
                           possible_duplicates=len(decision.duplicates))
        return uuid

    return await run_in_write_transaction(work)


# What the record form does not show: an edit keeps them as they are (an imported record's 001
# is how the next vendor file finds it again; the cover is set on its own).
KEPT_ON_EDIT = ("control_number", "cover")


async def update_record(uuid: str, data: RecordInput, actor: str, today: dt.date) -> None:
    """A librarian's edit. The field groups it changes become the record's local edits, which a
    later re-import of the record leaves as they are (library.catalog.marc_record)."""
    uuid = valid_uuid(uuid)
    values = record_values(data, today)

    async def work() -> None:
        before = await Record.select().where(Record.uuid == uuid).first()
        if before is None:
            raise NotFound("record_not_found")
        before = _record_view(before)
        for column in KEPT_ON_EDIT:
            if not values.get(column):
                values[column] = before.get(column)
        changed = marc_record.changed_groups(before, values)
        if not changed and values.get("cover") == before.get("cover"):
            return  # saved unchanged: nothing written, nothing for sync to send
        edits = marc_record.with_local_edits(before["local_edits"], before, values)
        await Record.update({**row_values(values), "local_edits": json.dumps(edits)}).where(Record.uuid == uuid)
        await audit.record(actor, "record.updated", f"record:{uuid}", title=values["title"], groups=changed)

    await run_in_write_transaction(work)


async def take_incoming(uuid: str, group: str, actor: str, today: dt.date) -> None:
    """Undo the local edit of one field group: its columns take what the kept MARC record says
    again, and the next re-import updates it as it does every group not edited here."""
    uuid = valid_uuid(uuid)
    if group not in marc_record.GROUPS:
        raise InvalidInput("invalid_choice", field="group")

    async def work() -> None:
        row = await Record.select().where(Record.uuid == uuid).first()
        if row is None:
            raise NotFound("record_not_found")
        view = _record_view(row)
        kept = marc_record.kept_values(view["marc"], today) if view.get("marc") else None
        if kept is None:
            raise Conflict("record_has_no_incoming_marc")
        values = {column: kept[column] for column in marc_record.GROUPS[group]["columns"]}
        values["local_edits"] = [name for name in view["local_edits"] if name != group]
        changed = {**view, **values}
        values["search_text"] = search_text_of(changed)
        await Record.update({key: json.dumps(value, ensure_ascii=False) if key in JSON_COLUMNS + ("local_edits",)
                             else value for key, value in values.items()}).where(Record.uuid == uuid)
        await audit.record(actor, "record.incoming_taken", f"record:{uuid}", group=group)

    await run_in_write_transaction(work)


async def set_cover(uuid: str, cover: str, actor: str) -> None:
    async def work() -> None:
        await Record.update({Record.cover: cover}).where(Record.uuid == valid_uuid(uuid))
        await audit.record(actor, "record.cover_set", f"record:{uuid}", cover=cover)

    await run_in_write_transaction(work)


def _record_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    view["uuid"] = str(row["uuid"])
    for key in JSON_COLUMNS + ("local_edits",):
        view[key] = json_list(row.get(key))
    view["isbn_hyphenated"] = hyphenate(row["isbn13"]) if row.get("isbn13") else ""
    view.pop("search_text", None)
    return view


async def record_detail(uuid: str) -> dict[str, Any]:
    """A record with its copies grouped by the branch where they are."""
    uuid = valid_uuid(uuid)
    async with read_transaction():
        row = await Record.select().where(Record.uuid == uuid).first()
        if row is None:
            raise NotFound("record_not_found")
        items = await Item.select().where(Item.record == row["id"]).order_by(Item.barcode)
        branches = await holdings.branches_by_id()
    view = _record_view(row)
    view["items"] = [_item_view(item, branches) for item in items]
    view["holdings"] = holdings.summary(items, branches)
    return view


def _item_view(item: dict[str, Any], branches: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "uuid": str(item["uuid"]),
        "barcode": item["barcode"],
        "status": item["status"],
        "item_type": item["item_type"],
        "shelf_location": item["shelf_location"],
        "home_branch": branches[item["home_branch"]]["code"],
        "current_branch": branches[item["current_branch"]]["code"],
        "current_branch_name_zh": branches[item["current_branch"]]["name_zh"],
        "current_branch_name_en": branches[item["current_branch"]]["name_en"],
        "due_back": item["due_back"],
        "price_cents": item["price_cents"],
        "acquired_on": item["acquired_on"],
        "withdrawn_reason": item["withdrawn_reason"],
    }


# A scanned ISBN shows at most this many records that carry it (one ISBN is sometimes reused
# for several books; more than this is a data problem the search page shows whole).
INTAKE_RECORDS = 10


async def intake(isbn_text: str) -> dict[str, Any]:
    """A scanned ISBN: the network's records that carry it (usually one; several where the ISBN
    was reused for different books), each with its holdings; `record` is the first of them, or
    None when there is none yet (with the ISBN read)."""
    isbn = require_isbn(isbn_text)
    async with read_transaction():
        rows = await Record.select(Record.uuid).where(Record.isbn13 == isbn.isbn13).order_by(
            Record.id).limit(INTAKE_RECORDS)
    uuids = [str(row["uuid"]) for row in rows]
    if len(uuids) < INTAKE_RECORDS:
        # Editions catalogued under another of their ISBNs (a MARC 020 with several): the
        # full-text index holds every ISBN of a record.
        for hit in (await search(isbn.isbn13, SearchFilters(), page_size=INTAKE_RECORDS))["hits"]:
            if hit["uuid"] not in uuids and isbn.isbn13 != hit.get("isbn13"):
                detail = await record_detail(hit["uuid"])
                if isbn.isbn13 in detail["other_isbns"]:
                    uuids.append(hit["uuid"])
    records = [await record_detail(uuid) for uuid in uuids[:INTAKE_RECORDS]]
    return {"isbn": isbn, "record": records[0] if records else None, "records": records}


# --- copies ------------------------------------------------------------------------------


async def _take_numbers(prefix: str, count: int) -> range:
    """Reserve `count` consecutive numbers with one conditional UPDATE (never the same twice)."""
    await BarcodeSequence.insert(BarcodeSequence(prefix=prefix, next_value=1)).on_conflict(
        target=BarcodeSequence.prefix, action="DO NOTHING")
    rows = await BarcodeSequence.update({BarcodeSequence.next_value: BarcodeSequence.next_value + count}).where(
        BarcodeSequence.prefix == prefix).returning(BarcodeSequence.next_value)
    end = rows[0]["next_value"]
    return range(end - count, end)


@dataclass
class NewCopies:
    branch_code: str
    count: int = 1
    barcodes: list[str] = field(default_factory=list)  # scanned; empty: generate
    shelf_location: str = ""
    item_type: str = "picture_book"
    price_cents: int | None = None
    acquired_on: dt.date | None = None


async def add_items(principal: Principal, record_uuid: str, new: NewCopies) -> list[str]:
    """Add copies to a branch; all or none (a duplicate barcode saves nothing)."""
    record_uuid = valid_uuid(record_uuid)
    barcodes = [b.strip().upper() for b in new.barcodes if b and b.strip()]
    count = len(barcodes) or new.count
    if not 1 <= count <= rules.MAX_COPIES_AT_ONCE:
        raise InvalidInput("copies_count", field="count", limit=rules.MAX_COPIES_AT_ONCE)
    if new.item_type not in rules.ITEM_TYPES:
        raise InvalidInput("invalid_choice", field="item_type")
    if new.price_cents is not None and not 0 <= new.price_cents <= rules.MAX_PRICE_CENTS:
        raise InvalidInput("not_a_price", field="price")
    seen: set[str] = set()
    for barcode in barcodes:
        if barcode in seen:
            raise InvalidInput("barcodes_repeated", field="barcodes", barcode=barcode)
        seen.add(barcode)

    async def work() -> list[str]:
        branch = await holdings.branch_by_code(new.branch_code)
        if not principal.works_for(branch["id"]):
            raise NotPermitted("not_your_branch", code=branch["code"])
        record = await Record.select(Record.id).where(Record.uuid == record_uuid).first()
        if record is None:
            raise NotFound("record_not_found")
        prefixes = [row["code"] for row in await Branch.select(Branch.code)]
        for barcode in barcodes:
            problem = rules.barcode_problem(barcode, prefixes)
            if problem:
                raise InvalidInput(problem, field="barcodes", barcode=barcode)
        chosen = barcodes or [rules.generated_barcode(branch["code"], n)
                              for n in await _take_numbers(branch["code"], count)]
        await Item.insert(*[
            Item(record=record["id"], barcode=barcode, home_branch=branch["id"], current_branch=branch["id"],
                 shelf_location=new.shelf_location.strip(), item_type=new.item_type, status="available",
                 price_cents=new.price_cents, acquired_on=new.acquired_on)
            for barcode in chosen])
        await audit.record(principal.audit_name, "items.added", f"record:{record_uuid}", barcodes=chosen,
                           branch=branch["code"])
        return chosen

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            taken = await Item.select(Item.barcode).where(Item.barcode.is_in(barcodes or ["-"]))
            barcode = taken[0]["barcode"] if taken else ""
            raise Conflict("barcode_taken", field="barcodes", barcode=barcode) from None
        raise


async def withdraw_item(principal: Principal, barcode: str, reason: str) -> None:
    barcode = (barcode or "").strip().upper()
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("withdraw_reason_required", field="reason")

    async def work() -> None:
        item = await Item.select(Item.id, Item.status, Item.home_branch, Item.current_branch).where(
            Item.barcode == barcode).first()
        if item is None:
            raise NotFound("item_not_found", barcode=barcode)
        if not (principal.works_for(item["home_branch"]) or principal.works_for(item["current_branch"])):
            raise NotPermitted("not_your_branch", code=barcode)
        # Conditional: a copy lent out in the meantime is not withdrawn under the reader's feet.
        updated = await Item.update({Item.status: "withdrawn", Item.withdrawn_reason: reason[:500]}).where(
            (Item.id == item["id"]) & Item.status.is_in(list(rules.WITHDRAWABLE))).returning(Item.id)
        if not updated:
            raise Conflict("item_not_withdrawable", status=item["status"])
        await audit.record(principal.audit_name, "item.withdrawn", f"item:{barcode}", reason=reason)

    await run_in_write_transaction(work)


async def item_detail(barcode: str) -> dict[str, Any]:
    """A copy by its barcode, with the record it belongs to (what a desk scan shows)."""
    barcode = (barcode or "").strip().upper()
    async with read_transaction():
        item = await Item.select().where(Item.barcode == barcode).first()
        if item is None:
            raise NotFound("item_not_found", barcode=barcode)
        record = await Record.select(Record.uuid, Record.title, Record.call_number).where(
            Record.id == item["record"]).first()
        branches = await holdings.branches_by_id()
    view = _item_view(item, branches)
    view.update({"record_uuid": str(record["uuid"]), "title": record["title"], "call_number": record["call_number"]})
    return view


async def labels(barcodes: list[str]) -> list[dict[str, Any]]:
    """Spine labels: call number and barcode of each copy, in the order asked."""
    wanted = [b.strip().upper() for b in barcodes if b.strip()][:200]
    if not wanted:
        return []
    rows = await Item.select(Item.barcode, Item.record.call_number, Item.record.title, Item.record.clc).where(
        Item.barcode.is_in(wanted))
    by_barcode = {row["barcode"]: row for row in rows}
    return [{"barcode": b, "call_number": by_barcode[b]["record.call_number"],
             "title": by_barcode[b]["record.title"]} for b in wanted if b in by_barcode]


# --- copy cataloguing ------------------------------------------------------------------------


async def take_copy(candidate: Candidate, target: Target, actor: str, today: dt.date, now: dt.datetime) -> str:
    """A record copied from another library's catalogue: made through our MARC mapping like an
    import (the same book already here is refused, pointing at it, as for a record typed in),
    the incoming record kept whole, and where it came from kept beside it (RecordProvenance)."""
    flavour = "cnmarc" if candidate.syntax == "unimarc" else "marc21"
    data = marc.convert(candidate.record, flavour, today).record

    async def work() -> str:
        uuid = await create_record(data, actor, today)  # nested: the same transaction
        row = await Record.select(Record.id).where(Record.uuid == uuid).first()
        await Record.update({Record.marc: marc_record.pack(candidate.record, flavour), Record.marc_format: flavour,
                             Record.marc_source: f"copy {target.name}"[:200]}).where(Record.id == row["id"])
        await RecordProvenance.insert(RecordProvenance(
            record=row["id"], target_name=target.name, protocol=target.protocol, syntax=candidate.syntax,
            charset=target.charset, source_record=candidate.raw, taken_by=actor, taken_at=now))
        await audit.record(actor, "record.copied", f"record:{uuid}", target=target.name, title=data.title)
        return uuid

    return await run_in_write_transaction(work)


async def record_provenance(uuid: str) -> list[dict[str, Any]]:
    """Where a copied record came from, newest first, with the record as the target sent it
    (decoded for reading; the bytes themselves are kept as they came)."""
    uuid = valid_uuid(uuid)
    rows = await RecordProvenance.select(
        RecordProvenance.target_name, RecordProvenance.protocol, RecordProvenance.syntax, RecordProvenance.charset,
        RecordProvenance.source_record, RecordProvenance.taken_by, RecordProvenance.taken_at,
    ).where(RecordProvenance.record.uuid == uuid).order_by(RecordProvenance.taken_at, ascending=False)
    for row in rows:
        raw = bytes(row.pop("source_record") or b"")
        row["size"] = len(raw)
        codec = "gb18030" if row["charset"] == "gb18030" else "utf-8"
        row["text"] = raw.decode(codec, errors="replace").replace("\x1e", "\n").replace("\x1d", "").replace(
            "\x1f", "$") if not raw.lstrip().startswith(b"<") else raw.decode("utf-8", errors="replace")
    return rows
