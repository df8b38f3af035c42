"""sync.network: one central node on PostgreSQL serving N branch nodes at once, over HTTP.

PostgreSQL only (the city network's production engine): the admin URL comes from
`--postgres-url`, else LIBRARY_BENCH_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test;
the benchmark creates its own fresh database there and drops it at the end. If no server
answers, it stops with a message saying so.

1. Setup, not timed (a child process with the central node's settings): `library migrate`,
   `library demo` (JX, ZX, XZ), then branches B001..BNNN made the way the demo makes its
   branches (`library.demo._ensure_branch`: the branch row, opening hours like Zhenxing's);
   for each, COPIES generated records with one copy each there (bulk inserts, the change
   log's triggers firing as for any import) and READERS readers (one real Argon2 PIN hash,
   shared, so the readers' images are the size they are in life); OPEN_LOANS real checkouts
   per branch (`library.loans.service.checkout`, today); a credential per branch
   (`library.sync.service.issue_credential`).
2. The real server (uvicorn, `--workers`, LIBRARY_NODE_ROLE=central; its background loops
   (notices, change-log compaction) off, so that only sync requests are measured).
3. A second process drives N simulated branches at once, each with its own HTTP client and
   keep-alive connection (httpx), as a branch node's `library sync` does it:
   - the initial pull: every page of GET /api/sync/changes (limit 2,000, the client's page
     size) from cursor "" to the end;
   - "a day's circulation" at that branch: CHECKOUTS checkouts of copies on its shelf and
     RETURNS returns of its open loans, built from the images the feed gave it with only
     what a checkout / a checkin changes (library.loans.service): the loan (new, or with
     returned_at, returned_branch) and the copy (on_loan / available, current branch = this
     branch, due_back). Due date, rule and rule scope are those of the branch's open loans,
     made today at the same branch for the same kind of reader and copy. Packaged as
     `package_changes` packages them (copies, then loans, in event order; 250 a
     transaction) and sent with POST /api/sync/uploads;
   - the incremental pull from the cursor the initial pull ended on, to the end; it must
     bring the branch's own loans back (the central node's echo).
   Every non-200 answer (or a dropped connection) is an error. Requests are bounded: at
   most MAX_PAGES_PER_PULL pages a pull, REQUEST_TIMEOUT_S a request, RUN_DEADLINE_S in all.
4. Checked afterwards in the central database: every uploaded loan is there (checkouts
   open, at their branch; returns closed, at their branch), the copies on loan at each
   branch add up, and which conflicts were recorded. While the branches run, the database's
   sessions are sampled (pg_stat_activity: how many wait on the change log's advisory lock)
   with the machine's CPU.
5. Ceilings, same run:
   - requests/s: GET /api/ping of the same server with N clients (the harness's ceiling);
   - feed pages: the SQL statements feed.py runs for each page the branches fetched, recorded
     by running `library.sync.feed.changes` itself for the same branch and cursor (untimed,
     with Piccolo's engine patched to note every statement: whatever feed.py runs today is
     what is replayed), then replayed bare with asyncpg against the same database on a pool
     as large as the server's (20 connections a worker): N branches at once, each branch's
     pages in order, each page started when its HTTP request started (the same concurrency
     as the HTTP run, without the uploads). A log page is replayed over the same span of the
     log the branch read (its cursor to the cursor it was given back). Then the same pages
     one at a time ("alone": what a page's SQL costs with nothing else running), for at
     most SERIAL_REPLAY_S.

JSON lines out: sync.network (req/s), sync.network.feed_page (p99 ms against the bare SQL),
sync.network.upload (ms, errors, loans found).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

from bench.harness import DEFAULT_POSTGRES_ADMIN, ROOT, Measurement, database, drive, get_json, server

BRANCHES = 50
COPIES = 200  # records, one copy each, per simulated branch
READERS = 50  # readers registered at each simulated branch
OPEN_LOANS = 40  # open loans per branch before the day (real checkouts, today)
CHECKOUTS = 40  # a day's circulation at one branch
RETURNS = 30
PACKAGE_SIZE = 250  # changes per upload transaction (library.sync.client.PACKAGE_SIZE)
PAGE_SIZE = 2000  # feed rows per page (library.sync.client.PAGE_SIZE)
SERVER_POOL_PER_WORKER = 20  # library.app: start_connection_pool(min_size=2, max_size=20)
MAX_PAGES_PER_PULL = 1000
REQUEST_TIMEOUT_S = 120.0
RUN_DEADLINE_S = 600.0
PING_SECONDS = 4.0
SERIAL_REPLAY_S = 60.0  # at most this long replaying pages' SQL one at a time
FIRST_RECORD = 2_000_000  # far above the demo's own record ids


def branch_code(number: int, count: int) -> str:
    return f"B{number:0{max(3, len(str(count)))}d}"


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def percentile(values: list[float], fraction: float) -> float:
    return Measurement(len(values), 0, 0.0, values).percentile(fraction)


# --- setup (child process with the central node's settings) -----------------------------------


async def _seed(count: int, copies: int, readers: int, open_loans: int) -> dict:
    """The simulated branches with their copies, readers, open loans and credentials."""
    from library.accounts.hashing import hash_secret
    from library.branches.tables import Branch
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.catalog.records import row_values, search_text_of
    from library.db import engine, executemany, run_in_write_transaction
    from library.demo import _ensure_branch, _network_admin
    from library.loans import service as loans
    from library.sync.service import issue_credential

    from bench import generate

    await engine().start_connection_pool(min_size=2, max_size=4)
    try:
        codes = [branch_code(n, count) for n in range(1, count + 1)]
        hours = {weekday: [(dt.time(8, 30), dt.time(11, 30)), (dt.time(13, 30), dt.time(20, 30))]
                 for weekday in range(1, 7)}
        for n, code in enumerate(codes, start=1):
            await _ensure_branch({
                "code": code, "name_zh": f"社区智慧书房 {n}", "name_en": f"Community smart study room {n}",
                "kind": "smart_study_room", "address_zh": f"嘉兴市社区服务中心 {n} 号",
                "address_en": f"Community service centre no. {n}, Jiaxing", "closes_on_public_holidays": True,
                "hours": hours, "rooms": [("STUDY", "书房", "Study room", 30, ["quiet"])], "closures": []})
        ids = {row["code"]: row["id"] for row in await Branch.raw("SELECT id, code FROM branch")}
        now = dt.datetime.now(dt.timezone.utc)
        pin_hash = await hash_secret("123456")
        patron_columns = ("uuid", "card_number", "name", "category", "home_branch", "phone", "email", "language",
                          "expires_on", "block_reason", "pin_hash", "created_at", "updated_at")
        generated = generate.records(count * copies, seed=29)
        per_batch = max(1, 5000 // copies)
        for start in range(0, count, per_batch):
            batch = codes[start:start + per_batch]

            async def work(batch: list[str] = batch, start: int = start) -> None:
                record_rows, item_rows, patron_rows = [], [], []
                for offset, code in enumerate(batch):
                    for k in range(copies):
                        number = (start + offset) * copies + k
                        values = next(generated)
                        values = {**values, "other_isbns": [], "control_number": None, "parallel_title": "",
                                  "series_number": "", "language": "chi", "pages": 32, "summary": "", "cover": "",
                                  "call_number": values["clc"] + "/X"}
                        values["search_text"] = search_text_of(values)
                        full = {**row_values(values), "uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
                        record_rows.append((FIRST_RECORD + number, *(full.get(column) for column in RECORD_COLUMNS)))
                        item_rows.append((uuid.uuid4(), FIRST_RECORD + number, f"{code}-{k:05d}", ids[code],
                                          ids[code], "绘本区", "picture_book", "available", 2980,
                                          dt.date(2026, 3, 1), "", now, now))
                    for k in range(readers):
                        patron_rows.append((uuid.uuid4(), f"R{code}{k:05d}", f"读者{code}-{k}", "adult", ids[code],
                                            "", "", "zh_CN", dt.date(2099, 12, 31), None, pin_hash, now, now))
                await executemany(_insert_sql("record", ("id", *RECORD_COLUMNS)), record_rows)
                await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)
                await executemany(_insert_sql("patron", patron_columns), patron_rows)

            await run_in_write_transaction(work)
        # The explicit ids above do not move the sequence.
        await Branch.raw("SELECT setval(pg_get_serial_sequence('record', 'id'), (SELECT max(id) FROM record))")
        await Branch.raw("ANALYZE")

        admin = _network_admin()
        lent = 0
        queue = [(code, k) for code in codes for k in range(min(open_loans, copies))]

        async def lender() -> None:
            nonlocal lent
            while queue:
                code, k = queue.pop()
                await loans.checkout(admin, code, f"R{code}{k % readers:05d}", f"{code}-{k:05d}",
                                     dt.datetime.now(dt.timezone.utc))
                lent += 1

        await asyncio.gather(*(lender() for _ in range(3)))
        credentials = {code: await issue_credential(code, "bench") for code in codes}
        await Branch.raw("ANALYZE")
        return {"credentials": credentials, "open_loans": lent}
    finally:
        await engine().close_connection_pool()


def child(env: dict[str, str], function: str, *args) -> object:
    """`function(*args)` of this module in a second process with `env`; its answer."""
    code = (f"import asyncio, json, sys; from bench.sync_network import {function}; "
            f"print(json.dumps(asyncio.run({function}(*json.load(sys.stdin)))))")
    # the arguments on standard input: the pages of a run are too many for a command line
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(args),
                          env={**env, "PICCOLO_CONF": "piccolo_conf"}, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the simulated branches (the second process) -----------------------------------------------


ORDER = {"patron": 2, "guardian_link": 3, "record": 4, "item": 5, "loan": 6, "hold": 7, "transit": 8,
         "transfer": 9}  # library.sync.entities.ORDER, for packaging as package_changes does


class SimulatedBranch:
    """What a branch node keeps of the feed for this benchmark: its own copies, loans and readers."""

    def __init__(self, code: str, credential: str, base: str, started: float, deadline: float) -> None:
        import httpx

        self.code = code
        self.started = started
        self.deadline = deadline
        self.client = httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S,
                                        headers={"Authorization": f"Bearer {credential}",
                                                 "Accept": "application/json"},
                                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        self.me: str | None = None
        self.items: dict[str, dict] = {}
        self.loans: dict[str, dict] = {}
        self.readers: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.echoed: set[str] = set()
        self.checked_out: list[str] = []
        self.returned: list[str] = []
        self.problems: list[str] = []

    def keep(self, changes: list[dict], phase: str) -> None:
        for change in changes:
            kind, image = change["kind"], change["image"]
            if phase == "incremental":
                self.echoed.add(change["uuid"])
            if image is None:
                continue
            if kind == "branch" and image["code"] == self.code:
                self.me = image["uuid"]
            elif kind == "item":
                self.items[image["uuid"]] = image
            elif kind == "loan":
                self.loans[image["uuid"]] = image
            elif kind == "patron" and self.me is not None and image["home_branch"] == self.me:
                self.readers[image["uuid"]] = image

    async def request(self, what: str, phase: str, method: str, url: str, **kwargs) -> tuple[bytes | None, dict]:
        import httpx

        note = {"branch": self.code, "what": what, "phase": phase, "status": None}
        if time.perf_counter() > self.deadline:
            note["status"] = "deadline"
            self.requests.append(note)
            return None, note
        began = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
            body = response.content
            note["status"] = response.status_code
        except httpx.HTTPError as error:
            body = None
            note["status"] = type(error).__name__
        ended = time.perf_counter()
        note.update(at_s=began - self.started, end_s=ended - self.started, ms=(ended - began) * 1000,
                    bytes=len(body or b""))
        self.requests.append(note)
        if note["status"] != 200:
            self.problems.append(f"{method} {url} {note['status']} {(body or b'')[:200].decode(errors='replace')}")
            return None, note
        return body, note

    async def pull(self, cursor: str, phase: str) -> str | None:
        import msgspec

        for _ in range(MAX_PAGES_PER_PULL):
            body, note = await self.request("page", phase, "GET", "/api/sync/changes",
                                            params={"cursor": cursor, "limit": PAGE_SIZE})
            if body is None:
                return None
            page = msgspec.json.decode(body)
            note.update(cursor=cursor, next=page["cursor"], limit=PAGE_SIZE, snapshot=bool(page.get("snapshot")),
                        changes=len(page["changes"]))
            self.keep(page["changes"], phase)
            cursor = page["cursor"]
            if not page.get("more"):
                return cursor
        self.problems.append(f"pull stopped after {MAX_PAGES_PER_PULL} pages")
        return None

    def day(self) -> list[dict]:
        """The day's checkouts and returns as the branch node's change log would package them."""
        me = self.me
        shelf = sorted((i for i in self.items.values() if i["current_branch"] == me and i["status"] == "available"),
                       key=lambda i: i["barcode"])
        out = sorted((loan for loan in self.loans.values() if loan["branch"] == me and loan["returned_at"] is None
                      and self.items.get(loan["item"], {}).get("current_branch") == me),
                     key=lambda loan: (loan["checked_out_at"], loan["uuid"]))
        readers = sorted(self.readers.values(), key=lambda p: p["card_number"])
        if not out or not readers or len(shelf) < CHECKOUTS or len(out) < RETURNS:
            raise RuntimeError(f"{self.code}: the feed gave {len(shelf)} copies on the shelf, {len(out)} open loans, "
                               f"{len(readers)} readers")
        template = out[0]  # lent today here, to an adult, of a picture book: the same terms as today's
        events: list[tuple[dict, dict]] = []  # (copy, loan) in the order they happened
        checkouts = iter(shelf[:CHECKOUTS])
        returns = iter(out[:RETURNS])
        # checkouts and returns spread evenly over the day
        order = sorted([(n / CHECKOUTS, True) for n in range(CHECKOUTS)] +
                       [((n + 0.5) / RETURNS, False) for n in range(RETURNS)])
        for _, lend in order:
            now = dt.datetime.now(dt.timezone.utc).isoformat()
            if lend:
                copy = next(checkouts)
                reader = readers[(len(self.checked_out) + OPEN_LOANS) % len(readers)]
                loan = {**template, "uuid": str(uuid.uuid4()), "item": copy["uuid"], "patron": reader["uuid"],
                        "patron_category": reader["category"], "branch": me, "checked_out_at": now, "renewals": 0,
                        "last_renewed_at": None, "returned_at": None, "returned_branch": None,
                        "days_overdue_at_return": 0, "fine_cents": 0, "overrides": [],
                        "created_by": f"staff:desk-{self.code}", "updated_at": now}
                copy = {**copy, "status": "on_loan", "due_back": template["due_on"], "current_branch": me,
                        "updated_at": now}
                self.checked_out.append(loan["uuid"])
            else:
                loan = next(returns)
                loan = {**loan, "returned_at": now, "returned_branch": me, "days_overdue_at_return": 0,
                        "fine_cents": 0, "updated_at": now}
                copy = {**self.items[loan["item"]], "status": "available", "current_branch": me, "due_back": None,
                        "updated_at": now}
                self.returned.append(loan["uuid"])
            events.append((copy, loan))
        changes = [{"kind": "item", "uuid": copy["uuid"], "image": copy} for copy, _ in events]
        changes += [{"kind": "loan", "uuid": loan["uuid"], "image": loan} for _, loan in events]
        changes.sort(key=lambda change: ORDER[change["kind"]])  # stable: event order within a kind
        return changes

    async def run(self) -> None:
        try:
            cursor = await self.pull("", "initial")
            if cursor is None or self.me is None:
                self.problems.append("initial pull failed")
                return
            changes = self.day()
            seen_through = int(cursor[4:]) if cursor.startswith("log:") else 0  # as client.seen_through_of
            for start in range(0, len(changes), PACKAGE_SIZE):
                body, note = await self.request("upload", "upload", "POST", "/api/sync/uploads", json={
                    "uuid": str(uuid.uuid4()), "branch": self.code, "changes": changes[start:start + PACKAGE_SIZE],
                    "seen_through": seen_through, "sent_at": dt.datetime.now(dt.timezone.utc).isoformat()})
                if body is not None:
                    answer = json.loads(body)
                    note.update(changes=len(changes[start:start + PACKAGE_SIZE]), applied=answer.get("applied"),
                                conflicts=len(answer.get("conflicts") or []), aliases=len(answer.get("aliases") or {}))
            if await self.pull(cursor, "incremental") is None:
                self.problems.append("incremental pull failed")
        except Exception as error:  # noqa: BLE001 - reported with the figures
            self.problems.append(f"{type(error).__name__}: {error}")
        finally:
            await self.client.aclose()


async def _drive(base: str, credentials: dict[str, str]) -> dict:
    started = time.perf_counter()
    nodes = [SimulatedBranch(code, credential, base, started, started + RUN_DEADLINE_S)
             for code, credential in sorted(credentials.items())]
    await asyncio.gather(*(node.run() for node in nodes))
    return {
        "wall_s": time.perf_counter() - started,
        "requests": [r for node in nodes for r in node.requests],
        "checked_out": {node.code: node.checked_out for node in nodes},
        "returned": {node.code: node.returned for node in nodes},
        "echo_missing": sum(len(set(node.checked_out + node.returned) - node.echoed) for node in nodes),
        "problems": [f"{node.code}: {p}" for node in nodes for p in node.problems][:20],
        "problem_count": sum(len(node.problems) for node in nodes),
    }


# --- the ceiling: the feed's SQL, bare (child process with the central node's settings) ---------


async def _bare_pages(pages: list[dict], pool_size: int) -> dict:
    """Record the statements feed.changes runs for each page (untimed), then replay them with asyncpg."""
    import asyncpg
    from piccolo.engine.postgres import PostgresEngine

    from library.branches.tables import Branch
    from library.db import engine
    from library.sync import feed

    recorded: list[tuple[str, list]] = []
    original = PostgresEngine._run_in_pool

    async def noting(self, query, args=None):
        recorded.append((query, list(args or [])))
        return await original(self, query, args)

    branches = {row["code"]: {"id": row["id"], "uuid": str(row["uuid"]), "code": row["code"]}
                for row in await Branch.raw("SELECT id, uuid, code FROM branch")}
    await engine().start_connection_pool(min_size=1, max_size=2)
    plans: dict[str, list[tuple[int, list[tuple[str, list]]]]] = {}
    try:
        last_seq = int((await Branch.raw("SELECT MAX(seq) AS s FROM sync_change"))[0]["s"] or 0)
        for index, page in enumerate(pages):
            cursor, limit = page["cursor"], page["limit"]
            if cursor.startswith("log:"):
                low, high = int(cursor[4:]), int(page["next"][4:])
                span = (await Branch.raw("SELECT COUNT(*) AS n FROM sync_change WHERE seq > {} AND seq <= {}",
                                         low, high))[0]["n"]
                # the same span of the log the branch read then: its rows, or none
                cursor, limit = (cursor, int(span)) if span else (f"log:{last_seq}", limit)
            recorded.clear()
            PostgresEngine._run_in_pool = noting
            try:
                await feed.changes(branches[page["branch"]], cursor, limit)
            finally:
                PostgresEngine._run_in_pool = original
            plans.setdefault(page["branch"], []).append((index, list(recorded)))
    finally:
        await engine().close_connection_pool()

    dsn = os.environ["LIBRARY_DATABASE_URL"]
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    by_shape: Counter = Counter()

    async def page_sql(statements: list[tuple[str, list]]) -> float:
        began = time.perf_counter()
        for query, args in statements:
            started = time.perf_counter()
            await pool.fetch(query, *args)  # a connection from the pool per statement, as Piccolo's raw
            by_shape[_shape(query)] += time.perf_counter() - started
        return (time.perf_counter() - began) * 1000

    try:
        # 1. The same concurrency as the HTTP run: every branch's pages in its order, each started no
        #    earlier than its HTTP request was (offset from the start of the run).
        scheduled: list[float] = [0.0] * len(pages)

        async def replay(branch_pages: list[tuple[int, list[tuple[str, list]]]], began: float) -> None:
            for index, statements in branch_pages:
                wait = began + pages[index]["at_s"] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                scheduled[index] = await page_sql(statements)

        began = time.perf_counter()
        await asyncio.gather(*(replay(branch_pages, began) for branch_pages in plans.values()))
        wall = time.perf_counter() - began
        # 2. One page at a time: what a page's SQL costs the database alone (bounded in time).
        serial: list[float | None] = [None] * len(pages)
        stop = time.perf_counter() + SERIAL_REPLAY_S
        for index, statements in sorted((i, st) for branch_pages in plans.values() for i, st in branch_pages):
            if time.perf_counter() > stop:
                break
            serial[index] = await page_sql(statements)
    finally:
        await pool.close()
    statements = [len(s) for branch_pages in plans.values() for _, s in branch_pages]
    total = sum(by_shape.values()) or 1.0
    return {"ms": scheduled, "serial_ms": serial, "wall_s": wall, "statements": sum(statements),
            "statements_per_page_max": max(statements, default=0),
            "heaviest": [{"share": round(seconds / total, 3),
                          "sql": shape if len(shape) < 300 else f"{shape[:60]} … {shape[-230:]}"}
                         for shape, seconds in by_shape.most_common(4)]}


def _shape(query: str) -> str:
    """A statement with its numbers and parameter lists folded, to add up the time of its kind."""
    import re

    folded = re.sub(r"\$\d+(?:, \$\d+)*", "$…", query)
    return re.sub(r"\b\d+\b", "N", folded)


# --- checking the central database ---------------------------------------------------------------


async def _check(url: str, checked_out: dict[str, list[str]], returned: dict[str, list[str]]) -> dict:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        wanted = [u for uuids in [*checked_out.values(), *returned.values()] for u in uuids]
        rows = await connection.fetch(
            "SELECT l.uuid::text AS uuid, b.code AS branch, l.returned_at IS NULL AS open, rb.code AS returned_branch "
            "FROM loan l JOIN branch b ON b.id = l.branch LEFT JOIN branch rb ON rb.id = l.returned_branch "
            "WHERE l.uuid = ANY($1::uuid[])", wanted)
        found = {row["uuid"]: row for row in rows}
        lent_ok = sum(1 for code, uuids in checked_out.items() for u in uuids
                      if u in found and found[u]["open"] and found[u]["branch"] == code)
        back_ok = sum(1 for code, uuids in returned.items() for u in uuids
                      if u in found and not found[u]["open"] and found[u]["returned_branch"] == code)
        on_loan = {row["code"]: row["n"] for row in await connection.fetch(
            "SELECT b.code, COUNT(*) AS n FROM item i JOIN branch b ON b.id = i.current_branch "
            "WHERE i.status = 'on_loan' GROUP BY b.code")}
        open_loans = {row["code"]: row["n"] for row in await connection.fetch(
            "SELECT b.code, COUNT(*) AS n FROM loan l JOIN branch b ON b.id = l.branch "
            "WHERE l.returned_at IS NULL GROUP BY b.code")}
        conflicts = {f"{row['kind']}:{row['rule']}": row["n"] for row in await connection.fetch(
            "SELECT kind, rule, COUNT(*) AS n FROM sync_conflict GROUP BY kind, rule")}
        sample = [dict(row) for row in await connection.fetch(
            "SELECT branch_code, kind, rule, detail::text AS detail FROM sync_conflict ORDER BY id LIMIT 3")]
        applied = await connection.fetchval("SELECT COUNT(*) FROM sync_applied")
        return {"loans_uploaded": len(wanted), "loans_found": len(found), "checkouts_found_open": lent_ok,
                "returns_found_closed": back_ok, "on_loan": on_loan, "open_loans": open_loans,
                "conflicts_recorded": sum(conflicts.values()), "conflict_rules": conflicts,
                "conflict_sample": sample, "uploads_applied": applied}
    finally:
        await connection.close()


class Watcher:
    """While the branches run: the bench database's sessions (pg_stat_activity) and the machine's CPU, sampled."""

    SQL = ("SELECT COUNT(*) AS connections, COUNT(*) FILTER (WHERE state = 'active') AS active, "
           "COUNT(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory') AS advisory_waits, "
           "COUNT(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction "
           "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def __init__(self, url: str, interval: float = 0.25) -> None:
        import threading

        self.url = url
        self.interval = interval
        self.stop = threading.Event()
        self.samples: list[dict] = []
        self.cpu: list[float] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    @staticmethod
    def _cpu_times() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    async def _watch(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.url)
        try:
            before = self._cpu_times()
            deadline = time.monotonic() + RUN_DEADLINE_S + 120
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.samples.append(dict(await connection.fetchrow(self.SQL)))
                await asyncio.sleep(self.interval)
                now = self._cpu_times()
                if now[0] > before[0]:
                    self.cpu.append(1 - (now[1] - before[1]) / (now[0] - before[0]))
                before = now
        finally:
            await connection.close()

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def summary(self) -> dict:
        out = {}
        for key in ("connections", "active", "advisory_waits", "idle_in_transaction"):
            values = [sample[key] for sample in self.samples]
            out[key] = {"mean": round(statistics.fmean(values), 1), "max": max(values)} if values else None
        out["machine_cpu_busy_mean"] = round(statistics.fmean(self.cpu), 2) if self.cpu else None
        out["samples"] = len(self.samples)
        return out


async def _reachable(admin: str) -> str | None:
    import asyncpg

    try:
        connection = await asyncpg.connect(admin, timeout=5)
    except Exception as error:  # noqa: BLE001 - told to the user
        return f"{type(error).__name__}: {error}".strip()
    await connection.close()
    return None


# --- the benchmark --------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict:
    return {"p50_ms": round(percentile(values, 0.5), 2), "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2) if values else None, "count": len(values)}


def _tree() -> dict:
    """The commit measured, and whether library/ had uncommitted changes (figures are compared over time)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "library"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "library_uncommitted": dirty}


