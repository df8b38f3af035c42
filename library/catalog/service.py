"""Cataloguing: ISBN intake, records, copies, labels, search. One transaction per operation."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog import rules
from library.catalog.isbn import Isbn, IsbnRefusal, hyphenate, parse_isbn
from library.catalog.records import JSON_COLUMNS, RecordInput, record_values, row_values
from library.catalog.search_text import fts5_query, parse_query, tsquery
from library.catalog.tables import BarcodeSequence, Item, Record
from library.db import is_sqlite, is_unique_violation, json_list, read_transaction, run_in_write_transaction
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


async def create_record(data: RecordInput, actor: str, today: dt.date) -> str:
    values = record_values(data, today)

    async def work() -> str:
        rows = await Record.insert(Record(**row_values(values))).returning(Record.uuid)
        uuid = str(rows[0]["uuid"])
        await audit.record(actor, "record.created", f"record:{uuid}", isbn=values["isbn13"], title=values["title"])
        return uuid

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            if values["isbn13"]:
                raise Conflict("record_exists", field="isbn", isbn=hyphenate(values["isbn13"])) from None
            raise Conflict("record_exists", field="control_number", isbn=values["control_number"] or "") from None
        raise


async def update_record(uuid: str, data: RecordInput, actor: str, today: dt.date) -> None:
    uuid = valid_uuid(uuid)
    values = record_values(data, today)

    async def work() -> None:
        updated = await Record.update(row_values(values)).where(Record.uuid == uuid).returning(Record.id)
        if not updated:
            raise NotFound("record_not_found")
        await audit.record(actor, "record.updated", f"record:{uuid}", title=values["title"])

    try:
        await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("record_exists", field="isbn", isbn=hyphenate(values["isbn13"] or "")) from None
        raise


async def set_cover(uuid: str, cover: str, actor: str) -> None:
    async def work() -> None:
        await Record.update({Record.cover: cover}).where(Record.uuid == valid_uuid(uuid))
        await audit.record(actor, "record.cover_set", f"record:{uuid}", cover=cover)

    await run_in_write_transaction(work)


def _record_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    view["uuid"] = str(row["uuid"])
    for key in JSON_COLUMNS:
        view[key] = json_list(row.get(key))
    view["isbn_hyphenated"] = hyphenate(row["isbn13"]) if row.get("isbn13") else ""
    view.pop("search_text", None)
    return view


async def _branches_by_id() -> dict[int, dict[str, Any]]:
    rows = await Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en)
    return {row["id"]: row for row in rows}


async def record_detail(uuid: str) -> dict[str, Any]:
    """A record with its copies grouped by the branch where they are."""
    uuid = valid_uuid(uuid)
    async with read_transaction():
        row = await Record.select().where(Record.uuid == uuid).first()
        if row is None:
            raise NotFound("record_not_found")
        items = await Item.select().where(Item.record == row["id"]).order_by(Item.barcode)
        branches = await _branches_by_id()
    view = _record_view(row)
    view["items"] = [_item_view(item, branches) for item in items]
    view["holdings"] = _holdings(items, branches)
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


def _holdings(items: list[dict[str, Any]], branches: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per branch: copies there, on the shelf, and the soonest due date of those out."""
    summary: dict[int, dict[str, Any]] = {}
    for item in items:
        if item["status"] == "withdrawn":
            continue
        branch = branches[item["current_branch"]]
        entry = summary.setdefault(item["current_branch"], {
            "branch": branch["code"], "name_zh": branch["name_zh"], "name_en": branch["name_en"],
            "copies": 0, "available": 0, "next_due": None})
        entry["copies"] += 1
        if item["status"] == "available":
            entry["available"] += 1
        if item["due_back"] and (entry["next_due"] is None or item["due_back"] < entry["next_due"]):
            entry["next_due"] = item["due_back"]
    return sorted(summary.values(), key=lambda entry: entry["branch"])


async def intake(isbn_text: str) -> dict[str, Any]:
    """A scanned ISBN: the network's record with its holdings, or nothing yet (with the ISBN read)."""
    isbn = require_isbn(isbn_text)
    async with read_transaction():
        row = await Record.select(Record.uuid).where(Record.isbn13 == isbn.isbn13).first()
    uuid = str(row["uuid"]) if row else None
    if uuid is None:
        # An edition catalogued under another of its ISBNs (a MARC 020 with several): the
        # full-text index holds every ISBN of a record.
        for hit in (await search(isbn.isbn13, SearchFilters(), page_size=5))["hits"]:
            detail = await record_detail(hit["uuid"])
            if isbn.isbn13 in detail["other_isbns"]:
                return {"isbn": isbn, "record": detail}
    record = await record_detail(uuid) if uuid else None
    return {"isbn": isbn, "record": record}


# --- copies ------------------------------------------------------------------------------


