"""Catalogue benchmarks: search over a generated catalogue, and a 50,000-record MARC import.

catalog.search: 200,000 records with Chinese titles and 400,000 copies are written into a
fresh database (cached between runs for SQLite under bench/.cache); the real server is
started; each query of a fixed list is sent through GET /api/records one at a time, and
the same full-text query is run bare against the same database file in the same run.
The figure is the API's p95 latency; the ceiling is the bare query's p95 (lower is better).
Beside it: searches per second and p95 with 8 and with 32 clients at once, and the server's
very first request (a pinyin search) against the same search warm. `--records 1000000`
is the city's scale (2,000,000 copies).
The same run gives catalog.search_features (field and phrase queries), catalog.search_facets
(the fixed queries with facets=true) and catalog.did_you_mean (misspelt queries that find
nothing and are offered a respelling), each against the same ceiling.

catalog.marc_import: a 50,000-record MARC21 file (--records) is generated; pymarc alone reads it
(the ceiling); then `library catalog import` imports it into a fresh database as a user would,
and again (unchanged); then it is staged and committed as two commands. Each command's peak
resident memory is reported beside its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench import generate
from bench.harness import ROOT, Measurement, database, server

CACHE = ROOT / "bench" / ".cache"


def _schema_key() -> str:
    names = sorted(p.name for p in (ROOT / "library").glob("*/piccolo_migrations/*.py"))
    return hashlib.sha1("|".join(names).encode()).hexdigest()[:10]


async def _populate(count: int) -> None:
    """Records and two copies each, written with the import's own bulk statements."""
    from library.branches.tables import Branch
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.catalog.records import row_values, search_text_of
    from library.db import executemany, run_in_write_transaction

    branches = [row["id"] for row in await Branch.select(Branch.id).order_by(Branch.id)]
    now = dt.datetime.now(dt.timezone.utc)
    batch: list[dict] = []

    async def write(rows: list[dict], first_id: int) -> None:
        async def work() -> None:
            record_rows, item_rows = [], []
            for offset, values in enumerate(rows):
                values = {**values, "other_isbns": [], "control_number": None, "parallel_title": "",
                          "series_number": "", "language": "chi", "pages": 32, "summary": "", "cover": "",
                          "call_number": values["clc"] + "/X"}
                values["search_text"] = search_text_of(values)
                full = {**row_values(values), "uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
                record_rows.append(tuple(full.get(column) for column in RECORD_COLUMNS))
                record_id = first_id + offset
                for copy in range(2):
                    branch = branches[(record_id + copy) % len(branches)]
                    status = "available" if (record_id * 7 + copy) % 5 else "on_loan"
                    item_rows.append((uuid.uuid4(), record_id, f"G{record_id:07d}{copy}", branch, branch, "", "book",
                                      status, 2980, None, "", now, now))
            await executemany(_insert_sql("record", RECORD_COLUMNS), record_rows)
            await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)

        await run_in_write_transaction(work)

    next_id = 1
    for values in generate.records(count):
        batch.append(values)
        if len(batch) == 2000:
            await write(batch, next_id)
            next_id += len(batch)
            batch = []
    if batch:
        await write(batch, next_id)


def populate(env: dict[str, str], count: int) -> None:
    """Fill the bench database: in a child process, so it uses the bench database's settings."""
    code = ("import asyncio, sys; from bench.catalog import _populate; asyncio.run(_populate(int(sys.argv[1])))")
    subprocess.run([sys.executable, "-c", code, str(count)], env={**env, "PICCOLO_CONF": "piccolo_conf"},
                   cwd=ROOT, check=True)
    if env["LIBRARY_DATABASE_URL"].startswith("postgres"):
        import asyncpg

        # As after an import: without statistics the planner took 0.25-0.5 s to find an exact
        # title at 200,000 records (it walked the primary key backwards), and autovacuum comes
        # when it comes. VACUUM also sets the visibility map and the hint bits once, here.
        async def vacuum() -> None:
            connection = await asyncpg.connect(env["LIBRARY_DATABASE_URL"])
            try:
                for table in ("record", "item"):
                    await connection.execute(f"VACUUM (ANALYZE) {table}")
            finally:
                await connection.close()

        asyncio.run(vacuum())


def sqlite_file(env: dict[str, str]) -> Path:
    return Path(env["LIBRARY_DATABASE_URL"][len("sqlite:///"):])


