"""Importing and exporting the catalogue as MARC: batches of records, each batch one transaction.

A big file is read and converted in worker processes, which hand back each record as the
row it becomes (columns in table order, JSON already text, branches already resolved), so
this process only matches, inserts and updates: one lookup per batch, then one statement
per kind of row (multi-row VALUES on SQLite, COPY on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog import converters, marc
from library.catalog.conversion import RECORD_COLUMNS, ROW_COLUMNS, Entry, convert_chunk, place_copies
from library.catalog.marc import ImportReport, Skipped
from library.catalog.records import JSON_COLUMNS
from library.catalog.tables import Item, Record
from library.db import engine, executemany, is_sqlite, is_unique_violation, json_list, read_transaction, \
    run_in_write_transaction
from library.errors import InvalidInput

# At most this many records a transaction. A writer takes what has been converted while it
# wrote, up to this, but not less than half of it until the file is all converted (measured
# on SQLite: 50,000 records in batches of 5,000 took 15% less time than in batches of 1,000,
# mostly at COMMIT, where the index pages every batch touches are written again; with two
# writers on PostgreSQL, batches of whatever was there were mostly of 1,000, each with its
# own look-ups over the whole tables, statements and commit). At the end, what is left is
# shared between the free writers, so that they finish together.
BATCH = 5000
# PostgreSQL: at most this many batches written side by side, each in its own transaction (and
# connection, and server process). With one, the writer was the slower side of a big import:
# while this process prepared a batch the server waited, and while the server wrote it this
# process did; at the end, when the converters were done, one core wrote and the other idled
# (measured, 50,000 records on 2 cores, four interleaved runs: 7.45 -> 7.06 s). SQLite has one
# writer.
WRITERS_POSTGRES = 2
# SQLite: the page cache of a batch's connection while it writes (KiB; restored before the
# COMMIT, so the pooled connection keeps its own). A batch touches pages all over the
# indexes of titles and ISBNs; with the default 2 MB it read them again from the file
# (bench, into an empty catalogue: 3% of the write side; more as the catalogue grows).
SQLITE_BATCH_CACHE_KIB = 65536
# SQLite: at most this many parameters a statement (SQLite's own default limit since 3.32;
# a build with a lower one is asked).
SQLITE_MAX_PARAMETERS = 32766


ITEM_COLUMNS = ("uuid", "record", "barcode", "home_branch", "current_branch", "shelf_location", "item_type", "status",
                "price_cents", "acquired_on", "withdrawn_reason", "created_at", "updated_at")
ITEM_UPDATE = ("record", "home_branch", "current_branch", "shelf_location", "item_type", "status", "price_cents",
               "acquired_on", "updated_at")
_ISBN, _NUMBER = ROW_COLUMNS.index("isbn13"), ROW_COLUMNS.index("control_number")


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("{}" for _ in columns)})'


def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    return f'UPDATE "{table}" SET {", ".join(f"{c} = {{}}" for c in columns)} WHERE id = {{}}'


async def _pg_copy_in(connection, table: str, columns: tuple[str, ...], rows: list[tuple],
                      tail: tuple = ()) -> list[int]:
    """PostgreSQL: the rows (each followed by `tail`) in with COPY, each under an id taken from
    the table's sequence first (COPY returns nothing); the ids in row order. Not INSERT ... SELECT FROM unnest of
    one array per column: asyncpg checks every element of an array argument against
    collections.abc on the way (a second of this process's time for 50,000 records and
    75,000 copies), and COPY hands the server rows as they are."""
    if not rows:
        return []
    # The sequence is looked up once (MATERIALIZED): inlined, pg_get_serial_sequence ran for
    # every id, a catalogue scan each time (5% of the server's work in an import).
    ids = [row[0] for row in await connection.fetch(
        "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence($1, 'id')::regclass AS sequence) "
        "SELECT nextval(sequence) FROM s, generate_series(1, $2)", table, len(rows))]
    await connection.copy_records_to_table(table, records=[(i, *row, *tail) for i, row in zip(ids, rows)],
                                           columns=("id", *columns))
    return ids


# The bulk path of an import batch (see catalog migration 2026-11-29T09:30:00 and sync migrations
# 2026-11-29T09:31:00 and 09:50:00). Inside the batch's write transaction a mark makes the per-row
# INSERT triggers of record (full-text index, change log) and item (change log) stand aside;
# the batch then indexes and logs exactly the rows it inserted, set-based, with the values and
# conditions of those triggers, and removes the mark before it commits (a rollback removes it
# too), so no other transaction ever sees it. Updates keep their per-row triggers. Keep these
# statements in step with the triggers they replace. The mark is a row in catalog_bulk_load on
# SQLite, a transaction-local setting on PostgreSQL (no row: batches of imports running side by
# side would queue at its key).
_MARK, _UNMARK = "INSERT INTO catalog_bulk_load (id) VALUES (1)", "DELETE FROM catalog_bulk_load"
_NOT_APPLYING_SQLITE = "(SELECT applying FROM sync_state WHERE id = 1) IS NOT 1"
_SQLITE_LOG_INSERTED = (
    # On SQLite the batch's rows are those above the highest ids seen at its start: one writer
    # at a time, and the mark and that look happen inside the batch's IMMEDIATE transaction.
    "INSERT INTO record_fts (rowid, search_text) SELECT id, search_text FROM record WHERE id > ? ORDER BY id",
    "INSERT INTO sync_change (kind, entity_uuid, branches) SELECT 'record', uuid, '' FROM record "
    f"WHERE id > ? AND uuid IS NOT NULL AND {_NOT_APPLYING_SQLITE} ORDER BY id",
    "INSERT INTO sync_change (kind, entity_uuid, branches) SELECT 'item', uuid, "
    "'|' || COALESCE(home_branch, '') || '|' || COALESCE(current_branch, '') || '|' FROM item "
    f"WHERE id > ? AND uuid IS NOT NULL AND {_NOT_APPLYING_SQLITE} ORDER BY id",
)
# PostgreSQL: other transactions insert too, so the batch logs its rows from the values it
# inserted (in id order), with COPY: no statement looks them up again (by id, planned from an
# empty table's statistics, that was a scan of the whole table every batch). Its full-text
# vector is a generated column; only the change log is written here, after the same advisory
# lock the triggers take (so that `seq` order stays commit order) and under the same condition.
# The mark also sets a transaction-local setting there, which the insert triggers' WHEN reads
# (sync migration 2026-11-29T09:50:00): the logging function is then not even called.
_PG_MARK = "SELECT set_config('library.catalog_bulk_load', 'on', true)"
_PG_UNMARK = "SELECT set_config('library.catalog_bulk_load', 'off', true)"
_PG_LOCK = "SELECT pg_advisory_xact_lock(747001)"
_PG_APPLYING = "SELECT EXISTS (SELECT 1 FROM sync_state WHERE id = 1 AND applying)"
_LOG_COLUMNS = ("kind", "entity_uuid", "branches")


async def _sqlite_parameter_limit(connection) -> int:
    """How many parameters one statement may take on this connection."""
    return min(await connection._execute(connection._conn.getlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER),
               SQLITE_MAX_PARAMETERS)


async def _sqlite_insert(connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """SQLite: the rows in as few INSERT ... VALUES (...), (...) statements as its limit on
    parameters allows, in order. Not executemany: with triggers and foreign keys every
    statement keeps a statement journal (in a temporary file by default), and the pages a
    row touches were written there again for every row — 1.5 million writes for 50,000
    records and 75,000 copies; the whole write side took 40% less time this way."""
    if not rows:
        return
    per_statement = max(1, await _sqlite_parameter_limit(connection) // len(columns))
    one = "(" + ", ".join("?" for _ in columns) + ")"
    head = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES '
    for start in range(0, len(rows), per_statement):
        part = rows[start:start + per_statement]
        await connection.execute(head + ", ".join([one] * len(part)), [value for row in part for value in row])


async def _find_in(select: str, column_lists: list[tuple[str, list]]) -> list[tuple]:
    """The rows of `select` WHERE column IN (values) OR ..., each once, on either engine."""
    column_lists = [(column, values) for column, values in column_lists if values]
    if not column_lists:
        return []
    if is_sqlite():
        # One query per column and per slice under SQLite's limit on parameters (a batch of
        # 5,000 records may name more barcodes than a stock build's 32,766).
        connection = engine().current_transaction.get().connection
        limit = await _sqlite_parameter_limit(connection)
        found: dict[tuple, None] = {}
        for column, values in column_lists:
            for start in range(0, len(values), limit):
                part = values[start:start + limit]
                async with connection.execute(f"{select} WHERE {column} IN ({', '.join('?' for _ in part)})",
                                              part) as cursor:
                    cursor.row_factory = None  # plain tuples, not the engine's dicts
                    found.update(dict.fromkeys(await cursor.fetchall()))  # a row found twice counts once
        return list(found)
    connection = engine().current_transaction.get().connection
    where = " OR ".join(f"{column} = ANY(${n}::text[])" for n, (column, _) in enumerate(column_lists, start=1))
    return [tuple(row) for row in await connection.fetch(f"{select} WHERE {where}",
                                                         *[values for _, values in column_lists])]


def _merge(entries: list[Entry]) -> list[Entry]:
    """The same ISBN or control number twice in one batch is one record: the later values win."""
    merged: dict[Any, Entry] = {}
    for entry in entries:
        position, isbn13, number, _, holdings = entry
        key = ("isbn", isbn13) if isbn13 else ("number", number) if number else ("position", position)
        if key in merged:
            entry = entry[:4] + (merged[key][4] + holdings,)
        merged[key] = entry
    return list(merged.values())


async def _apply(entries: list[Entry], report: ImportReport, earlier: frozenset[asyncio.Task] = frozenset()) -> None:
    """Write one batch: match on ISBN, then control number; update what exists, insert the rest.

    `earlier`: the batches of this import still being written when this one started (their
    keys are not this batch's, see `_keys`). A batch that matches records already there
    waits for them before it updates anything, and looks again: one of them may have
    changed a matched record's ISBN or control number (to one of its own keys), and its
    values must not land after this later batch's."""
    batch = _merge(entries)
    now = dt.datetime.now(dt.timezone.utc)
    sqlite = is_sqlite()
    # What Piccolo's SQLite adapter would make of `now`, made once instead of once a row.
    stamp = str(now) if sqlite else now

    async def find(isbns: list, numbers: list) -> tuple[dict[str, int], dict[str, int]]:
        rows = await _find_in('SELECT id, isbn13, control_number FROM "record"',
                              [("isbn13", isbns), ("control_number", numbers)])
        return {isbn13: i for i, isbn13, _ in rows if isbn13}, {number: i for i, _, number in rows if number}

    async def work() -> tuple[int, int, int, int]:
        connection = engine().current_transaction.get().connection
        if not sqlite:
            return await write(connection)
        async with connection.execute("PRAGMA cache_size") as cursor:
            cache_size = (await cursor.fetchone())["cache_size"]
        await connection.execute(f"PRAGMA cache_size = {-SQLITE_BATCH_CACHE_KIB}")
        try:
            return await write(connection)
        finally:
            await connection.execute(f"PRAGMA cache_size = {int(cache_size)}")

    async def write(connection) -> tuple[int, int, int, int]:
        # The mark first, so that every insert below finds it.
        await connection.execute(_MARK if sqlite else _PG_MARK)
        if sqlite:
            async with connection.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM record), "
                                          "(SELECT COALESCE(MAX(id), 0) FROM item)") as cursor:
                cursor.row_factory = None
                records_before, items_before = await cursor.fetchone()
        logged: list[tuple[str, str, str]] = []  # PostgreSQL: what the insert triggers would have logged
        isbns, numbers = [e[1] for e in batch if e[1]], [e[2] for e in batch if e[2]]
        by_isbn, by_number = await find(isbns, numbers)
        if (by_isbn or by_number) and earlier:
            await asyncio.wait(earlier)  # nothing is written yet: this transaction holds no lock
            by_isbn, by_number = await find(isbns, numbers)
        record_ids: list[int | None] = []
        keyed, unkeyed, updates = [], [], {}
        for _, isbn13, number, row, _ in batch:
            record_id = by_isbn.get(isbn13) if isbn13 else None
            if record_id is None and number:
                record_id = by_number.get(number)
            record_ids.append(record_id)
            if record_id is not None:
                columns = [i for i in range(1, len(ROW_COLUMNS)) if (i != _ISBN or isbn13) and (i != _NUMBER or number)]
                shape = tuple(ROW_COLUMNS[i] for i in columns) + ("updated_at",)
                updates.setdefault(shape, []).append(tuple(row[i] for i in columns) + (stamp, record_id))
            elif isbn13 or number:
                keyed.append(row)
            else:
                unkeyed.append(row)
        created = len(keyed) + len(unkeyed)
        if keyed:
            if sqlite:
                await _sqlite_insert(connection, "record", RECORD_COLUMNS, [row + (stamp, stamp) for row in keyed])
                # One writer, no AUTOINCREMENT: each row took the next id after the highest, in list order.
                async with connection.execute("SELECT MAX(id) FROM record") as cursor:
                    cursor.row_factory = None
                    if (await cursor.fetchone())[0] != records_before + len(keyed):
                        raise RuntimeError("record ids of an import batch are not consecutive")
                ids = list(range(records_before + 1, records_before + 1 + len(keyed)))
            else:
                ids = await _pg_copy_in(connection, "record", RECORD_COLUMNS, keyed, (stamp, stamp))
                logged += [("record", row[0], "") for row in keyed]
            for record_id, row in zip(ids, keyed):
                if row[_ISBN]:
                    by_isbn[row[_ISBN]] = record_id
                if row[_NUMBER]:
                    by_number[row[_NUMBER]] = record_id
        unkeyed_ids = []
        for row in unkeyed:  # nothing to find it by: one at a time
            inserted = await Record.insert(Record(**dict(zip(ROW_COLUMNS, row)))).returning(Record.id)
            unkeyed_ids.append(inserted[0]["id"])
            logged.append(("record", row[0], ""))
        for shape, rows in updates.items():
            await executemany(_update_sql("record", shape), rows)

        barcodes = [holding[1] for entry in batch for holding in entry[4]]
        existing = dict((barcode, i) for i, barcode in await _find_in('SELECT id, barcode FROM "item"',
                                                                      [("barcode", barcodes)]))
        item_rows, item_updates = [], []
        new_at: dict[str, int] = {}  # barcode -> its row in item_rows
        unkeyed_ids.reverse()
        for (_, isbn13, number, _, holdings), record_id in zip(batch, record_ids):
            if record_id is None:
                record_id = (by_isbn.get(isbn13) if isbn13 else None) or (by_number.get(number) if number else None)
                if not (isbn13 or number):
                    record_id = unkeyed_ids.pop()
            for uuid, barcode, home, current, shelf, item_type, status, price, acquired in holdings:
                if barcode in existing:
                    item_updates.append((record_id, home, current, shelf, item_type, status, price, acquired, stamp,
                                         existing[barcode]))
                elif barcode in new_at:
                    # The same barcode twice in one file: one copy, the later holding's values win
                    # (as for records, and as a later batch's would).
                    first = item_rows[new_at[barcode]]
                    item_rows[new_at[barcode]] = (first[0], record_id, barcode, home, current, shelf, item_type,
                                                  status, price, acquired, "", stamp, stamp)
                else:
                    new_at[barcode] = len(item_rows)
                    item_rows.append((uuid, record_id, barcode, home, current, shelf, item_type, status, price,
                                      acquired, "", stamp, stamp))
        if not sqlite:
            await _pg_copy_in(connection, "item", ITEM_COLUMNS, item_rows)
            # What the triggers log as its branches, '|' || concat_ws('|', home, current) || '|':
            # an imported copy always has both.
            logged += [("item", row[0], f"|{row[3]}|{row[4]}|") for row in item_rows]
        else:
            await _sqlite_insert(connection, "item", ITEM_COLUMNS, item_rows)
        await executemany(_update_sql("item", ITEM_UPDATE), item_updates)
        # What the stood-aside triggers would have written, for exactly the rows inserted above.
        if sqlite:
            for sql, after in zip(_SQLITE_LOG_INSERTED, (records_before, records_before, items_before)):
                await connection.execute(sql, (after,))
        elif logged:
            await connection.execute(_PG_LOCK)
            if not await connection.fetchval(_PG_APPLYING):
                await connection.copy_records_to_table("sync_change", records=logged, columns=_LOG_COLUMNS)
        await connection.execute(_UNMARK if sqlite else _PG_UNMARK)
        return created, sum(map(len, updates.values())), len(item_rows), len(item_updates)

    created, updated, items_created, items_updated = await run_in_write_transaction(work)
    report.created += created
    report.updated += updated
    report.items_created += items_created
    report.items_updated += items_updated