async def _branch(code: str) -> dict[str, Any]:
    row = await Branch.select(Branch.id, Branch.code).where(Branch.code == code).first()
    if row is None:
        raise NotFound("branch_not_found", field="branch", code=code)
    return row


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
    if new.price_cents is not None and new.price_cents < 0:
        raise InvalidInput("not_a_price", field="price")
    seen: set[str] = set()
    for barcode in barcodes:
        if barcode in seen:
            raise InvalidInput("barcodes_repeated", field="barcodes", barcode=barcode)
        seen.add(barcode)

    async def work() -> list[str]:
        branch = await _branch(new.branch_code)
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
        branches = await _branches_by_id()
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


# --- search --------------------------------------------------------------------------------


@dataclass
class SearchFilters:
    age: int | None = None
    format: str | None = None
    language: str | None = None
    branch: str | None = None
    available: bool = False


def _placeholder(values: list[Any], value: Any) -> str:
    values.append(value)
    return "{}"


async def search(query: str, filters: SearchFilters, sort: str = "relevance", page: int = 1,
                 page_size: int = 20) -> dict[str, Any]:
    """Hits (with availability per branch) and the total, from the database's own full-text index."""
    page = max(1, page)
    page_size = max(1, min(PAGE_SIZE_LIMIT, page_size))
    query = (query or "").strip()[:200]
    isbn = parse_isbn(query) if query else None
    terms = parse_query(isbn.isbn13 if isinstance(isbn, Isbn) else query)
    sqlite = is_sqlite()
    values: list[Any] = []  # in the order their placeholders appear
    where: list[str] = []
    source = "record r"
    if terms and sqlite:
        source = "record_fts JOIN record r ON r.id = record_fts.rowid"
        where.append("record_fts MATCH " + _placeholder(values, fts5_query(terms)))
    elif terms:
        where.append("r.search_vector @@ to_tsquery('simple', " + _placeholder(values, tsquery(terms)) + ")")
    if filters.age is not None:
        where.append(f"(r.age_min IS NULL OR r.age_min <= {_placeholder(values, filters.age)})")
        where.append(f"(r.age_max IS NULL OR r.age_max >= {_placeholder(values, filters.age)})")
    if filters.format:
        where.append("r.format = " + _placeholder(values, filters.format))
    if filters.language:
        where.append("r.language = " + _placeholder(values, filters.language))
    if filters.branch or filters.available:
        conditions = ["i.record = r.id", "i.status = 'available'" if filters.available else "i.status <> 'withdrawn'"]
        if filters.branch:
            conditions.append("i.current_branch = " + _placeholder(values, (await _branch(filters.branch))["id"]))
        where.append("EXISTS (SELECT 1 FROM item i WHERE " + " AND ".join(conditions) + ")")
    where_sql = (" WHERE " + " AND ".join(where)) if where else ""

    order_values: list[Any] = []
    if sort == "newest":
        order = "r.publication_year IS NULL, r.publication_year DESC, r.id DESC"
    elif sort == "title":
        order = "r.title, r.id"
    elif terms and sqlite:
        order = "bm25(record_fts), r.id DESC"
    elif terms:
        order = "ts_rank(r.search_vector, to_tsquery('simple', {})) DESC, r.id DESC"
        order_values.append(tsquery(terms))
    else:
        order = "r.id DESC"
    columns = ("r.id, r.uuid, r.isbn13, r.title, r.subtitle, r.contributors, r.publisher, r.publication_year, "
               "r.format, r.age_min, r.age_max, r.cover, r.call_number, r.language")
    limit = f"LIMIT {page_size} OFFSET {(page - 1) * page_size}"
    sql = f"SELECT {columns} FROM {source}{where_sql} ORDER BY {order} {limit}"
    count_sql = f"SELECT COUNT(*) AS n FROM {source}{where_sql}"
    fast = bool(terms) and len(where) == 1 and sort not in ("newest", "title")
    async with read_transaction():
        if fast:
            rows, total = await _ranked_page(columns, values[0], query, page, page_size)
        else:
            rows = await Record.raw(sql, *values, *order_values)
            total = (await Record.raw(count_sql, *values))[0]["n"]
        availability = await _availability([row["id"] for row in rows])
    hits = []
    for row in rows:
        hit = {key: row[key] for key in ("isbn13", "title", "subtitle", "publisher", "publication_year", "format",
                                         "age_min", "age_max", "cover", "call_number", "language")}
        hit["uuid"] = str(row["uuid"])
        hit["contributors"] = json_list(row["contributors"])
        hit["holdings"] = availability.get(row["id"], [])
        hits.append(hit)
    return {"query": query, "total": total, "page": page, "page_size": page_size, "hits": hits,
            "isbn": isbn.isbn13 if isinstance(isbn, Isbn) else None}


# Ranking every match of a very broad search ("小熊" in a big catalogue) costs more than a
# reader should wait; beyond this many matches, the newest-catalogued ones are ranked.
RANK_ALL_UP_TO = 5000