def prepared(env: dict[str, str], engine: str, count: int) -> None:
    """A populated database; for SQLite the populated file is kept and copied next time."""
    if engine != "sqlite":
        populate(env, count)
        return
    cached = CACHE / f"catalog-{count}-{_schema_key()}.sqlite3"
    target = sqlite_file(env)
    if not cached.exists():
        populate(env, count)
        CACHE.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(target) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(target, cached)
    else:
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        shutil.copyfile(cached, target)


def timed_statements(env: dict[str, str], engine: str, items: list, rounds: int,
                     on_sqlite: Callable[[sqlite3.Connection, Any], None],
                     on_postgres: Callable[[Any, Any], Awaitable[None]]) -> Measurement:
    """What one item costs the database alone, `rounds` times over the items, one after another on
    a connection of its own (no pool, no server): `on_sqlite(connection, item)` or
    `await on_postgres(connection, item)` (an asyncpg connection), each call timed."""
    result = Measurement(0, 0, 0.0)
    started = time.perf_counter()
    if engine == "sqlite":
        connection = sqlite3.connect(sqlite_file(env))
        for _ in range(rounds):
            for item in items:
                began = time.perf_counter()
                on_sqlite(connection, item)
                result.latencies_ms.append((time.perf_counter() - began) * 1000)
                result.requests += 1
        connection.close()
    else:
        import asyncpg

        async def run() -> None:
            connection = await asyncpg.connect(env["LIBRARY_DATABASE_URL"])
            for _ in range(rounds):
                for item in items:
                    began = time.perf_counter()
                    await on_postgres(connection, item)
                    result.latencies_ms.append((time.perf_counter() - began) * 1000)
                    result.requests += 1
            await connection.close()

        asyncio.run(run())
    result.duration_s = time.perf_counter() - started
    return result


def bare_latencies(env: dict[str, str], engine: str, queries: list[str], rounds: int) -> Measurement:
    """The full-text query alone, first page by relevance, straight on the database."""
    from library.catalog.isbn import Isbn, parse_isbn
    from library.catalog.search_text import fts5_query, parse_query, tsquery

    def terms(query: str):
        isbn = parse_isbn(query)
        return parse_query(isbn.isbn13 if isinstance(isbn, Isbn) else query)

    def on_sqlite(connection: sqlite3.Connection, query: str) -> None:
        connection.execute("SELECT rowid FROM record_fts WHERE record_fts MATCH ? ORDER BY bm25(record_fts) LIMIT 20",
                           (fts5_query(terms(query)),)).fetchall()

    async def on_postgres(connection, query: str) -> None:
        await connection.fetch("SELECT id FROM record WHERE search_vector @@ to_tsquery('simple', $1) "
                               "ORDER BY ts_rank(search_vector, to_tsquery('simple', $1)) DESC LIMIT 20",
                               tsquery(terms(query)))

    return timed_statements(env, engine, queries, rounds, on_sqlite, on_postgres)


async def api_latencies(base: str, queries: list[str], rounds: int, concurrency: int = 1,
                        extra: dict[str, str] | None = None) -> tuple[Measurement, int, int]:
    """Each query through GET /api/records; the measurement, how many found something, and how
    many offered a "did you mean"."""
    result = Measurement(0, 0, 0.0)
    hits = suggested = 0
    work = [query for _ in range(rounds) for query in queries]
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            nonlocal hits, suggested
            while work:
                query = work.pop()
                began = time.perf_counter()
                async with session.get(f"{base}/api/records", params={"q": query, **(extra or {})}) as response:
                    body = await response.json()
                result.latencies_ms.append((time.perf_counter() - began) * 1000)
                result.requests += 1
                if response.status != 200:
                    result.errors += 1
                else:
                    hits += body["total"] > 0
                    suggested += bool(body.get("did_you_mean"))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.duration_s = time.perf_counter() - started
    return result, hits, suggested


# What a cataloguer types beyond words (catalog.search_features), and misspellings of the
# generated catalogue's words that find nothing (catalog.did_you_mean: each should be offered
# the right spelling).
FEATURE_QUERIES = ["au:宫西达也", "ti:小熊", "su:恐龙 冒险", '"rainbow moon"', "clc:I287", "ti:月光 au:几米",
                   "isbn:978-7-0000-0100-8", "小熊 clc:I712", '"小熊和"', "au:gxdy"]
MISSPELT = ["dinosuar", "rainbw", "caterpiller", "pengiun", "butterfy", "毛毛重", "恐笼", "小兄 冒险"]


async def one_at_a_time(base: str, query: str, times: int) -> list[float]:
    """Milliseconds of each search, each on a connection of its own (as a first visitor's is)."""
    latencies = []
    for _ in range(times):
        async with aiohttp.ClientSession() as session:
            began = time.perf_counter()
            async with session.get(f"{base}/api/records", params={"q": query}) as response:
                await response.read()
                response.raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


