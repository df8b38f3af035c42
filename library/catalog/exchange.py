"""Importing MARC into the catalogue: batches of records, each batch one transaction.

A file is read from disk and converted (in worker processes for a big one, see
library.catalog.converters), each record handed back as the row it becomes (columns in table
order, JSON already text, its whole MARC packed, its match keys computed), so this process
only matches and writes: one lookup of candidates per batch, the matching rules'
decision per record (library.catalog.matching), then one statement per kind of row
(multi-row VALUES on SQLite, COPY on PostgreSQL).

Every record read has exactly one outcome, so the counts add up:
read = new + matched (overlaid) + unchanged + ignored + refused. A record matched to one
already catalogued whose values (and MARC) would not change is *unchanged*: nothing is
written for it, so re-importing a file leaves no change-log rows. An overlay keeps the
record's local edits (library.catalog.marc_record.overlay_values). A record that shares an
ISBN or control number with another but is not matched is added and flagged as a possible
duplicate in the same transaction, never merged. What each record did is kept in the
batch's rows (ImportBatchRecord), which is what undoing an import reads
(library.catalog.batches).

The same pass *stages* a file (`mode="stage"`): it looks up, decides and counts, writing
nothing but the batch's own rows (its refusals, warnings, matches).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from library.catalog import converters
from library.catalog.conversion import MARC_COLUMNS, ROW_COLUMNS, Entry, Refusal, note_json, place_copies
from library.catalog.conversion import RECORD_COLUMNS as IMPORT_COLUMNS
from library.catalog.marc_record import overlay_values
from library.catalog.matching import DEFAULT_POINTS, NEW, Keys, MatchPoint, decide, keys_of, needs_title_lookup
from library.catalog.records import JSON_COLUMNS, VALUE_COLUMNS
from library.catalog.tables import Item, Record
from library.db import (engine, executemany, is_sqlite, is_unique_violation, refresh_planner_statistics,
                        run_in_write_transaction)

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
# PostgreSQL: an import that wrote at least this many records and copies refreshes the planner's
# statistics of both tables at its end (db.refresh_planner_statistics); a small one leaves them to
# autovacuum.
ANALYZE_AFTER = 1000
# SQLite: the page cache of a batch's connection while it writes (KiB; restored before the
# COMMIT, so the pooled connection keeps its own). A batch touches pages all over the
# indexes of titles and ISBNs; with the default 2 MB it read them again from the file
# (bench, into an empty catalogue: 3% of the write side; more as the catalogue grows).
SQLITE_BATCH_CACHE_KIB = 65536
# SQLite: at most this many parameters a statement (SQLite's own default limit since 3.32;
# a build with a lower one is asked).
SQLITE_MAX_PARAMETERS = 32766
# Refusals are written to the batch's rows once this many wait (and at the end).
REFUSALS_AT_ONCE = 1000

# What code that writes records in bulk without MARC (bench data, test fixtures) fills, by
# name: the uuid, the values and the two timestamps; the MARC columns keep their defaults.
RECORD_COLUMNS = ("uuid", *VALUE_COLUMNS, "created_at", "updated_at")
ITEM_COLUMNS = ("uuid", "record", "barcode", "home_branch", "current_branch", "shelf_location", "item_type", "status",
                "price_cents", "acquired_on", "withdrawn_reason", "created_at", "updated_at")
# What an import sets on a copy that is already there (its status only while circulation has
# no say in it: see `_copy_changes`).
ITEM_UPDATE = ("record", "home_branch", "current_branch", "shelf_location", "item_type", "status", "price_cents",
               "acquired_on")
# A copy's status that only circulation changes: an import does not put a copy on loan back on the shelf.
CIRCULATING = ("on_loan", "in_transit", "on_hold_shelf")
# What an overlay writes, and what "unchanged" compares (marc_source aside: where a record
# last came from is not a change of it).
OVERLAY_COLUMNS = (*VALUE_COLUMNS, *MARC_COLUMNS, "local_edits")
COMPARED_COLUMNS = tuple(column for column in OVERLAY_COLUMNS if column != "marc_source")
CANDIDATE_COLUMNS = ("id", "uuid", *OVERLAY_COLUMNS)
BATCH_RECORD_COLUMNS = ("batch", "position", "outcome", "record", "control_number", "title", "reason", "reason_note",
                        "warnings", "byte_offset", "byte_length", "previous", "copies")
DUPLICATE_COLUMNS = ("record", "other", "reason", "status", "found_by", "found_at", "decided_by")
_JSON_OVERLAY = frozenset(JSON_COLUMNS) | {"local_edits"}
_AT = {column: i for i, column in enumerate(ROW_COLUMNS)}
_ISBN, _NUMBER, _TITLE, _UUID = _AT["isbn13"], _AT["control_number"], _AT["title"], _AT["uuid"]
_OTHER_ISBNS = _AT["other_isbns"]


@dataclass
class ImportCounts:
    """What an import (or a staging) did, record by record: read = new + matched + unchanged +
    ignored + refused, always. `with_warnings` and `possible_duplicates` are among those."""

    read: int = 0
    new: int = 0
    matched: int = 0
    unchanged: int = 0
    ignored: int = 0
    refused: int = 0
    with_warnings: int = 0
    possible_duplicates: int = 0
    copies_new: int = 0
    copies_changed: int = 0
    flavour: str = ""

    def add(self, other: ImportCounts) -> None:
        for name in ("new", "matched", "unchanged", "ignored", "refused", "with_warnings", "possible_duplicates",
                     "copies_new", "copies_changed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def accounted(self) -> int:
        return self.new + self.matched + self.unchanged + self.ignored + self.refused


@dataclass
class ImportReport(ImportCounts):
    """The counts of a one-call import (`import_marc`), with its batch and every refused record
    (position, control number, title, reason). `created`, `updated`, `items_created`,
    `items_updated` are the older names of new, matched, copies_new, copies_changed."""

    batch: str = ""
    skipped: list[Refusal] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.new

    @property
    def updated(self) -> int:
        return self.matched

    @property
    def items_created(self) -> int:
        return self.copies_new

    @property
    def items_updated(self) -> int:
        return self.copies_changed


@dataclass
class ImportRun:
    """One pass over a file, into one batch (ImportBatch)."""

    batch_id: int
    batch_uuid: str
    mode: str = "commit"  # or "stage": decide and count, write only the batch's own rows
    on_match: str = "overlay"  # add, overlay, ignore (MatchAction)
    points: tuple[MatchPoint, ...] = DEFAULT_POINTS
    counts: ImportCounts = field(default_factory=ImportCounts)
    refusals: list[Refusal] = field(default_factory=list)  # waiting to be written

    @property
    def found_by(self) -> str:
        return f"import {self.batch_uuid}"


# --- SQL helpers ---------------------------------------------------------------------------


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """One row's INSERT with {} placeholders, for code that writes rows by name (bench data, test
    fixtures); a MARC text column left out (None) takes its default."""
    values = ", ".join("COALESCE({}, '')" if column in MARC_COLUMNS else "{}" for column in columns)
    return f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({values})'


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
    # (Their full-text index is written from the rows themselves: see `_fts_sections`.)
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
# SQLite: the full-text index's columns (the view record_search's, catalog migration
# 2026-12-07T08:30:00), which a batch fills from the search texts it has in hand.
_FTS_COLUMNS = ("rowid", "title", "author", "subject", "other")
_SEARCH_TEXT = _AT["search_text"]


def _fts_sections(search_text: str | None) -> tuple:
    """A search text cut into the index's four sections exactly as the view record_search cuts
    it (section n lies between the (n-1)th and the nth "|" of the text followed by "||||", with
    SQLite's trim: spaces only); what a later delete takes out of the index must be what went
    in. Cut here rather than read through the view: SQLite flattens the view's nested
    subqueries and works out every "|" position again for each use of it (measured: the
    view's SELECT took 1.9 s of CPU for 50,000 records, the whole index writing 0.4 s more)."""
    if search_text is None:
        return (None, None, None, None)
    parts = (search_text + "||||").split("|", 4)
    return (parts[0].strip(" "), parts[1].strip(" "), parts[2].strip(" "), parts[3].strip(" "))


async def _sqlite_parameter_limit(connection) -> int:
    """How many parameters one statement may take on this connection. Asked once a connection:
    every question waits its turn in the connection's thread (60 of them, 0.36 s of a
    50,000-record import's writing while the converters kept the processors busy)."""
    limit = getattr(connection, "_library_parameter_limit", None)
    if limit is None:
        limit = min(await connection._execute(connection._conn.getlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER),
                    SQLITE_MAX_PARAMETERS)
        connection._library_parameter_limit = limit
    return limit


async def _sqlite_insert(connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """SQLite: the rows in as few INSERT ... VALUES (...), (...) statements as its limit on
    parameters allows, in order. Not executemany: with triggers and foreign keys every
    statement keeps a statement journal (in a temporary file by default), and the pages a
    row touches were written there again for every row — 1.5 million writes for 50,000
    records and 75,000 copies; the whole write side took 40% less time this way.

    Statements of a few sizes only: full ones, then the rest in parts of a power of two rows.
    sqlite3 keeps each connection's last 128 prepared statements, a full one of some 3 MB,
    and the pooled connections live as long as the import: with a statement for every size a
    batch happened to leave over, a 250,000-record file held 230 MB in them (bench
    catalog.marc_import's peak RSS)."""
    if not rows:
        return
    per_statement = max(1, await _sqlite_parameter_limit(connection) // len(columns))
    one = "(" + ", ".join("?" for _ in columns) + ")"
    head = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES '
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = per_statement if left >= per_statement else 1 << (left.bit_length() - 1)
        part = rows[start:start + size]
        await connection.execute(head + ", ".join([one] * size), list(itertools.chain.from_iterable(part)))
        start += size


async def _insert_rows(connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Rows in bulk on either engine (no ids wanted back)."""
    if not rows:
        return
    if is_sqlite():
        await _sqlite_insert(connection, table, columns, rows)
    else:
        await connection.copy_records_to_table(table, records=rows, columns=columns)


async def _find_in(select: str, column_lists: list[tuple[str, list]], order: str = "") -> list[tuple]:
    """The rows of `select` WHERE column IN (values) OR ..., each once, on either engine."""
    column_lists = [(column, values) for column, values in column_lists if values]
    if not column_lists:
        return []
    connection = engine().current_transaction.get().connection
    if is_sqlite():
        # One query per column and per slice under SQLite's limit on parameters (a batch of
        # 5,000 records may name more barcodes than a stock build's 32,766).
        limit = await _sqlite_parameter_limit(connection)
        found: dict[Any, tuple] = {}
        for column, values in column_lists:
            for start in range(0, len(values), limit):
                part = values[start:start + limit]
                # Padded to a power of two with its last value: a few statement sizes for sqlite3
                # to keep prepared (see `_sqlite_insert`), not one for every batch.
                part = part + [part[-1]] * (min(limit, 1 << (len(part) - 1).bit_length()) - len(part))
                async with connection.execute(f"{select} WHERE {column} IN ({', '.join('?' for _ in part)})",
                                              part) as cursor:
                    cursor.row_factory = None  # plain tuples, not the engine's dicts
                    for row in await cursor.fetchall():
                        found[row[0]] = row  # a row found twice counts once (the first column is its id)
        return [found[key] for key in sorted(found)] if order else list(found.values())
    where = " OR ".join(f"{column} = ANY(${n}::text[])" for n, (column, _) in enumerate(column_lists, start=1))
    return [tuple(row) for row in await connection.fetch(f"{select} WHERE {where}{order}",
                                                         *[values for _, values in column_lists])]


# --- deciding ---------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else (value if value is not None else [])


def _canonical(values: dict[str, Any]) -> tuple:
    """What two sets of record values are compared by: JSON columns as their parsed values."""
    return tuple(json.dumps(_json(values.get(column)), ensure_ascii=False, sort_keys=True)
                 if column in _JSON_OVERLAY else (values.get(column) if values.get(column) is not None else None)
                 for column in COMPARED_COLUMNS)


def _incoming_values(row: tuple) -> dict[str, Any]:
    values = dict(zip(ROW_COLUMNS, row))
    for column in JSON_COLUMNS:
        values[column] = _json(values[column])
    values["local_edits"] = []
    return values


def _candidate_values(row: tuple) -> dict[str, Any]:
    values = dict(zip(CANDIDATE_COLUMNS, row))
    values["uuid"] = str(values["uuid"])
    for column in _JSON_OVERLAY:
        values[column] = _json(values[column])
    for column in MARC_COLUMNS:
        values[column] = values[column] or ""
    return values


@dataclass
class _Target:
    """A record an incoming one may be matched to: one already catalogued (`record_id`), or one
    this batch adds (`pending`, its index among the batch's new rows)."""

    keys: Keys
    values: dict[str, Any] | None  # parsed values (for an overlay); None for a pending row until needed
    record_id: int | None = None
    pending: int | None = None
    before: dict[str, Any] | None = None  # a catalogued record's values before this batch's first overlay


@dataclass
class _Plan:
    """What a batch writes, decided record by record in file order."""

    counts: ImportCounts
    new_rows: list[tuple] = field(default_factory=list)
    new_entries: list[Entry] = field(default_factory=list)  # the entry each new row came from (the last one)
    overlays: dict[int, _Target] = field(default_factory=dict)  # record id -> its target, values final
    # (entry, outcome, target, reason) in file order
    outcomes: list[tuple[Entry, str, _Target | None, str]] = field(default_factory=list)
    flags: list[tuple[_Target, _Target, str]] = field(default_factory=list)  # (new record, other, reason)


def _plan(entries: list[Entry], candidates: list[tuple], run: ImportRun, title_lookup: bool) -> _Plan:
    """The decision for each record of a batch, against the records found for the batch and the
    ones the batch itself adds before it (found the way the database finds them, so that a
    decision does not depend on where the batches of a file begin and end)."""
    plan = _Plan(ImportCounts())
    counts = plan.counts
    by_isbn: dict[str, list[_Target]] = {}
    by_number: dict[str, list[_Target]] = {}
    by_title: dict[str, list[_Target]] = {}

    def index(target: _Target, isbn13: str | None, number: str | None, title: str | None) -> None:
        if isbn13:
            by_isbn.setdefault(isbn13, []).append(target)
        if number:
            by_number.setdefault(number, []).append(target)
        if title and title_lookup:
            by_title.setdefault(title, []).append(target)

    for row in candidates:  # oldest first
        values = _candidate_values(row)
        target = _Target(keys_of(values), values, record_id=values["id"])
        index(target, values["isbn13"], values["control_number"], values["title"])

    mode_overlay = run.mode == "stage" or run.on_match == "overlay"
    for entry in entries:
        row, keys = entry.row, entry.keys
        found: dict[int, _Target] = {}
        for isbn13 in keys.isbns:
            for target in by_isbn.get(isbn13, ()):
                found[id(target)] = target
        for target in by_number.get(keys.control_number, ()) if keys.control_number else ():
            found[id(target)] = target
        if title_lookup:
            for target in by_title.get(row[_TITLE], ()):
                found[id(target)] = target
        if found:
            # Catalogued records oldest first, then this batch's own in file order.
            ordered = sorted(found.values(), key=lambda t: (t.record_id is None, t.record_id or 0, t.pending or 0))
            decision = decide(keys, [(i, target.keys) for i, target in enumerate(ordered)], run.points)
        else:  # what `decide` says of a record nothing was found for (most of a new file's)
            ordered, decision = [], NEW
        if entry.warnings:
            counts.with_warnings += 1
        if decision.kind == "matched":
            target = ordered[decision.record_id]
            incoming = _incoming_values(row)
            if target.values is None:  # a pending row: its values as planned
                target.values = _incoming_values(plan.new_rows[target.pending])
            after = overlay_values(target.values, incoming) if target.record_id is not None else incoming
            if _canonical(after) == _canonical(target.values):
                counts.unchanged += 1
                plan.outcomes.append((entry, "unchanged", target, decision.reason))
                continue
            if mode_overlay:
                counts.matched += 1
                if target.record_id is not None:
                    if target.before is None:
                        target.before = dict(target.values)
                    after["marc_source"] = incoming["marc_source"]
                    after["id"], after["uuid"] = target.values["id"], target.values["uuid"]
                    target.values = after
                    plan.overlays[target.record_id] = target
                else:  # a record this batch adds, read again later in the file: the later values win
                    replaced = row[:_UUID] + (plan.new_rows[target.pending][_UUID],) + row[_UUID + 1:]
                    plan.new_rows[target.pending] = replaced
                    plan.new_entries[target.pending] = entry
                    target.values = _incoming_values(replaced)
                plan.outcomes.append((entry, "matched", target, decision.reason))
                continue
            if run.on_match == "ignore":
                counts.ignored += 1
                plan.outcomes.append((entry, "ignored", target, decision.reason))
                continue
            # "add": the incoming record is added, and flagged as a possible duplicate of its match.
            duplicates = [(target, decision.reason)]
        else:
            duplicates = [(ordered[i], reason) for i, reason in decision.duplicates]
        mine = _Target(keys, None, pending=len(plan.new_rows))
        plan.new_rows.append(row)
        plan.new_entries.append(entry)
        index(mine, row[_ISBN], row[_NUMBER], row[_TITLE])
        counts.new += 1
        if duplicates:
            counts.possible_duplicates += 1
            plan.flags += [(mine, other, reason[:32]) for other, reason in duplicates]
        plan.outcomes.append((entry, "new", mine, duplicates[0][1] if duplicates else ""))
    return plan


def _notes(warnings: list) -> str:
    return json.dumps([note_json(note) for note in warnings], ensure_ascii=False, default=str) if warnings else "[]"


# --- copies ---------------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _copy_changes(existing: tuple, wanted: tuple) -> tuple | None:
    """The values a copy already there gets from the file (ITEM_UPDATE order), or None when they
    are its own already. Its status stays while it circulates (on loan, in transit, on the hold
    shelf): circulation decides when that ends."""
    if existing[7] in CIRCULATING:
        wanted = wanted[:5] + (existing[7],) + wanted[6:]
    if tuple(map(_text, existing[2:10])) == tuple(map(_text, wanted)):
        return None
    return wanted


# --- writing ----------------------------------------------------------------------------------


async def _apply(entries: list[Entry], run: ImportRun, earlier: frozenset[asyncio.Task] = frozenset()) -> None:
    """Write one batch: look its candidates up, decide, write what changes.

    `earlier`: the batches of this import still being written when this one started (their
    keys are not this batch's, see `_keys`). A batch that matches records already there
    waits for them before it writes anything, and looks again: one of them may have
    changed a matched record's ISBN or control number (to one of its own keys), and its
    values must not land after this later batch's."""
    now = dt.datetime.now(dt.timezone.utc)
    sqlite = is_sqlite()
    commit = run.mode == "commit"
    # What Piccolo's SQLite adapter would make of `now`, made once instead of once a row.
    stamp = str(now) if sqlite else now
    title_lookup = needs_title_lookup(run.points)

    async def find() -> list[tuple]:
        isbns = sorted({isbn for entry in entries for isbn in entry.keys.isbns})
        numbers = sorted({entry.keys.control_number for entry in entries if entry.keys.control_number})
        lists = [("isbn13", isbns), ("control_number", numbers)]
        if title_lookup:
            lists.append(("title", sorted({entry.row[_TITLE] for entry in entries})))
        return await _find_in(f'SELECT {", ".join(CANDIDATE_COLUMNS)} FROM "record"', lists, " ORDER BY id")

    async def work() -> ImportCounts:
        connection = engine().current_transaction.get().connection
        if not sqlite or not commit:
            return await write(connection)
        async with connection.execute("PRAGMA cache_size") as cursor:
            cache_size = (await cursor.fetchone())["cache_size"]
        await connection.execute(f"PRAGMA cache_size = {-SQLITE_BATCH_CACHE_KIB}")
        try:
            return await write(connection)
        finally:
            await connection.execute(f"PRAGMA cache_size = {int(cache_size)}")

    async def write(connection) -> ImportCounts:
        if commit:
            # The mark first, so that every insert below finds it.
            await connection.execute(_MARK if sqlite else _PG_MARK)
        if sqlite and commit:
            async with connection.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM record), "
                                          "(SELECT COALESCE(MAX(id), 0) FROM item)") as cursor:
                cursor.row_factory = None
                records_before, items_before = await cursor.fetchone()
        candidates = await find()
        if candidates and earlier:
            await asyncio.wait(earlier)  # nothing is written yet: this transaction holds no lock
            candidates = await find()
        plan = _plan(entries, candidates, run, title_lookup)
        logged: list[tuple[str, str, str]] = []  # PostgreSQL: what the insert triggers would have logged
        if commit and plan.new_rows:
            if sqlite:
                await _sqlite_insert(connection, "record", IMPORT_COLUMNS, [row + (stamp, stamp) for row in plan.new_rows])
                # One writer, no AUTOINCREMENT: each row took the next id after the highest, in list order.
                async with connection.execute("SELECT MAX(id) FROM record") as cursor:
                    cursor.row_factory = None
                    if (await cursor.fetchone())[0] != records_before + len(plan.new_rows):
                        raise RuntimeError("record ids of an import batch are not consecutive")
                ids = list(range(records_before + 1, records_before + 1 + len(plan.new_rows)))
            else:
                ids = await _pg_copy_in(connection, "record", IMPORT_COLUMNS, plan.new_rows, (stamp, stamp))
                logged += [("record", row[_UUID], "") for row in plan.new_rows]
        else:
            ids = [None] * len(plan.new_rows)
        if commit and plan.overlays:
            shape = (*OVERLAY_COLUMNS, "updated_at")
            await executemany(_update_sql("record", shape), [
                tuple(json.dumps(target.values[c], ensure_ascii=False) if c in _JSON_OVERLAY else target.values[c]
                      for c in OVERLAY_COLUMNS) + (stamp, record_id)
                for record_id, target in plan.overlays.items()])

        def record_id_of(target: _Target) -> int | None:
            return target.record_id if target.record_id is not None else ids[target.pending]

        def uuid_of(target: _Target | None) -> str | None:
            if target is None:
                return None
            if target.record_id is not None:
                return target.values["uuid"]
            return plan.new_rows[target.pending][_UUID]

        if commit and plan.flags:
            rows = [(record_id_of(mine), record_id_of(other), reason, "open", run.found_by, stamp, "")
                    for mine, other, reason in plan.flags]
            await _insert_rows(connection, "possible_duplicate", DUPLICATE_COLUMNS, rows)

        # Copies, in file order: the same barcode twice in a file is one copy, the later values win.
        barcodes = sorted({holding[1] for entry in entries for holding in entry.holdings})
        existing = {row[1]: row for row in await _find_in(
            'SELECT id, barcode, record, home_branch, current_branch, shelf_location, item_type, status, price_cents, '
            'acquired_on, uuid FROM "item"', [("barcode", barcodes)])}
        item_rows: list[list] = []
        new_at: dict[str, int] = {}  # barcode -> its row in item_rows
        item_updates: dict[int, tuple] = {}  # item id -> values (ITEM_UPDATE)
        copies_of: dict[int, dict[str, list]] = {}  # id(entry) -> {"created": [...], "changed": [...]}
        for entry, outcome, target, _ in plan.outcomes:
            if not entry.holdings:
                continue
            record_id = record_id_of(target) if target is not None else None
            mine = copies_of.setdefault(id(entry), {"created": [], "changed": []})
            for uuid, barcode, home, current, shelf, item_type, status, price, acquired in entry.holdings:
                wanted = (record_id, home, current, shelf, item_type, status, price, acquired)
                if barcode in new_at:
                    first = item_rows[new_at[barcode]]
                    item_rows[new_at[barcode]] = [first[0], record_id, barcode, home, current, shelf, item_type,
                                                  status, price, acquired, "", stamp, stamp, first[13]]
                elif barcode in existing:
                    there = existing[barcode]
                    if there[0] in item_updates:  # changed earlier in this batch: from what it becomes
                        there = there[:2] + item_updates[there[0]] + there[10:]
                    changes = _copy_changes(there, wanted) if record_id is not None or not commit else None
                    if changes is not None:
                        if there[0] not in item_updates:
                            mine["changed"].append([str(there[10]), dict(zip(ITEM_UPDATE, map(_text, there[2:10])))])
                        item_updates[there[0]] = changes
                else:
                    new_at[barcode] = len(item_rows)
                    item_rows.append([uuid, record_id, barcode, home, current, shelf, item_type, status, price,
                                      acquired, "", stamp, stamp, mine])
        for row in item_rows:
            row[13]["created"].append(row[0])
        plan.counts.copies_new = len(item_rows)
        plan.counts.copies_changed = len(item_updates)
        if commit:
            rows = [tuple(row[:13]) for row in item_rows]
            if sqlite:
                await _sqlite_insert(connection, "item", ITEM_COLUMNS, rows)
            elif rows:
                await connection.copy_records_to_table("item", records=rows, columns=ITEM_COLUMNS)
                # What the triggers log as its branches, '|' || concat_ws('|', home, current) || '|':
                # an imported copy always has both.
                logged += [("item", row[0], f"|{row[3]}|{row[4]}|") for row in rows]
            await executemany(_update_sql("item", (*ITEM_UPDATE, "updated_at")),
                              [values + (stamp, item_id) for item_id, values in item_updates.items()])

        # The batch's own rows: what each record did (see ImportBatchRecord).
        batch_rows = []
        for entry, outcome, target, reason in plan.outcomes:
            copies = copies_of.get(id(entry))
            wrote_copies = bool(copies and (copies["created"] or copies["changed"]))
            if outcome == "unchanged" and not entry.warnings and not wrote_copies:
                continue
            if not commit and outcome == "new" and not entry.warnings and not reason:
                continue  # staged: only what a librarian looks at before committing
            previous = ""
            if commit and outcome == "matched" and target.record_id is not None and target.before is not None:
                previous = json.dumps(target.before, ensure_ascii=False, default=str)
                target.before = None  # kept once: on the first row that overlaid it in this batch
            row = entry.row
            batch_rows.append((run.batch_id, entry.position, outcome, uuid_of(target), row[_NUMBER] or "",
                               row[_TITLE], reason, "{}", _notes(entry.warnings), entry.offset, entry.length, previous,
                               msgspec.json.encode(copies).decode() if commit and wrote_copies else ""))
        await _insert_rows(connection, "import_batch_record", BATCH_RECORD_COLUMNS, batch_rows)

        if commit:
            # What the stood-aside triggers would have written, for exactly the rows inserted above.
            if sqlite:
                await _sqlite_insert(connection, "record_fts", _FTS_COLUMNS, [
                    (record_id, *_fts_sections(row[_SEARCH_TEXT])) for record_id, row in zip(ids, plan.new_rows)])
                for sql, after in zip(_SQLITE_LOG_INSERTED, (records_before, items_before)):
                    await connection.execute(sql, (after,))
            elif logged:
                await connection.execute(_PG_LOCK)
                if not await connection.fetchval(_PG_APPLYING):
                    await connection.copy_records_to_table("sync_change", records=logged, columns=_LOG_COLUMNS)
            await connection.execute(_UNMARK if sqlite else _PG_UNMARK)
        return plan.counts

    counts = await run_in_write_transaction(work)
    run.counts.add(counts)


async def _write_refusals(run: ImportRun) -> None:
    """The refusals waiting, into the batch's rows (where their bytes are, to download them)."""
    refusals, run.refusals = run.refusals, []
    if not refusals:
        return
    rows = [(run.batch_id, r.position, "refused", None, r.control_number or "", r.title or "", str(r.reason),
             json.dumps(note_json(r.reason), ensure_ascii=False, default=str), "[]", r.offset, r.length, "", "")
            for r in refusals]

    async def work() -> None:
        connection = engine().current_transaction.get().connection
        await _insert_rows(connection, "import_batch_record", BATCH_RECORD_COLUMNS, rows)

    await run_in_write_transaction(work)


async def _apply_safely(entries: list[Entry], run: ImportRun, earlier: frozenset[asyncio.Task] = frozenset()) -> None:
    """A batch that fails as a whole is retried in halves, down to single records, so that one
    bad record is refused alone (and a big batch with one bad record costs a few more
    transactions, not one a record). A batch's counts are taken only once it has committed, so
    a record is counted once whatever was retried."""
    try:
        await _apply(entries, run, earlier)
    except Exception as error:  # noqa: BLE001 - narrowed below, half by half
        if len(entries) == 1:
            entry = entries[0]
            reason = "duplicate barcode or key" if is_unique_violation(error) else f"{type(error).__name__}: {error}"
            run.refusals.append(Refusal(entry.position, entry.offset, entry.length, entry.row[_NUMBER] or "",
                                        entry.row[_TITLE], reason))
            run.counts.refused += 1
            return
        middle = len(entries) // 2
        await _apply_safely(entries[:middle], run, earlier)
        await _apply_safely(entries[middle:], run, earlier)


def _keys(entries: list[Entry], titles: bool) -> set:
    """What a batch's records and copies are found by (ISBNs, control numbers, titles when a
    match point needs them, barcodes): two batches with none in common touch different rows
    (but for records already there, see `_apply`). One set for all: a control number that
    equals a barcode only makes two batches wait for each other."""
    keys: set = set()
    for entry in entries:
        keys.update(entry.keys.isbns)
        keys.add(entry.keys.control_number)
        if titles:
            keys.add(entry.row[_TITLE])
        keys.update([holding[1] for holding in entry.holdings])
    keys.discard(None)
    keys.discard("")
    return keys


async def import_file(conversion: converters.Conversion, run: ImportRun, branches: dict[str, int],
                      default_branch: str | None = None,
                      progress: Callable[[ImportCounts], None] = lambda counts: None) -> ImportCounts:
    """Every record of the file `conversion` reads, into the batch of `run`: staged or committed
    (run.mode). `branches`: code -> id; `default_branch`: the code copies with an unknown branch
    go to. Returns the counts (also in run.counts), which add up to the records read."""
    counts = run.counts
    default_home = branches.get(default_branch or "")
    writers = 1 if is_sqlite() else WRITERS_POSTGRES
    titles = needs_title_lookup(run.points)
    writing: dict[asyncio.Task, set] = {}  # batch being written -> its keys, in the order started
    waiting: list[Entry] = []
    converted = False  # the whole file

    async def finish(task: asyncio.Task) -> None:
        del writing[task]
        await task
        progress(counts)

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
            keys = _keys(batch, titles) if writers > 1 else set()
            for task in [task for task, written in writing.items() if not keys.isdisjoint(written)]:
                await finish(task)  # the same record or copy twice: one after the other, in file order
            del waiting[:len(batch)]
            writing[asyncio.create_task(_apply_safely(batch, run, frozenset(writing)))] = keys

    try:
        async for entries, refusals, read, seen in conversion.results():
            counts.read += read
            counts.refused += len(refusals)
            counts.flavour = counts.flavour or seen
            run.refusals += refusals
            waiting += place_copies(entries, branches, default_home)
            if len(run.refusals) >= REFUSALS_AT_ONCE:
                await _write_refusals(run)
            # Converted records wait for the writers up to two batches' worth: taking results
            # (and handing the workers new chunks) goes on while batches are written.
            await flush(wait=len(waiting) >= 2 * BATCH)
        converted = True
        while waiting or writing:
            await flush(wait=True)
        await _write_refusals(run)
    finally:
        for task in writing:
            task.cancel()
        await asyncio.gather(*writing, return_exceptions=True)  # their transactions rolled back
    progress(counts)
    if counts.accounted != counts.read:  # every record read has one outcome: anything else is a bug
        raise RuntimeError(f"import counts do not add up: read {counts.read}, accounted for {counts.accounted}")
    if counts.new + counts.matched + counts.copies_new >= ANALYZE_AFTER:
        await refresh_planner_statistics(Record._meta.tablename, Item._meta.tablename)
    return counts
