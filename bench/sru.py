"""catalog.sru_search: our /sru answering other libraries' cataloguing clients, over the generated
catalogue of catalog.search (200,000 records with Chinese titles, cached between SQLite runs).

The real server is started; each of the fixed queries (bench.generate.QUERIES) is sent as an
SRU 1.2 searchRetrieve — CQL by ISBN for the ISBN, `cql.serverChoice all "…"` for the rest, ten
records as MARCXML (the record as kept, our changes applied) — one at a time from this process.
The ceiling is the same full-text query run bare against the same database in the same run
(bench.catalog.bare_latencies: the first page's ids by relevance, nothing read beyond them).
The figure is the p95 latency (lower is better). That bare query ranks every match, where /sru
(like GET /api/records) ranks at most search.RANK_ALL_UP_TO of them and takes the rest newest
first, so on broad queries it is slower than the answer; beside it, `statements_p95_ms` is the
database work of the answer itself (count, the page's ids, its ten rows) run bare, and
`ratio_to_statements` what HTTP, CQL, the records' MARC and the XML add to it.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ElementTree

import aiohttp

from bench import generate
from bench.catalog import bare_latencies, served_catalogue, timed_statements
from bench.harness import Measurement
from library.catalog.isbn import Isbn, parse_isbn
from library.catalog.search import BM25, RANK_ALL_UP_TO
from library.catalog.sources.sru import cql_term
from library.catalog.sru import parse_cql, selection

SRW = "{http://www.loc.gov/zing/srw/}"
RECORDS_PER_ANSWER = 10


def cql_of(query: str) -> str:
    """A reader's query as a copying library's client would ask it."""
    if isinstance(parse_isbn(query), Isbn):
        return f"bath.isbn = {query}"
    return f"cql.serverChoice all {cql_term(query)}"


async def sru_latencies(base: str, queries: list[str], rounds: int) -> tuple[Measurement, int]:
    """Each query through GET /sru; the measurement and how many answers held records."""
    result = Measurement(0, 0, 0.0)
    with_records = 0
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for _ in range(rounds):
            for query in queries:
                params = {"version": "1.2", "operation": "searchRetrieve", "query": cql_of(query),
                          "maximumRecords": str(RECORDS_PER_ANSWER), "recordSchema": "marcxml"}
                began = time.perf_counter()
                async with session.get(f"{base}/sru", params=params) as response:
                    body = await response.read()
                result.latencies_ms.append((time.perf_counter() - began) * 1000)
                result.requests += 1
                root = ElementTree.fromstring(body) if response.status == 200 else None
                if root is None or root.find(f"{SRW}diagnostics") is not None:
                    result.errors += 1
                elif int(root.findtext(f"{SRW}numberOfRecords") or 0):
                    with_records += 1
        result.duration_s = time.perf_counter() - started
    return result, with_records


def statement_latencies(env: dict[str, str], engine: str, queries: list[str], rounds: int) -> Measurement:
    """What /sru asks the database for each query (library.catalog.sru._found and _views), bare."""
    matches = [chosen for chosen in (selection(parse_cql(cql_of(query))) for query in queries) if chosen.kind == "match"]

    def on_sqlite(connection, chosen) -> None:
        match = chosen.fts5()
        total = connection.execute("SELECT COUNT(*) FROM record_fts WHERE record_fts MATCH ?", (match,)).fetchone()[0]
        order = f"{BM25}, rowid DESC" if total <= RANK_ALL_UP_TO else "rowid DESC"
        ids = [row[0] for row in connection.execute(
            f"SELECT rowid FROM record_fts WHERE record_fts MATCH ? ORDER BY {order} LIMIT {RECORDS_PER_ANSWER}",
            (match,))]
        connection.execute(f"SELECT * FROM record WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()

    async def on_postgres(connection, chosen) -> None:
        where = "search_vector @@ to_tsquery('simple', $1)"
        match = chosen.tsquery()
        total = await connection.fetchval(f"SELECT COUNT(*) FROM record WHERE {where}", match)
        order = ("ts_rank(search_vector, to_tsquery('simple', $1)) DESC, id DESC"
                 if total <= RANK_ALL_UP_TO else "id DESC")
        ids = [row["id"] for row in await connection.fetch(
            f"SELECT id FROM record WHERE {where} ORDER BY {order} LIMIT {RECORDS_PER_ANSWER}", match)]
        await connection.fetch("SELECT * FROM record WHERE id = ANY($1)", ids)

    return timed_statements(env, engine, matches, rounds, on_sqlite, on_postgres)


def run(engine: str, records: int = 200_000, rounds: int = 5) -> list[dict]:
    with served_catalogue(engine, records) as (env, base, prepare_s):
        queries = list(generate.QUERIES)
        asyncio.run(sru_latencies(base, queries, 1))  # caches, the pinyin tables
        bare = bare_latencies(env, engine, queries, rounds)
        statements = statement_latencies(env, engine, queries, rounds)
        answered, with_records = asyncio.run(sru_latencies(base, queries, rounds))
    p95, bare_p95 = answered.percentile(0.95), bare.percentile(0.95)
    return [{"bench": "catalog.sru_search", "engine": engine, "value": round(p95, 2),
             "unit": "ms p95 (lower is better)", "ceiling": round(bare_p95, 2),
             "ceiling_is": "the bare full-text query, same database, same run",
             "ratio": round(p95 / bare_p95, 2) if bare_p95 else None,
             "p50_ms": round(answered.percentile(0.5), 2), "p95_ms": round(p95, 2),
             "p99_ms": round(answered.percentile(0.99), 2), "bare_p50_ms": round(bare.percentile(0.5), 2),
             "statements_p95_ms": round(statements.percentile(0.95), 2),
             "ratio_to_statements": round(p95 / statements.percentile(0.95), 2) if statements.latencies_ms else None,
             "errors": answered.errors, "requests": answered.requests,
             "answers_with_records": f"{with_records}/{answered.requests}", "records_per_answer": RECORDS_PER_ANSWER,
             "records": records, "prepare_s": round(prepare_s, 1)}]


if __name__ == "__main__":
    import json
    import sys

    for figures in run(sys.argv[1] if len(sys.argv) > 1 else "sqlite"):
        print(json.dumps(figures, ensure_ascii=False))