async def _apply_safely(entries: list[Entry], report: ImportReport,
                        earlier: frozenset[asyncio.Task] = frozenset()) -> None:
    """A batch that fails as a whole is retried in halves, down to single records, so that one
    bad record skips alone (and a big batch with one bad record costs a few more transactions,
    not one a record)."""
    try:
        await _apply(entries, report, earlier)
    except Exception as error:  # noqa: BLE001 - narrowed below, half by half
        if len(entries) == 1:
            reason = "duplicate ISBN, control number or barcode" if is_unique_violation(error) else \
                f"{type(error).__name__}: {error}"
            report.skipped.append(Skipped(entries[0][0], reason, entries[0][2] or ""))
            return
        middle = len(entries) // 2
        await _apply_safely(entries[:middle], report, earlier)
        await _apply_safely(entries[middle:], report, earlier)


def _keys(entries: list[Entry]) -> set:
    """What a batch's records and copies are found by (ISBNs, control numbers, barcodes): two
    batches with none in common touch different rows (but for records already there, see
    `_apply`). One set for all three: a control number that equals a barcode only makes two
    batches wait for each other."""
    keys = {entry[1] for entry in entries}
    keys.update([entry[2] for entry in entries])
    keys.update([holding[1] for entry in entries for holding in entry[4]])
    keys.discard(None)
    keys.discard("")
    return keys


