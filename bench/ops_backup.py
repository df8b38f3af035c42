"""ops.backup: `library backup` and `library restore` of a node with N records, 2N copies and a
year of loans, while 16 clients lend and return on a real server (issue 24, part 1).

Figures (one JSON line each):
- `ops.backup`: seconds for `library backup` while the checkout load runs, beside the ceiling
  measured in the same run on the same database: SQLite's bare online backup API
  (`sqlite3.Connection.backup`, no manifest, no checksum) or a bare `pg_dump --format=custom`;
  rows/s and the backup's size; also a plain file copy on SQLite.
- `ops.backup.checkouts`: checkout → checkin cycles/s while backups run back to back, against
  the same load with no backup (goal: at least 0.8×).
- `ops.restore`: seconds for `library restore` of that backup into a fresh database, rows/s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import generate
from bench.harness import ROOT, database, server
from bench.loans import BRANCH, child, cycle_card, http_cycles

LIBRARY = [sys.executable, "-m", "library.cli"]


async def _bulk(records: int) -> dict:
    """N records with two copies each at the branch and a year of returned loans (one a copy
    in two), written as an import writes them; runs in a child with the bench's settings."""
    from library.branches.tables import Branch
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.catalog.records import row_values, search_text_of
    from library.db import executemany, run_in_write_transaction
    from library.accounts.tables import Patron

    branch = (await Branch.select(Branch.id).where(Branch.code == BRANCH).first())["id"]
    readers = [row["id"] for row in await Patron.select(Patron.id).where(
        Patron.card_number.is_in([cycle_card(n) for n in range(200)]))]
    now = dt.datetime.now(dt.timezone.utc)
    first = 3_000_000
    batch = 5000
    loans = 0
    loan_columns = ("uuid", "item", "patron", "patron_category", "branch", "rule_scope", "checked_out_at", "due_on",
                    "due_at", "renewals", "returned_at", "returned_branch", "days_overdue_at_return", "fine_cents",
                    "overrides", "created_by", "updated_at")
    for start in range(0, records, batch):
        count = min(batch, records - start)

        async def work(start: int = start, count: int = count) -> int:
            record_rows, item_rows, loan_rows = [], [], []
            for offset, values in enumerate(generate.records(count, seed=start + 7)):
                number = first + start + offset
                values = {**values, "other_isbns": [], "control_number": None, "parallel_title": "",
                          "series_number": "", "language": "chi", "pages": 32, "summary": "", "cover": "",
                          "call_number": values["clc"] + "/B"}
                values["search_text"] = search_text_of(values)
                full = {**row_values(values), "uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
                record_rows.append((number, *(full.get(column) for column in RECORD_COLUMNS)))
                for copy in range(2):
                    item_rows.append((uuid.uuid4(), number, f"BK{start + offset:07d}{copy}", branch, branch, "",
                                      "book", "available", 2980, None, "", now, now))
            await executemany(_insert_sql("record", ("id", *RECORD_COLUMNS)), record_rows)
            await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)
            ids = [row["id"] for row in await Branch.raw(
                "SELECT id FROM item WHERE barcode >= {} AND barcode < {} ORDER BY id",
                f"BK{start:07d}", f"BK{start + count:07d}")]
            for n, item in enumerate(ids[::2]):
                out = now - dt.timedelta(days=365 * n / max(1, len(ids) // 2), hours=n % 24)
                due = out + dt.timedelta(days=28)
                loan_rows.append((uuid.uuid4(), item, readers[n % len(readers)], "senior", branch, "", out,
                                  due.date(), due, 0, out + dt.timedelta(days=14), branch, 0, 0, "[]", "bench", now))
            await executemany(_insert_sql("loan", loan_columns), loan_rows)
            return len(loan_rows)

        loans += await run_in_write_transaction(work)
    if "postgres" in os.environ.get("LIBRARY_DATABASE_URL", ""):
        await Branch.raw("SELECT setval(pg_get_serial_sequence('record', 'id'), (SELECT max(id) FROM record))")
        await Branch.raw("ANALYZE")
    return {"records": records, "copies": 2 * records, "loans": loans}


def _library(env: dict[str, str], *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run([*LIBRARY, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"library {' '.join(args)}: {done.stderr[-2000:]}")
    return time.perf_counter() - began, done.stdout


def _newest(folder: Path) -> Path:
    return sorted(folder.glob("backup-*"))[-1]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _ceilings(env: dict[str, str], engine: str, scratch: Path) -> dict[str, float]:
    """The same database copied by the bare tools, no manifest, no checks."""
    found: dict[str, float] = {}
    if engine == "sqlite":
        source = env["LIBRARY_DATABASE_URL"][len("sqlite:///"):]
        target = scratch / "bare.sqlite3"
        began = time.perf_counter()
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        found["bare_backup_api_s"] = time.perf_counter() - began
        target.unlink()
        began = time.perf_counter()
        shutil.copyfile(source, target)
        found["file_copy_s"] = time.perf_counter() - began
        target.unlink()
    else:
        began = time.perf_counter()
        subprocess.run(["pg_dump", "--format=custom", "--file", str(scratch / "bare.pgdump"),
                        env["LIBRARY_DATABASE_URL"]], check=True, capture_output=True)
        found["bare_pg_dump_s"] = time.perf_counter() - began
        (scratch / "bare.pgdump").unlink()
    return found


async def _with_backups(env: dict[str, str], base: str, items: int, concurrency: int, duration: float,
                        folder: Path) -> tuple[dict, list[float]]:
    """The checkout load for `duration`, with `library backup` run back to back meanwhile."""
    load = asyncio.create_task(http_cycles(base, items, concurrency, duration))
    times: list[float] = []
    while not load.done():
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*LIBRARY, "backup", "--to", str(folder), "--keep", "1",
                                                       env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        if process.returncode:
            load.cancel()
            raise RuntimeError(f"library backup: {err.decode()[-2000:]}")
        times.append(time.perf_counter() - began)
    return await load, times


def run(engine: str, records: int | None = None, duration: float = 8.0, concurrency: int = 16) -> list[dict]:
    records = records or 200_000
    items = max(2000, concurrency * 50)
    scratch = Path(tempfile.mkdtemp(prefix="library-bench-backup-"))
    try:
        with database(engine) as env:
            began = time.perf_counter()
            child(env, "_seed", items)
            seeded = _bulk_in_child(env, records)
            prepare_s = time.perf_counter() - began
            folder = scratch / "backups"
            ceilings = _ceilings(env, engine, scratch)
            idle_s, _ = _library(env, "backup", "--to", str(folder), "--keep", "1")
            with server(env) as base:
                # Without backups before and after the round with them, the faster one kept as the
                # ceiling: a freshly loaded PostgreSQL was still vacuuming during the first round,
                # which made a backup look like it doubled the desk's speed.
                before = asyncio.run(http_cycles(base, items, concurrency, duration))
                busy, times = asyncio.run(_with_backups(env, base, items, concurrency, duration, folder))
                after = asyncio.run(http_cycles(base, items, concurrency, duration))
                quiet = max(before, after, key=lambda run: run["measurement"].rate)
            made = _newest(folder)
            manifest = json.loads((made / "manifest.json").read_text())
            rows = sum(manifest["counts"].values())
            size = _size(made)
            restore_env, restore_dir = _fresh(env, engine, scratch)
            try:
                restore_s, _ = _library(restore_env, "restore", str(made))
            finally:
                _drop(restore_env, engine, restore_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    backup_s = min(times) if times else idle_s
    ceiling_s = ceilings.get("bare_backup_api_s") or ceilings.get("bare_pg_dump_s")
    quiet_rate = quiet["measurement"].rate
    busy_rate = busy["measurement"].rate
    bare = "sqlite3 backup API" if engine == "sqlite" else "pg_dump --format=custom"
    common = {"engine": engine, **seeded, "rows": rows, "prepare_s": round(prepare_s, 1), "clients": concurrency}
    return [
        {"bench": "ops.backup", "value": round(backup_s, 2), "unit": "s (lower is better), under checkout load",
         "ceiling": round(ceiling_s, 2), "ceiling_is": f"bare {bare}, same database, same run",
         "ratio": round(backup_s / ceiling_s, 3) if ceiling_s else None, "idle_s": round(idle_s, 2),
         "backups_during_load": len(times), "rows_per_s": round(rows / backup_s) if backup_s else None,
         "size_bytes": size, **{k: round(v, 3) for k, v in ceilings.items()}, "errors": 0, **common},
        {"bench": "ops.backup.checkouts", "value": round(busy_rate, 1), "unit": "cycles/s while backups run",
         "ceiling": round(quiet_rate, 1), "ceiling_is": "the same load, no backup, same run",
         "ratio": round(busy_rate / quiet_rate, 3) if quiet_rate else None, "goal": 0.8,
         "p50_ms": round(busy["measurement"].percentile(0.5), 2),
         "p99_ms": round(busy["measurement"].percentile(0.99), 2),
         "errors": busy["measurement"].errors, "error_kinds": busy["error_kinds"], **common},
        {"bench": "ops.restore", "value": round(restore_s, 2), "unit": "s (lower is better), into a fresh database",
         "rows_per_s": round(rows / restore_s) if restore_s else None, "size_bytes": size, "errors": 0, **common},
    ]


def _bulk_in_child(env: dict[str, str], records: int) -> dict:
    code = ("import json, sys; from bench.loans import run; from bench.ops_backup import _bulk; "
            "print(json.dumps(run(_bulk(int(sys.argv[1])))))")
    done = subprocess.run([sys.executable, "-c", code, str(records)], env={**env, "PICCOLO_CONF": "piccolo_conf"},
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fresh(env: dict[str, str], engine: str, scratch: Path) -> tuple[dict[str, str], Path]:
    """Settings of a second, empty node to restore into."""
    data_dir = scratch / "restored"
    data_dir.mkdir()
    fresh = {**env, "LIBRARY_DATA_DIR": str(data_dir)}
    if engine == "sqlite":
        fresh["LIBRARY_DATABASE_URL"] = f"sqlite:///{data_dir}/restored.sqlite3"
    else:
        name = f"library_bench_restore_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", env["LIBRARY_DATABASE_URL"], "-c", f'CREATE DATABASE "{name}"'], check=True,
                       capture_output=True)
        fresh["LIBRARY_DATABASE_URL"] = env["LIBRARY_DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    return fresh, data_dir


def _drop(env: dict[str, str], engine: str, data_dir: Path) -> None:
    if engine != "sqlite":
        url = env["LIBRARY_DATABASE_URL"]
        name = url.rsplit("/", 1)[1]
        subprocess.run(["psql", url.rsplit("/", 1)[0] + "/postgres", "-c",
                        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                        "-c", f'DROP DATABASE IF EXISTS "{name}"'], check=False, capture_output=True)
    shutil.rmtree(data_dir, ignore_errors=True)