def run(branches: int = BRANCHES, workers: int = 1, postgres_url: str | None = None) -> list[dict]:
    admin = postgres_url or os.environ.get("LIBRARY_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_ADMIN
    problem = asyncio.run(_reachable(admin))
    if problem:
        raise SystemExit(f"sync.network needs PostgreSQL and cannot reach it at {redacted(admin)}: {problem}\n"
                         "Start PostgreSQL or name another server with --postgres-url "
                         "(or LIBRARY_BENCH_POSTGRES_URL).")
    os.environ["LIBRARY_BENCH_POSTGRES_URL"] = admin  # what harness.database creates its database on
    with database("postgres") as env:
        env = {**env, "LIBRARY_NODE_ROLE": "central", "LIBRARY_SYNC_INTERVAL_SECONDS": "0",
               "LIBRARY_NOTICE_INTERVAL_SECONDS": "0"}
        began = time.perf_counter()
        seeded = child(env, "_seed", branches, COPIES, READERS, OPEN_LOANS)
        prepare_s = time.perf_counter() - began
        with server(env, workers=workers) as base:
            with Watcher(env["LIBRARY_DATABASE_URL"]) as watcher:
                driven = child(env, "_drive", base, seeded["credentials"])
            ping = asyncio.run(drive(base, get_json("/api/ping"), branches, PING_SECONDS))
        checked = asyncio.run(_check(env["LIBRARY_DATABASE_URL"], driven["checked_out"], driven["returned"]))
        pages = [r for r in driven["requests"] if r["what"] == "page" and r["status"] == 200]
        bare = child(env, "_bare_pages", pages, SERVER_POOL_PER_WORKER * workers)

    requests = driven["requests"]
    timed = [r for r in requests if "ms" in r]
    first = min((r["at_s"] for r in timed), default=0.0)
    last = max((r["end_s"] for r in timed), default=0.0)
    span = last - first
    errors = sum(1 for r in requests if r["status"] != 200)
    page_ms = [r["ms"] for r in pages]
    page_errors = sum(1 for r in requests if r["what"] == "page" and r["status"] != 200)
    uploads = [r for r in requests if r["what"] == "upload"]
    upload_ms = [r["ms"] for r in uploads if r["status"] == 200]
    upload_errors = sum(1 for r in uploads if r["status"] != 200)
    ends = sorted(r["end_s"] for r in uploads if r["status"] == 200)
    spacing = [(b - a) * 1000 for a, b in zip(ends, ends[1:])]
    statuses = dict(Counter(str(r["status"]) for r in requests if r["status"] != 200))
    expected_on_loan = OPEN_LOANS - RETURNS + CHECKOUTS
    codes = list(seeded["credentials"])
    on_loan_ok = all(checked["on_loan"].get(code) == expected_on_loan for code in codes) and \
        all(checked["open_loans"].get(code) == expected_on_loan for code in codes)
    loans_missing = checked["loans_uploaded"] - checked["checkouts_found_open"] - checked["returns_found_closed"]
    common = {"engine": "postgres", "branches": branches, "workers": workers,
              "server_pool": SERVER_POOL_PER_WORKER * workers, "python": sys.version.split()[0], **_tree()}
    bare_ms = bare["ms"]
    snapshot_ms = [r["ms"] for r in pages if r.get("snapshot")]
    log_ms = [r["ms"] for r in pages if not r.get("snapshot")]
    rate = len(timed) / span if span else 0.0
    # A real branch node gives up on a request after LIBRARY_SYNC_TIMEOUT_SECONDS (then retries): how many would have.
    from library.settings import Settings

    client_timeout_ms = Settings.__dataclass_fields__["sync_timeout_seconds"].default * 1000
    over = Counter(r["what"] for r in timed if r["ms"] > client_timeout_ms)
    return [{
        "bench": "sync.network", **common, "value": round(rate, 1), "unit": "req/s",
        "ceiling": round(ping.rate, 1),
        "ceiling_is": f"GET /api/ping of the same server, {branches} clients, same run",
        "ratio": round(rate / ping.rate, 3) if ping.rate else None,
        "p50_ms": round(percentile([r["ms"] for r in timed], 0.5), 2),
        "p99_ms": round(percentile([r["ms"] for r in timed], 0.99), 2),
        "errors": errors, "error_statuses": statuses, "requests": len(requests), "pages": len(page_ms),
        "uploads": len(uploads), "duration_s": round(span, 2), "driver_wall_s": round(driven["wall_s"], 2),
        "changes_down": sum(r.get("changes", 0) for r in pages),
        "mb_down": round(sum(r.get("bytes", 0) for r in pages) / 1e6, 1),
        "copies_per_branch": COPIES, "readers_per_branch": READERS, "day": f"{CHECKOUTS} checkouts, {RETURNS} returns",
        "problems": driven["problems"], "prepare_s": round(prepare_s, 1),
        "during_run": watcher.summary(),
    }, {
        "bench": "sync.network.feed_page", **common, "value": round(percentile(page_ms, 0.99), 2),
        "unit": "ms p99 per feed page (lower is better)",
        "ceiling": round(percentile(bare_ms, 0.99), 2),
        "ceiling_is": "p99 of the same pages' SQL (recorded from feed.changes, same branch and cursor, same span of "
                      f"the log) replayed bare with asyncpg after the HTTP run, same database: {branches} branches, "
                      "each page started when its HTTP request started, on a pool as large as the server's "
                      f"({SERVER_POOL_PER_WORKER * workers})",
        "ratio": round(percentile(page_ms, 0.99) / percentile(bare_ms, 0.99), 2) if bare_ms else None,
        "ratio_is": "HTTP page p99 / bare SQL p99 (higher: more time outside the database)",
        "p50_ms": round(percentile(page_ms, 0.5), 2), "p99_ms": round(percentile(page_ms, 0.99), 2),
        "ceiling_p50_ms": round(percentile(bare_ms, 0.5), 2),
        "ratio_p50": round(percentile(page_ms, 0.5) / percentile(bare_ms, 0.5), 2) if bare_ms else None,
        "ratio_total": round(sum(page_ms) / sum(bare_ms), 2) if bare_ms else None,
        "errors": page_errors, "pages": len(page_ms), "over_client_timeout": over["page"],
        "snapshot_pages": _summary(snapshot_ms),
        "log_pages": _summary(log_ms), "rows_per_page_mean": round(statistics.fmean(
            [r.get("changes", 0) for r in pages]), 1) if pages else None,
        "bare_snapshot_pages": _summary([ms for ms, r in zip(bare_ms, pages) if r.get("snapshot")]),
        "bare_log_pages": _summary([ms for ms, r in zip(bare_ms, pages) if not r.get("snapshot")]),
        "bare_alone_is": "the same SQL, one page at a time: what a page costs the database with nothing else running",
        "bare_alone_snapshot_pages": _summary([ms for ms, r in zip(bare["serial_ms"], pages)
                                               if r.get("snapshot") and ms is not None]),
        "bare_alone_log_pages": _summary([ms for ms, r in zip(bare["serial_ms"], pages)
                                          if not r.get("snapshot") and ms is not None]),
        "bare_alone_total_s": round(sum(ms for ms in bare["serial_ms"] if ms is not None) / 1000, 2),
        "bare_heaviest_sql": bare["heaviest"],
        "bare_statements": bare["statements"], "bare_statements_per_page_max": bare["statements_per_page_max"],
        "bare_wall_s": round(bare["wall_s"], 2), "bare_pages": len(bare_ms),
    }, {
        "bench": "sync.network.upload", **common, "value": round(percentile(upload_ms, 0.99), 2),
        "unit": f"ms p99 per upload transaction of up to {PACKAGE_SIZE} changes (lower is better)",
        "ceiling": None, "ceiling_is": "none measured", "ratio": None,
        "p50_ms": round(percentile(upload_ms, 0.5), 2), "p99_ms": round(percentile(upload_ms, 0.99), 2),
        "max_ms": round(max(upload_ms), 2) if upload_ms else None,
        "completion_spacing_p50_ms": round(percentile(spacing, 0.5), 2) if spacing else None,
        "completion_spacing_is": "median time between consecutive upload answers (serialized uploads: about one "
                                 "upload's own time)",
        "errors": upload_errors, "uploads": len(uploads), "over_client_timeout": over["upload"],
        "over_client_timeout_is": "answers slower than a branch node's default timeout "
                                  f"({client_timeout_ms / 1000:.0f} s, LIBRARY_SYNC_TIMEOUT_SECONDS): a real node "
                                  "would have given up and sent again",
        "changes_up": sum(r.get("changes", 0) for r in uploads),
        "applied": sum(r.get("applied") or 0 for r in uploads),
        "conflicts_answered": sum(r.get("conflicts", 0) for r in uploads),
        "aliases_answered": sum(r.get("aliases", 0) for r in uploads),
        "loans_uploaded": checked["loans_uploaded"], "loans_found": checked["loans_found"],
        "loans_missing_or_wrong": loans_missing, "checkouts_found_open": checked["checkouts_found_open"],
        "returns_found_closed": checked["returns_found_closed"],
        "copies_on_loan_as_expected": on_loan_ok, "conflicts_recorded": checked["conflicts_recorded"],
        "conflict_rules": checked["conflict_rules"], "conflict_sample": checked["conflict_sample"],
        "uploads_applied": checked["uploads_applied"], "echo_missing": driven["echo_missing"],
    }]


os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