async def _converted_chunks(data: bytes, flavour: str, today: dt.date, branches: dict[str, int],
                            default_branch: str | None, conversion: converters.Conversion | None = None):
    """Converted chunks in file order, their copies placed at branches: by worker processes for
    big ISO 2709 files (`conversion` when the caller began it, else begun here), in this
    process otherwise (MARCXML, small files)."""
    default_home = branches.get(default_branch or "")
    if conversion is None and not converters.wanted(data):
        entries, skipped, read, seen = convert_chunk(data, 1, flavour, today)
        yield place_copies(entries, branches, default_home), skipped, read, seen
        return
    begun_here = conversion is None
    conversion = conversion or converters.Conversion(data, flavour, today)
    try:
        async for entries, skipped, read, seen in conversion.results():
            yield place_copies(entries, branches, default_home), skipped, read, seen
    finally:
        if begun_here:
            conversion.close()


async def import_marc(data: bytes, actor: str, today: dt.date, flavour: str = "auto",
                      default_branch: str | None = None,
                      progress: Callable[[ImportReport], None] = lambda report: None,
                      imported_by: Principal | None = None,
                      conversion: converters.Conversion | None = None) -> ImportReport:
    """Import every readable record; report what was created, updated and skipped (and why).

    `imported_by`: a staff member may send copies with an unknown branch only to a branch
    they work for. `conversion`: the file's conversion the caller began (and closes), see
    library.catalog.converters.
    """
    if not data.strip():
        raise InvalidInput("marc_empty")
    branches = {row["code"]: row["id"] for row in await Branch.select(Branch.id, Branch.code)}
    if default_branch and imported_by is not None and not imported_by.works_for(branches.get(default_branch, -1)):
        raise InvalidInput("invalid_choice", field="branch")
    report = ImportReport()
    writers = 1 if is_sqlite() else WRITERS_POSTGRES
    writing: dict[asyncio.Task, set] = {}  # batch being written -> its keys, in the order started
    waiting: list[Entry] = []
    converted = False  # the whole file

    async def finish(task: asyncio.Task) -> None:
        del writing[task]
        await task
        progress(report)

    async def flush(wait: bool) -> None:
        # Batches are written (in the database's thread, or side by side on PostgreSQL) while
        # the next ones are converted (see BATCH for their size). `wait`: until a batch is
        # written, unless another one can start at once.
        for task in [task for task in writing if task.done()]:
            await finish(task)
        if wait and writing and (len(writing) >= writers or not waiting):
            await finish(next(iter(writing)))
        while waiting and len(writing) < writers and (converted or len(waiting) >= BATCH // 2):
            size = BATCH
            if converted:  # shared between the free writers, unless that makes small batches
                size = min(BATCH, max(-(-len(waiting) // (writers - len(writing))), BATCH // 10))
            batch = waiting[:size]
            keys = _keys(batch) if writers > 1 else set()
            for task in [task for task, written in writing.items() if not keys.isdisjoint(written)]:
                await finish(task)  # the same record or copy twice: one after the other, in file order
            del waiting[:len(batch)]
            writing[asyncio.create_task(_apply_safely(batch, report, frozenset(writing)))] = keys

    try:
        async for entries, skipped, read, seen in _converted_chunks(data, flavour, today, branches, default_branch,
                                                                         conversion):
            report.read += read
            report.skipped += skipped
            report.flavour = report.flavour or seen
            waiting += entries
            # Converted records wait for the writers up to two batches' worth: taking results
            # (and handing the workers new chunks) goes on while batches are written.
            await flush(wait=len(waiting) >= 2 * BATCH)
        converted = True
        while waiting or writing:
            await flush(wait=True)
    finally:
        for task in writing:
            task.cancel()
        await asyncio.gather(*writing, return_exceptions=True)  # their transactions rolled back
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