# Issue 20, part 3: a pinyin search right after the start, against the same search warm.
FIRST_QUERY = "maomaochong"


@contextlib.contextmanager
def served_catalogue(engine: str, records: int) -> Iterator[tuple[dict[str, str], str, float]]:
    """A fresh database holding the generated catalogue (`prepared`) and the real server on it:
    (the database's settings, the server's URL, seconds the catalogue took to be ready)."""
    with database(engine) as env:
        began = time.perf_counter()
        prepared(env, engine, records)
        prepare_s = time.perf_counter() - began
        with server(env) as base:
            yield env, base, prepare_s


def search(engine: str, records: int = 200_000, rounds: int = 5) -> list[dict]:
    """The API's p95 over the fixed queries (catalog.search), over field and phrase queries
    (catalog.search_features), over the fixed queries with facets counted
    (catalog.search_facets), and over misspelt queries that find nothing and get a suggestion
    (catalog.did_you_mean); each beside the bare full-text query's p95."""
    with served_catalogue(engine, records) as (env, base, prepare_s):
        [first_ms] = asyncio.run(one_at_a_time(base, FIRST_QUERY, 1))
        queries = list(generate.QUERIES)
        for warm in (queries, FEATURE_QUERIES, MISSPELT):  # caches, the pinyin tables
            asyncio.run(api_latencies(base, warm, 1, extra={"facets": "true"}))
        bare = bare_latencies(env, engine, queries, rounds)
        api, hits, _ = asyncio.run(api_latencies(base, queries, rounds))
        loaded, _, _ = asyncio.run(api_latencies(base, queries, rounds * 2, concurrency=8))
        crowded, _, _ = asyncio.run(api_latencies(base, queries, rounds * 4, concurrency=32))
        features, feature_hits, _ = asyncio.run(api_latencies(base, FEATURE_QUERIES, rounds))
        faceted, _, _ = asyncio.run(api_latencies(base, queries, rounds, extra={"facets": "true"}))
        misspelt, misspelt_hits, suggested = asyncio.run(api_latencies(base, MISSPELT, rounds))
        warm_ms = sorted(asyncio.run(one_at_a_time(base, FIRST_QUERY, 21)))[10]
    bare_p95 = bare.percentile(0.95)

    def figure(bench: str, measured: Measurement, **more) -> dict:
        p95 = measured.percentile(0.95)
        return {"bench": bench, "engine": engine, "value": round(p95, 2), "unit": "ms p95 (lower is better)",
                "ceiling": round(bare_p95, 2), "ceiling_is": "the bare full-text query, same database, same run",
                "ratio": round(p95 / bare_p95, 2) if bare_p95 else None, "p50_ms": round(measured.percentile(0.5), 2),
                "p95_ms": round(p95, 2), "p99_ms": round(measured.percentile(0.99), 2),
                "errors": measured.errors, "requests": measured.requests, "records": records, **more}

    return [
        figure("catalog.search", api, bare_p50_ms=round(bare.percentile(0.5), 2),
               errors=api.errors + loaded.errors + crowded.errors, queries_with_hits=f"{hits}/{api.requests}",
               throughput_rps_at_8=round(loaded.rate, 1), p95_ms_at_8=round(loaded.percentile(0.95), 2),
               throughput_rps_at_32=round(crowded.rate, 1), p95_ms_at_32=round(crowded.percentile(0.95), 2),
               items=records * 2, prepare_s=round(prepare_s, 1),
               first_search_ms=round(first_ms, 2), warm_search_p50_ms=round(warm_ms, 2),
               first_search_ratio=round(first_ms / warm_ms, 2),
               first_search_is=f"GET /api/records?q={FIRST_QUERY} as the server's first request, against its p50 "
                               "warm (21 times), each on a new connection"),
        figure("catalog.search_features", features, queries=FEATURE_QUERIES,
               queries_with_hits=f"{feature_hits}/{features.requests}"),
        figure("catalog.search_facets", faceted, facets_counted_over_at_most=_facet_limit()),
        figure("catalog.did_you_mean", misspelt, queries=MISSPELT,
               suggested=f"{suggested}/{misspelt.requests}", found_anyway=misspelt_hits),
    ]


def _facet_limit() -> int | None:
    try:
        from library.catalog.search import FACET_LIMIT
    except ImportError:  # an older tree: no facets
        return None
    return FACET_LIMIT


