"""sync.initial / sync.incremental: branch sync between two real nodes on loopback.

1. The central node: a fresh database (migrated, demo loaded; SQLite by default, or
   `--engine postgres`) with `--records` generated records (Chinese titles, search text
   built as the catalogue builds it) and one copy each at ZX, written with bulk inserts;
   a credential for ZX (`library sync credential`); the real server (uvicorn) started
   with LIBRARY_NODE_ROLE=central.
2. The branch node: a fresh migrated SQLite file (no demo). A second process runs one
   `sync_round` (package → upload → pull, the code `library sync` runs) until the
   initial sync is done; its copies/s is the figure. The branch's copies are checked
   against the central node's copies at ZX.
3. The ceiling, same run: another fresh migrated SQLite file gets the same record and
   item rows the branch now holds (every column, read from the branch's file), inserted
   bare with `executemany` in a few transactions of 10,000 rows, through the same engine
   (same pragmas, same tables, triggers and full-text index, `sync_state.applying` set as
   the branch's apply sets it). Ratio = sync time / bare insert time (target ≤ 3).
4. Incremental, central → branch: 1,000 copies at ZX get a new shelf location at the
   central node (one UPDATE, the change log's triggers log 1,000 changes); one branch
   round is timed end to end (target < 5 s) and the new shelf locations checked at the branch.
5. Incremental, branch → central: 1,000 copies get a new shelf location at the branch;
   one round (package, four uploads of 250, then the pull that brings the central node's
   echo back) is timed and the shelf locations checked at the central node.

JSON lines out: name, value, unit, ceiling, ratio, target, met.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.harness import ROOT, database, server

BRANCH = "ZX"
CHANGES = 1000
CEILING_BATCH = 10_000
FIRST_RECORD = 1_000_000  # far above the demo's own records
INITIAL_TARGET_RATIO = 3.0
INCREMENTAL_TARGET_S = 5.0


# --- child processes (each with one node's settings) ---------------------------------------


async def _seed_central(count: int) -> int:
    """`count` records with one copy each at ZX, bulk inserted (the change log's triggers fire as usual)."""
    from library.branches.tables import Branch
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.catalog.records import row_values, search_text_of
    from library.db import executemany, run_in_write_transaction

    from bench import generate

    zx = (await Branch.select(Branch.id).where(Branch.code == BRANCH).first())["id"]
    now = dt.datetime.now(dt.timezone.utc)
    made = 0
    batch: list[dict] = []

    async def write(rows: list[dict], first: int) -> None:
        async def work() -> None:
            record_rows, item_rows = [], []
            for offset, values in enumerate(rows):
                number = first + offset
                values = {**values, "other_isbns": [], "control_number": None, "parallel_title": "",
                          "series_number": "", "language": "chi", "pages": 32, "summary": "", "cover": "",
                          "call_number": values["clc"] + "/X"}
                values["search_text"] = search_text_of(values)
                full = {**row_values(values), "uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
                record_rows.append((FIRST_RECORD + number, *(full.get(column) for column in RECORD_COLUMNS)))
                item_rows.append((uuid.uuid4(), FIRST_RECORD + number, f"Y{number:07d}", zx, zx, "绘本区",
                                  "picture_book", "available", 2980, dt.date(2026, 3, 1), "", now, now))
            await executemany(_insert_sql("record", ("id", *RECORD_COLUMNS)), record_rows)
            await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)

        await run_in_write_transaction(work)

    for values in generate.records(count, seed=17):
        batch.append(values)
        if len(batch) == 5000:
            await write(batch, made)
            made += len(batch)
            batch = []
    if batch:
        await write(batch, made)
        made += len(batch)
    if "postgres" in os.environ.get("LIBRARY_DATABASE_URL", ""):
        # The explicit ids above do not move the sequence.
        await Branch.raw("SELECT setval(pg_get_serial_sequence('record', 'id'), (SELECT max(id) FROM record))")
        await Branch.raw("ANALYZE")
    return made


async def _round() -> dict:
    """One branch round, as `library sync` runs it, timed inside the process."""
    from library.db import close_connections
    from library.settings import load_settings
    from library.sync.client import sync_round

    began = time.perf_counter()
    report = await sync_round(load_settings())
    elapsed = time.perf_counter() - began
    await close_connections()
    return {"seconds": elapsed, "packaged": report.packaged, "uploaded": report.uploaded,
            "upload_conflicts": report.upload_conflicts, "pages": report.pages, "received": report.received,
            "kept_local": report.kept_local, "refused_here": report.refused_here}


async def _touch_copies(prefix: str, count: int) -> int:
    """New shelf locations for the first `count` generated copies (one UPDATE: the triggers log each row)."""
    from library.db import executemany, run_in_write_transaction

    now = dt.datetime.now(dt.timezone.utc)

    async def work() -> None:
        await executemany("UPDATE item SET shelf_location = {}, updated_at = {} WHERE barcode = {}",
                          [(f"{prefix}-{n % 40:02d}", now, f"Y{n:07d}") for n in range(count)])

    await run_in_write_transaction(work)
    return count


async def _bare_insert(source: str, batch: int) -> dict:
    """The ceiling: the branch's record and item rows inserted bare into this (fresh, migrated) database."""
    from library.db import engine, executemany, run_in_write_transaction

    with sqlite3.connect(source) as connection:
        def rows(table: str) -> tuple[list[str], list[tuple]]:
            cursor = connection.execute(f"SELECT * FROM {table} ORDER BY id")
            return [c[0] for c in cursor.description], cursor.fetchall()

        branch_columns, branches = rows("branch")
        record_columns, records = rows("record")
        item_columns, items = rows("item")

    def insert_sql(table: str, columns: list[str]) -> str:
        quoted = ", ".join(f'"{column}"' for column in columns)
        return f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("{}" for _ in columns)})'

    async def setup() -> None:  # untimed: the branches the copies point at
        await executemany(insert_sql("branch", branch_columns), branches)

    await run_in_write_transaction(setup)
    began = time.perf_counter()
    for table, columns, table_rows in (("record", record_columns, records), ("item", item_columns, items)):
        for start in range(0, len(table_rows), batch):
            chunk = table_rows[start:start + batch]

            async def work(chunk=chunk, table=table, columns=columns) -> None:
                # As the branch's apply does: the change log's triggers see `applying` and log nothing.
                await engine().run_ddl("UPDATE sync_state SET applying = 1 WHERE id = 1")
                await executemany(insert_sql(table, columns), chunk)
                await engine().run_ddl("UPDATE sync_state SET applying = 0 WHERE id = 1")

            await run_in_write_transaction(work)
    elapsed = time.perf_counter() - began
    return {"seconds": elapsed, "records": len(records), "items": len(items)}