# The statements of a plain ranked search, per engine: {m} is the match condition on `src`.
_RANKED = {
    "sqlite": {
        "count": "SELECT COUNT(*) AS n FROM record_fts WHERE record_fts MATCH {}",
        "exact": "SELECT r.id FROM record r JOIN record_fts ON record_fts.rowid = r.id "
                 "WHERE r.title = {} AND record_fts MATCH {} ORDER BY r.id DESC LIMIT 5",
        "nth_newest": "SELECT rowid AS id FROM record_fts WHERE record_fts MATCH {} ORDER BY rowid DESC "
                      "LIMIT 1 OFFSET %(n)d",
        "window": "SELECT %(columns)s FROM (SELECT rowid AS id, rank FROM record_fts WHERE record_fts MATCH {} "
                  "AND rowid >= %(threshold)d AND rowid NOT IN (%(skip)s) ORDER BY rank LIMIT %(limit)d "
                  "OFFSET %(offset)d) AS page JOIN record r ON r.id = page.id ORDER BY page.rank, r.id DESC",
        "tail": "SELECT %(columns)s FROM (SELECT rowid AS id FROM record_fts WHERE record_fts MATCH {} "
                "AND rowid < %(threshold)d AND rowid NOT IN (%(skip)s) ORDER BY rowid DESC LIMIT %(limit)d "
                "OFFSET %(offset)d) AS page JOIN record r ON r.id = page.id ORDER BY r.id DESC",
        "window_values": 1,
    },
    "postgres": {
        "count": "SELECT COUNT(*) AS n FROM record WHERE search_vector @@ to_tsquery('simple', {})",
        "exact": "SELECT r.id FROM record r WHERE r.title = {} AND r.search_vector @@ to_tsquery('simple', {}) "
                 "ORDER BY r.id DESC LIMIT 5",
        "nth_newest": "SELECT id FROM record WHERE search_vector @@ to_tsquery('simple', {}) ORDER BY id DESC "
                      "LIMIT 1 OFFSET %(n)d",
        "window": "SELECT %(columns)s FROM record r WHERE r.search_vector @@ to_tsquery('simple', {}) "
                  "AND r.id >= %(threshold)d AND r.id NOT IN (%(skip)s) "
                  "ORDER BY ts_rank(r.search_vector, to_tsquery('simple', {})) DESC, r.id DESC "
                  "LIMIT %(limit)d OFFSET %(offset)d",
        "tail": "SELECT %(columns)s FROM record r WHERE r.search_vector @@ to_tsquery('simple', {}) "
                "AND r.id < %(threshold)d AND r.id NOT IN (%(skip)s) ORDER BY r.id DESC "
                "LIMIT %(limit)d OFFSET %(offset)d",
        "window_values": 2,
    },
}


async def _ranked_page(columns: str, match: str, query: str, page: int, page_size: int) -> tuple[list[dict], int]:
    """Words only, by relevance: found, ordered and counted by the full-text index alone.

    The order: records whose title is exactly the query; then the matches ranked (bm25 on
    SQLite, ts_rank on PostgreSQL) — all of them up to RANK_ALL_UP_TO, otherwise the
    RANK_ALL_UP_TO most recently catalogued; then any older matches, newest first. Every
    match is on some page exactly once.
    """
    sql = _RANKED["sqlite" if is_sqlite() else "postgres"]
    total = (await Record.raw(sql["count"], match))[0]["n"]
    exact = [row["id"] for row in await Record.raw(sql["exact"], query, match)]
    threshold = 0
    if total > RANK_ALL_UP_TO:
        row = await Record.raw(sql["nth_newest"] % {"n": RANK_ALL_UP_TO - 1}, match)
        threshold = row[0]["id"] if row else 0
    skip = ",".join(str(int(i)) for i in exact) or "0"
    in_window = (total if total <= RANK_ALL_UP_TO else RANK_ALL_UP_TO) - sum(1 for i in exact if i >= threshold)
    start, end = (page - 1) * page_size, page * page_size
    rows: list[dict] = []
    if start < len(exact):
        head = await Record.raw(f"SELECT {columns} FROM record r WHERE r.id IN ({skip}) ORDER BY r.id DESC")
        rows += head[start:end]
    window_from, window_to = max(0, start - len(exact)), min(in_window, end - len(exact))
    parts = {"columns": columns, "threshold": int(threshold), "skip": skip}
    if window_to > window_from:
        rows += await Record.raw(sql["window"] % {**parts, "limit": window_to - window_from, "offset": window_from},
                                 *[match] * sql["window_values"])
    tail_from, tail_to = max(0, start - len(exact) - in_window), end - len(exact) - in_window
    if threshold and tail_to > tail_from:
        rows += await Record.raw(sql["tail"] % {**parts, "limit": tail_to - tail_from, "offset": tail_from}, match)
    return rows, total


async def _availability(record_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not record_ids:
        return {}
    rows = await Item.select(Item.record, Item.current_branch, Item.status, Item.due_back).where(
        Item.record.is_in(record_ids) & (Item.status != "withdrawn"))
    branches = await _branches_by_id()
    grouped: dict[int, list[dict[str, Any]]] = {}
    for record_id in record_ids:
        items = [row for row in rows if row["record"] == record_id]
        grouped[record_id] = _holdings(items, branches)
    return grouped