def _peak_rss_kib(pid: int) -> int:
    """A live process's peak resident set (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return []


def run_measured(command: list[str], env: dict[str, str]) -> dict:
    """`command` run to its end: seconds, output, and the peak resident set of the process itself
    (its VmHWM, read every 20 ms while it runs: the high-water mark, so only growth in its last
    20 ms could be missed) and of its biggest child (the converter processes)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err, text=True)
        own = children = 0
        while process.poll() is None:
            own = max(own, _peak_rss_kib(process.pid))
            for child in _children(process.pid):
                children = max(children, _peak_rss_kib(child))
            time.sleep(0.02)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        return {"seconds": seconds, "returncode": process.returncode, "stdout": out.read(), "stderr": err.read(),
                "peak_rss_mb": round(own / 1024, 1), "children_peak_rss_mb": round(children / 1024, 1)}


def marc_import(engine: str, records: int = 50_000) -> list[dict]:
    """The whole import as a user runs it (`library catalog import FILE`: staged and committed in
    one go), then the same file again (every record unchanged: nothing is written); and, in a
    second fresh database, the file staged (`--stage-only`) and committed (`library catalog
    commit`) as two commands, each timed."""
    import pymarc

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"marc-{records}.mrc"
    if not path.exists():
        path.write_bytes(generate.marc_file(records))

    def pymarc_read() -> tuple[int, float]:
        began = time.perf_counter()
        with path.open("rb") as handle:  # read as pymarc reads a file: record by record
            read = sum(1 for _ in pymarc.MARCReader(handle, to_unicode=True, force_utf8=True, permissive=True))
        return read, time.perf_counter() - began

    library = [sys.executable, "-m", "library.cli", "catalog"]
    staged = {}
    with database(engine) as env:
        # The ceiling is read right before and right after the import and averaged: on a
        # shared machine the speed of the processor drifts by a third within minutes. The
        # second reading waits until the database is gone, so that none of the import's
        # after-work (checkpoint, autovacuum) slows it and flatters the ratio.
        read, before_s = pymarc_read()
        done = run_measured([*library, "import", str(path)], env)
        again = run_measured([*library, "import", str(path)], env) if _supports_staging() else None
    if _supports_staging():
        with database(engine) as env:
            stage = run_measured([*library, "import", "--stage-only", str(path)], env)
            batch = next((line.split()[1] for line in stage["stdout"].splitlines() if line.startswith("batch ")), "")
            commit = run_measured([*library, "commit", batch], env)
            staged = {"stage_s": round(stage["seconds"], 2), "commit_s": round(commit["seconds"], 2),
                      "stage_peak_rss_mb": stage["peak_rss_mb"], "commit_peak_rss_mb": commit["peak_rss_mb"],
                      "staged_errors": int(stage["returncode"] != 0 or commit["returncode"] != 0
                                           or f"new {records}" not in commit["stdout"]),
                      "staged_output": commit["stdout"].strip().splitlines()[-1:] or commit["stderr"][-300:]}
    _, after_s = pymarc_read()
    pymarc_s = (before_s + after_s) / 2
    import_s = done["seconds"]
    ok = done["returncode"] == 0 and (f"new {records}" in done["stdout"] or f"created {records}" in done["stdout"])
    figures = {
        "bench": "catalog.marc_import", "engine": engine, "value": round(records / import_s, 1),
        "unit": "records/s", "ceiling": round(read / pymarc_s, 1), "ceiling_is": "pymarc alone reading the file",
        "ratio": round(import_s / pymarc_s, 2), "ratio_is": "import time / pymarc read time (lower is better)",
        "import_s": round(import_s, 2), "pymarc_s": round(pymarc_s, 2),
        "pymarc_before_after_s": [round(before_s, 2), round(after_s, 2)], "records": records,
        "peak_rss_mb": done["peak_rss_mb"], "peak_rss_is": "the importing process's VmHWM",
        "converters_peak_rss_mb": done["children_peak_rss_mb"],
        "errors": 0 if ok else 1,
        "output": done["stdout"].strip().splitlines()[-1:] if done["stdout"].strip() else done["stderr"][-300:],
    }
    if again is not None:
        figures.update({"reimport_s": round(again["seconds"], 2), "reimport_peak_rss_mb": again["peak_rss_mb"],
                        "reimport_output": again["stdout"].strip().splitlines()[-1:] or again["stderr"][-300:]})
    figures.update(staged)
    return [figures]


def _supports_staging() -> bool:
    """Whether `library catalog import` stages (so that the figures of this tree and of older
    ones can be taken with the same bench)."""
    return (ROOT / "library" / "catalog" / "batches.py").exists()


os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
