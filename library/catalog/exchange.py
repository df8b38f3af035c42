"""Importing and exporting the catalogue as MARC: batches of records, each batch one transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog import marc
from library.catalog.marc import Holding, ImportReport, Skipped
from library.catalog.service import JSON_COLUMNS, record_values, row_values
from library.catalog.tables import Item, Record
from library.db import executemany, is_unique_violation, json_list, read_transaction, run_in_write_transaction
from library.errors import DomainError, InvalidInput, InvalidRecord

BATCH = 500


RECORD_COLUMNS = ("uuid", "isbn13", "other_isbns", "control_number", "title", "subtitle", "parallel_title",
                  "original_title", "contributors", "publisher", "publication_year", "language", "series",
                  "series_number", "subjects", "age_min", "age_max", "format", "pages", "summary", "cover", "clc",
                  "call_number", "search_text", "created_at", "updated_at")
ITEM_COLUMNS = ("uuid", "record", "barcode", "home_branch", "current_branch", "shelf_location", "item_type", "status",
                "price_cents", "acquired_on", "withdrawn_reason", "created_at", "updated_at")
ITEM_UPDATE = ("record", "home_branch", "current_branch", "shelf_location", "item_type", "status", "price_cents",
               "acquired_on", "updated_at")


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("{}" for _ in columns)})'


def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    return f'UPDATE "{table}" SET {", ".join(f"{c} = {{}}" for c in columns)} WHERE id = {{}}'


def _merge(entries: list[tuple[int, dict[str, Any], list[Holding]]]) -> list[tuple[dict[str, Any], list[Holding]]]:
    """The same ISBN or control number twice in one batch is one record: the later values win."""
    merged: dict[Any, tuple[dict[str, Any], list[Holding]]] = {}
    for position, values, holdings in entries:
        key = ("isbn", values["isbn13"]) if values["isbn13"] else ("number", values["control_number"]) \
            if values["control_number"] else ("position", position)
        if key in merged:
            merged[key] = (values, merged[key][1] + holdings)
        else:
            merged[key] = (values, holdings)
    return list(merged.values())


async def _apply(entries: list[tuple[int, dict[str, Any], list[Holding]]], branches: dict[str, int],
                 default_branch: str | None, report: ImportReport, actor: str) -> None:
    """Write one batch: match on ISBN, then control number; update what exists, insert the rest.

    Rows go in with one statement per kind (executemany), not one query object per row.
    """
    batch = _merge(entries)
    now = dt.datetime.now(dt.timezone.utc)

    async def find(values_list: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
        isbns = [v["isbn13"] for v in values_list if v["isbn13"]]
        numbers = [v["control_number"] for v in values_list if v["control_number"]]
        rows = []
        if isbns:
            rows += await Record.select(Record.id, Record.isbn13, Record.control_number).where(
                Record.isbn13.is_in(isbns))
        if numbers:
            rows += await Record.select(Record.id, Record.isbn13, Record.control_number).where(
                Record.control_number.is_in(numbers))
        return ({r["isbn13"]: r["id"] for r in rows if r["isbn13"]},
                {r["control_number"]: r["id"] for r in rows if r["control_number"]})

    def match(values: dict[str, Any], by_isbn: dict[str, int], by_number: dict[str, int]) -> int | None:
        if values["isbn13"] and values["isbn13"] in by_isbn:
            return by_isbn[values["isbn13"]]
        if values["control_number"] and values["control_number"] in by_number:
            return by_number[values["control_number"]]
        return None

    def record_row(values: dict[str, Any]) -> tuple:
        row = {**row_values(values), "uuid": uuid_module.uuid4(), "created_at": now, "updated_at": now}
        return tuple(row.get(column) for column in RECORD_COLUMNS)

    async def work() -> tuple[int, int, int, int]:
        by_isbn, by_number = await find([values for values, _ in batch])
        new, updates = [], []
        for values, _ in batch:
            record_id = match(values, by_isbn, by_number)
            if record_id is None:
                new.append(values)
            else:
                changed = {key: value for key, value in row_values(values).items()
                           if not (key in ("isbn13", "control_number") and not value)}
                changed["updated_at"] = now
                updates.append((changed, record_id))
        keyed = [values for values in new if values["isbn13"] or values["control_number"]]
        await executemany(_insert_sql("record", RECORD_COLUMNS), [record_row(values) for values in keyed])
        for values in new:
            if not (values["isbn13"] or values["control_number"]):  # nothing to find it by: one at a time
                rows = await Record.insert(Record(**row_values(values))).returning(Record.id)
                values["_id"] = rows[0]["id"]
        grouped: dict[tuple[str, ...], list[tuple]] = {}
        for changed, record_id in updates:
            grouped.setdefault(tuple(changed), []).append(tuple(changed.values()) + (record_id,))
        for columns, rows in grouped.items():
            await executemany(_update_sql("record", columns), rows)
        by_isbn, by_number = await find([values for values, _ in batch])

        item_rows, item_updates = [], []
        barcodes = [h.barcode for _, holdings in batch for h in holdings]
        existing = {}
        if barcodes:
            existing = {row["barcode"]: row["id"] for row in await Item.select(Item.id, Item.barcode).where(
                Item.barcode.is_in(barcodes))}
        for values, holdings in batch:
            record_id = values.get("_id") or match(values, by_isbn, by_number)
            for holding in holdings:
                home = branches.get(holding.home_branch or "") or branches.get(default_branch or "")
                if home is None:
                    continue
                current = branches.get(holding.current_branch or "") or home
                fields = (record_id, home, current, holding.shelf_location[:100],
                          marc.valid_item_type(holding.item_type), holding.status, holding.price_cents,
                          holding.acquired_on, now)
                if holding.barcode in existing:
                    item_updates.append(fields + (existing[holding.barcode],))
                else:
                    existing[holding.barcode] = -1
                    item_rows.append((uuid_module.uuid4(), record_id, holding.barcode, home, current,
                                      holding.shelf_location[:100], marc.valid_item_type(holding.item_type),
                                      holding.status, holding.price_cents, holding.acquired_on, "", now, now))
        await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)
        await executemany(_update_sql("item", ITEM_UPDATE), item_updates)
        return len(new), len(updates), len(item_rows), len(item_updates)

    created, updated, items_created, items_updated = await run_in_write_transaction(work)
    report.created += created
    report.updated += updated
    report.items_created += items_created
    report.items_updated += items_updated


async def _apply_safely(entries, branches, default_branch, report, actor) -> None:
    """A batch that fails as a whole is retried record by record, so one bad record skips alone."""
    try:
        await _apply(entries, branches, default_branch, report, actor)
    except Exception as error:  # noqa: BLE001 - narrowed below, record by record
        if len(entries) == 1:
            position, values, _ = entries[0]
            reason = "duplicate ISBN, control number or barcode" if is_unique_violation(error) else \
                f"{type(error).__name__}: {error}"
            report.skipped.append(Skipped(position, reason, values.get("control_number") or ""))
            return
        for entry in entries:
            await _apply_safely([entry], branches, default_branch, report, actor)


Entry = tuple[int, dict[str, Any], list[Holding]]
# Files bigger than this are read and converted in a second process while this one writes.
PARALLEL_FROM_BYTES = 1_000_000
CHUNK_RECORDS = 1000
WORKERS = 1  # measured: a second worker gains nothing, writing is then the slower side


def convert_chunk(data: bytes, first_position: int, flavour: str, today: dt.date,
                  force_utf8: bool | None = None) -> tuple[list[Entry], list[Skipped], int, str]:
    """Read and convert records: (entries, skipped, records read, flavour seen). Pure CPU work,
    so it runs as well in a worker process as here."""
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    read, seen = 0, ""
    for position, record, reason in marc.read_marc(data, force_utf8, first_position):
        read += 1
        if record is None:
            skipped.append(Skipped(position, reason))
            continue
        record_flavour = marc.detect_flavour(record) if flavour == "auto" else flavour
        seen = seen or record_flavour
        converted = None
        try:
            converted = marc.convert(record, record_flavour)
            values = record_values(converted.record, today)
        except InvalidRecord as error:
            skipped.append(Skipped(position, marc.describe_problems(error),
                                   (converted.record.control_number if converted else "") or ""))
            continue
        except (DomainError, ValueError, KeyError, IndexError, AttributeError) as error:
            skipped.append(Skipped(position, f"{type(error).__name__}: {error}"))
            continue
        entries.append((position, values, converted.holdings))
    return entries, skipped, read, seen


def _warm_worker() -> None:
    from library.catalog.search_text import index_text

    index_text(["预热 warm"])  # load OpenCC and the pinyin dictionaries once per worker


async def _converted_chunks(data: bytes, flavour: str, today: dt.date):
    """Converted chunks in file order: in a worker process for big ISO 2709 files (two chunks
    ahead), in this process otherwise (MARCXML, small files)."""
    if data.lstrip()[:1] == b"<" or len(data) < PARALLEL_FROM_BYTES:
        yield convert_chunk(data, 1, flavour, today)
        return
    if len(data) < 24 or not data[:5].isdigit():
        raise InvalidInput("marc_not_marc")
    force_utf8 = marc._looks_like_utf8(data)
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_warm_worker)
    try:
        chunks = marc.iso2709_chunks(data, CHUNK_RECORDS)
        pending = []
        for _ in range(WORKERS + 1):
            chunk = next(chunks, None)
            if chunk:
                pending.append(pool.submit(convert_chunk, chunk[1], chunk[0], flavour, today, force_utf8))
        while pending:
            result = await asyncio.wrap_future(pending.pop(0))
            chunk = next(chunks, None)
            if chunk:
                pending.append(pool.submit(convert_chunk, chunk[1], chunk[0], flavour, today, force_utf8))
            yield result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def import_marc(data: bytes, actor: str, today: dt.date, flavour: str = "auto",
                      default_branch: str | None = None,
                      progress: Callable[[ImportReport], None] = lambda report: None,
                      imported_by: Principal | None = None) -> ImportReport:
    """Import every readable record; report what was created, updated and skipped (and why).

    `imported_by`: a staff member may send copies with an unknown branch only to a branch
    they work for.
    """
    if not data.strip():
        raise InvalidInput("marc_empty")
    branches = {row["code"]: row["id"] for row in await Branch.select(Branch.id, Branch.code)}
    if default_branch and imported_by is not None and not imported_by.works_for(branches.get(default_branch, -1)):
        raise InvalidInput("invalid_choice", field="branch")
    report = ImportReport()
    writing: asyncio.Task | None = None

    async def flush(batch: list[Entry]) -> None:
        # One batch is written (in the database's thread) while the next is converted.
        nonlocal writing
        if writing is not None:
            await writing
            progress(report)
        writing = asyncio.create_task(_apply_safely(batch, branches, default_branch, report, actor))

    try:
        async for entries, skipped, read, seen in _converted_chunks(data, flavour, today):
            report.read += read
            report.skipped += skipped
            report.flavour = report.flavour or seen
            for start in range(0, len(entries), BATCH):
                await flush(entries[start:start + BATCH])
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
    report.skipped.sort(key=lambda skipped: skipped.position)
    progress(report)
    if report.read == 0:
        raise InvalidInput("marc_empty")
    await run_in_write_transaction(lambda: audit.record(
        actor, "catalog.imported", "catalog", read=report.read, created=report.created, updated=report.updated,
        skipped=len(report.skipped)))
    return report


async def export_marc(fmt: str = "marc21", branch_code: str | None = None, page: int = 1000) -> AsyncIterator[bytes]:
    """The catalogue (or the records a branch holds, with that branch's copies), in chunks."""
    branches = {row["id"]: row["code"] for row in await Branch.select(Branch.id, Branch.code)}
    branch_id = next((i for i, code in branches.items() if code == branch_code), None) if branch_code else None
    if branch_code and branch_id is None:
        from library.errors import NotFound

        raise NotFound("branch_not_found", code=branch_code)
    if fmt == "marcxml":
        yield b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">'
    last_id = 0
    while True:
        async with read_transaction():
            query = Record.select().where(Record.id > last_id).order_by(Record.id).limit(page)
            if branch_id is not None:
                held = Item.select(Item.record).where(
                    (Item.home_branch == branch_id) | (Item.current_branch == branch_id))
                query = query.where(Record.id.is_in(held))
            rows = await query
            if not rows:
                break
            item_query = Item.select().where(Item.record.is_in([row["id"] for row in rows])).order_by(Item.barcode)
            if branch_id is not None:
                item_query = item_query.where((Item.home_branch == branch_id) | (Item.current_branch == branch_id))
            items = await item_query
        by_record: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            by_record.setdefault(item["record"], []).append({
                **item, "home_branch": branches[item["home_branch"]], "current_branch": branches[item["current_branch"]]})
        chunk = []
        for row in rows:
            view = dict(row)
            for key in JSON_COLUMNS:
                view[key] = json_list(row[key])
            chunk.append(marc.to_marc21(view, by_record.get(row["id"], [])))
        if fmt == "marcxml":
            yield b"".join(_xml_record(record) for record in chunk)
        else:
            yield marc.write_marc21(chunk)
        last_id = rows[-1]["id"]
    if fmt == "marcxml":
        yield b"</collection>\n"


def _xml_record(record) -> bytes:
    import pymarc

    return pymarc.record_to_xml(record, namespace=False)