def child(env: dict[str, str], function: str, *args) -> tuple[object, float]:
    """Run `function(*args)` of this module in a second process with `env`; (its answer, wall seconds)."""
    code = (f"import asyncio, json, sys; from bench.sync import {function}; "
            f"print(json.dumps(asyncio.run({function}(*json.loads(sys.argv[1])))))")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env={**env, "PICCOLO_CONF": "piccolo_conf"},
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def library(env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run([sys.executable, "-m", "library.cli", *arguments], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"library {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def sqlite_node(**settings: str) -> Iterator[tuple[dict[str, str], Path]]:
    """A fresh migrated SQLite node (no demo), with these LIBRARY_* settings."""
    data_dir = tempfile.mkdtemp(prefix="library-bench-sync-")
    path = Path(data_dir) / "node.sqlite3"
    env = {**os.environ, "LIBRARY_DATA_DIR": data_dir, "LIBRARY_SECRET_KEY": secrets.token_urlsafe(40),
           "LIBRARY_DATABASE_URL": f"sqlite:///{path}", **settings}
    try:
        library(env, "migrate")
        yield env, path
    finally:
        subprocess.run(["rm", "-rf", data_dir], check=False)


# --- reading the two nodes ----------------------------------------------------------------


def _sqlite_rows(path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql, args).fetchall()


def central_rows(env: dict[str, str], sql: str) -> list[tuple]:
    url = env["LIBRARY_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        return _sqlite_rows(Path(url[len("sqlite:///"):]), sql)
    import asyncpg

    async def fetch() -> list[tuple]:
        connection = await asyncpg.connect(url)
        try:
            return [tuple(str(v) if isinstance(v, uuid.UUID) else v for v in row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


ZX_COPIES = ("SELECT i.uuid, i.barcode, i.shelf_location, r.uuid FROM item i JOIN record r ON r.id = i.record "
             "JOIN branch b ON b.id = i.home_branch OR b.id = i.current_branch WHERE b.code = 'ZX' "
             "GROUP BY i.id, i.uuid, i.barcode, i.shelf_location, r.uuid")
BRANCH_COPIES = ("SELECT i.uuid, i.barcode, i.shelf_location, r.uuid FROM item i JOIN record r ON r.id = i.record")


def _copies(rows: list[tuple]) -> dict[str, tuple]:
    return {str(row[0]): tuple(str(v) for v in row[1:]) for row in rows}


# --- the benchmark ------------------------------------------------------------------------


def run(engine: str = "sqlite", records: int = 100_000) -> list[dict]:
    figures: list[dict] = []
    with database(engine) as central_env:
        central_env = {**central_env, "LIBRARY_NODE_ROLE": "central"}
        began = time.perf_counter()
        seeded, _ = child(central_env, "_seed_central", records)
        prepare_s = time.perf_counter() - began
        credential = library(central_env, "sync", "credential", "--branch", BRANCH).strip().splitlines()[-1]
        with server(central_env) as base, \
                sqlite_node(LIBRARY_NODE_ROLE="branch", LIBRARY_BRANCH_CODE=BRANCH, LIBRARY_CENTRAL_URL=base,
                            LIBRARY_SYNC_CREDENTIAL=credential, LIBRARY_SYNC_TIMEOUT_SECONDS="300") as (branch_env, branch_db), \
                sqlite_node(LIBRARY_NODE_ROLE="branch") as (ceiling_env, _):
            # 2. the initial sync
            initial, initial_wall = child(branch_env, "_round")
            central_copies = _copies(central_rows(central_env, ZX_COPIES))
            branch_copies = _copies(_sqlite_rows(branch_db, BRANCH_COPIES))
            copies = len(branch_copies)
            record_count = _sqlite_rows(branch_db, "SELECT COUNT(*) FROM record")[0][0]
            initial_ok = branch_copies == central_copies
            # 3. the ceiling
            bare, _ = child(ceiling_env, "_bare_insert", str(branch_db), CEILING_BATCH)
            ratio = initial["seconds"] / bare["seconds"]
            figures.append({
                "bench": "sync.initial", "engine": engine, "branch_engine": "sqlite",
                "value": round(copies / initial["seconds"], 1), "unit": "copies/s",
                "ceiling": round(bare["items"] / bare["seconds"], 1),
                "ceiling_is": "the same record and item rows inserted bare with executemany into a fresh migrated "
                              "SQLite file (same tables, triggers, full-text index), same run",
                "ratio": round(ratio, 2), "ratio_is": "sync time / bare insert time (lower is better)",
                "target": f"ratio <= {INITIAL_TARGET_RATIO}", "met": ratio <= INITIAL_TARGET_RATIO and initial_ok,
                "sync_s": round(initial["seconds"], 2), "bare_s": round(bare["seconds"], 2),
                "process_wall_s": round(initial_wall, 2), "copies": copies, "records": record_count,
                "changes_received": initial["received"], "pages": initial["pages"],
                "refused_here": initial["refused_here"], "copies_match_central": initial_ok,
                "generated_records": seeded, "prepare_s": round(prepare_s, 1),
            })
            # 4. central → branch
            child(central_env, "_touch_copies", "中心", CHANGES)
            down, down_wall = child(branch_env, "_round")
            after = _copies(_sqlite_rows(branch_db, BRANCH_COPIES))
            down_ok = after == _copies(central_rows(central_env, ZX_COPIES)) and \
                sum(1 for row in after.values() if row[1].startswith("中心-")) == CHANGES
            figures.append({
                "bench": "sync.incremental.down", "engine": engine, "value": round(down["seconds"], 2),
                "unit": f"s for one branch round bringing {CHANGES} central changes (lower is better)",
                "ceiling": None, "ratio": None, "target": f"< {INCREMENTAL_TARGET_S} s",
                "met": down["seconds"] < INCREMENTAL_TARGET_S and down_ok, "process_wall_s": round(down_wall, 2),
                "changes_received": down["received"], "pages": down["pages"], "copies_match_central": down_ok,
            })
            # 5. branch → central
            child(branch_env, "_touch_copies", "分馆", CHANGES)
            up, up_wall = child(branch_env, "_round")
            central_after = _copies(central_rows(central_env, ZX_COPIES))
            branch_after = _copies(_sqlite_rows(branch_db, BRANCH_COPIES))
            up_ok = central_after == branch_after and \
                sum(1 for row in central_after.values() if row[1].startswith("分馆-")) == CHANGES
            figures.append({
                "bench": "sync.incremental.up", "engine": engine, "value": round(up["seconds"], 2),
                "unit": f"s for one branch round sending {CHANGES} branch changes (lower is better)",
                "ceiling": None, "ratio": None, "target": f"< {INCREMENTAL_TARGET_S} s",
                "met": up["seconds"] < INCREMENTAL_TARGET_S and up_ok, "process_wall_s": round(up_wall, 2),
                "uploads": up["uploaded"], "upload_conflicts": up["upload_conflicts"],
                "changes_received": up["received"], "kept_local": up["kept_local"], "copies_match_central": up_ok,
            })
    return figures


os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
