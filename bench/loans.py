"""loans.checkout_cycle: checkout → checkin through POST /api/loans/*, many copies and readers.

A fresh database (migrated, demo loaded) gets `--items` generated records with one copy
each at ZX (item type "book") and as many readers (category "senior"; a network rule
"*|senior|*" lets a senior borrow up to 500, so the reader with 200 open loans is not
refused), all written with bulk inserts.

1. The ceiling, in a child process on the same database: the same checkouts and checkins
   by `library.loans.service.checkout`/`checkin` directly, no HTTP — with as many asyncio
   tasks as HTTP clients, and with one task, on the event loop the server runs on (uvloop
   when installed); the ceiling is the better of the two. Half of it is measured before the
   server starts and half right after the HTTP cycles (the server idle), so that a change
   of the machine's load in between weighs on both figures alike.
2. The real server (uvicorn, one worker); `--concurrency` clients signed in as the demo's
   network administrator, each looping over its own slice of copies and readers:
   checkout (201), then checkin (200). A cycle counts when both succeed.
3. A reader with 200 open loans against a reader with none: HTTP checkouts one at a
   time, interleaved, p50 of each (each copy is checked in again, untimed).

One JSON line per figure: the cycle throughput beside the ceiling, and the 200-loans ratio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import aiohttp

from bench.harness import ROOT, Measurement, database, server

BRANCH = "ZX"
LOGIN = {"kind": "staff", "login": "admin", "secret": "admin-demo-pass"}
HEAVY_LOANS = 200
COMPARE_COPIES = 400  # copies reserved for the 200-loans comparison (besides the 200 lent)


def cycle_barcode(n: int) -> str:
    return f"C{n:07d}"


def cycle_card(n: int) -> str:
    return f"BC{n:07d}"


def spare_barcode(n: int) -> str:
    return f"S{n:07d}"


HEAVY_CARD, LIGHT_CARD = "BH0000001", "BL0000001"


# --- seeding (runs in a child process with the bench database's settings) -----------------


async def _seed(count: int) -> None:
    from library.branches.tables import Branch
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.catalog.records import row_values, search_text_of
    from library.db import executemany, run_in_write_transaction
    from library.demo import _network_admin
    from library.loans import policy, service

    from bench import generate

    admin = _network_admin()
    await policy.save_rule(admin, policy.RuleInput(patron_category="senior", name="bench seniors", max_loans=500))
    zx = (await Branch.select(Branch.id).where(Branch.code == BRANCH).first())["id"]
    now = dt.datetime.now(dt.timezone.utc)
    barcodes = [cycle_barcode(n) for n in range(count)] + [spare_barcode(n) for n in range(HEAVY_LOANS + COMPARE_COPIES)]
    first_record = 1_000_000  # far above the demo's own records
    patron_columns = ("uuid", "card_number", "name", "category", "home_branch", "phone", "email", "language",
                      "expires_on", "block_reason", "pin_hash", "created_at", "updated_at")
    cards = [cycle_card(n) for n in range(count)] + [HEAVY_CARD, LIGHT_CARD]

    async def work() -> None:
        record_rows, item_rows = [], []
        for offset, (values, barcode) in enumerate(zip(generate.records(len(barcodes), seed=13), barcodes)):
            values = {**values, "other_isbns": [], "control_number": None,
                      "parallel_title": "", "series_number": "", "language": "chi", "pages": 32, "summary": "",
                      "cover": "", "call_number": values["clc"] + "/X"}
            values["search_text"] = search_text_of(values)
            full = {**row_values(values), "uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
            record_rows.append((first_record + offset, *(full.get(column) for column in RECORD_COLUMNS)))
            item_rows.append((uuid.uuid4(), first_record + offset, barcode, zx, zx, "", "book", "available", 2980,
                              None, "", now, now))
        await executemany(_insert_sql("record", ("id", *RECORD_COLUMNS)), record_rows)
        await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)
        await executemany(_insert_sql("patron", patron_columns), [
            (uuid.uuid4(), card, f"读者{card}", "senior", zx, "", "", "zh_CN", dt.date(2099, 12, 31), None,
             "!bench-never-signs-in", now, now) for card in cards])

    await run_in_write_transaction(work)
    if "postgres" in os.environ.get("LIBRARY_DATABASE_URL", ""):
        from library.loans.tables import Loan

        # The explicit ids above do not move the sequence.
        await Loan.raw("SELECT setval(pg_get_serial_sequence('record', 'id'), (SELECT max(id) FROM record))")
        await Loan.raw("ANALYZE")
    for n in range(HEAVY_LOANS):
        await service.checkout(admin, BRANCH, HEAVY_CARD, spare_barcode(n), now)


# --- the ceiling: the service functions, no HTTP (child process) --------------------------


async def _direct(count: int, tasks: int, duration: float, warmup: float) -> dict:
    from library.db import engine, is_sqlite, prepare_sqlite
    from library.demo import _network_admin
    from library.loans import service

    # The engine set up as the app's lifespan sets it up (PostgreSQL: the same pool).
    if is_sqlite():
        await prepare_sqlite()
    else:
        await engine().start_connection_pool(min_size=2, max_size=20)
    try:
        return await _direct_cycles(service, _network_admin(), count, tasks, duration, warmup)
    finally:
        if not is_sqlite():
            await engine().close_connection_pool()


async def _direct_cycles(service, admin, count: int, tasks: int, duration: float, warmup: float) -> dict:
    result = {"cycles": 0, "errors": 0, "latencies_ms": [], "duration_s": 0.0, "error_kinds": Counter()}

    async def worker(index: int, deadline: float, record: bool) -> None:
        slot = index
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                await service.checkout(admin, BRANCH, cycle_card(slot), cycle_barcode(slot), dt.datetime.now(dt.timezone.utc))
                await service.checkin(admin, BRANCH, cycle_barcode(slot), dt.datetime.now(dt.timezone.utc))
                ok = True
            except Exception as error:  # noqa: BLE001 - counted and reported
                ok = False
                result["error_kinds"][type(error).__name__ + ": " + str(error)[:80]] += record
            if record:
                result["cycles"] += ok
                result["errors"] += not ok
                result["latencies_ms"].append((time.perf_counter() - began) * 1000)
            slot = (slot + tasks) % count

    start = time.perf_counter()
    await asyncio.gather(*(worker(i, start + warmup, False) for i in range(tasks)))
    start = time.perf_counter()
    await asyncio.gather(*(worker(i, start + duration, True) for i in range(tasks)))
    result["duration_s"] = time.perf_counter() - start
    result["error_kinds"] = dict(result["error_kinds"].most_common(3))
    return result


def run(coroutine):
    """Run on the event loop the server runs on: uvicorn's "auto" takes uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def child(env: dict[str, str], function: str, *args) -> object:
    code = (f"import json, sys; from bench.loans import run, {function}; "
            f"print(json.dumps(run({function}(*json.loads(sys.argv[1])))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env={**env, "PICCOLO_CONF": "piccolo_conf"},
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None


def as_measurement(*halves: dict) -> Measurement:
    """One measurement from the runs before and after the HTTP phase, pooled."""
    return Measurement(sum(raw["cycles"] for raw in halves), sum(raw["errors"] for raw in halves),
                       sum(raw["duration_s"] for raw in halves), [ms for raw in halves for ms in raw["latencies_ms"]])


# --- HTTP ---------------------------------------------------------------------------------


async def signed_in(base: str, concurrency: int) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                    cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(base + "/") as response:
        await response.read()
    token = next(c.value for c in session.cookie_jar if c.key == "library_csrf")
    headers = {"X-CSRFToken": token}
    async with session.post(base + "/api/session", json=LOGIN, headers=headers) as response:
        body = await response.text()
        if response.status >= 300:
            raise RuntimeError(f"staff sign-in failed: {response.status} {body[:300]}")
    # Signing in starts a new session, and with it a new CSRF token.
    headers = {"X-CSRFToken": next(c.value for c in session.cookie_jar if c.key == "library_csrf")}
    return session, headers


async def _post(session, base, headers, path, payload, expect) -> tuple[bool, str]:
    async with session.post(base + path, json=payload, headers=headers) as response:
        body = await response.read()
        if response.status == expect:
            return True, ""
        return False, f"{path} {response.status} {body[:120].decode(errors='replace')}"


async def http_cycles(base: str, count: int, concurrency: int, duration: float, warmup: float = 2.0) -> dict:
    session, headers = await signed_in(base, concurrency)
    result = Measurement(0, 0, 0.0)
    checkout_ms: list[float] = []
    checkin_ms: list[float] = []
    kinds: Counter = Counter()
    async with session:
        async def worker(index: int, deadline: float, record: bool) -> None:
            slot = index
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                why = ""
                try:
                    ok, why = await _post(session, base, headers, "/api/loans/checkout",
                                          {"branch": BRANCH, "card_number": cycle_card(slot),
                                           "barcode": cycle_barcode(slot)}, 201)
                    middle = time.perf_counter()
                    # Check in even after a refused checkout, so a stuck copy frees itself.
                    back, why_back = await _post(session, base, headers, "/api/loans/checkin",
                                                 {"branch": BRANCH, "barcode": cycle_barcode(slot)}, 200)
                    ok, why = ok and back, why or why_back
                    ended = time.perf_counter()
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    ok, why, middle, ended = False, type(error).__name__, began, time.perf_counter()
                if record:
                    result.requests += ok
                    result.errors += not ok
                    result.latencies_ms.append((ended - began) * 1000)
                    if ok:
                        checkout_ms.append((middle - began) * 1000)
                        checkin_ms.append((ended - middle) * 1000)
                    else:
                        kinds[why] += 1
                slot = (slot + concurrency) % count

        start = time.perf_counter()
        await asyncio.gather(*(worker(i, start + warmup, False) for i in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(i, start + duration, True) for i in range(concurrency)))
        result.duration_s = time.perf_counter() - start
    return {"measurement": result, "checkout": Measurement(len(checkout_ms), 0, 0, checkout_ms),
            "checkin": Measurement(len(checkin_ms), 0, 0, checkin_ms), "error_kinds": dict(kinds.most_common(3))}


async def heavy_vs_light(base: str, rounds: int) -> dict:
    """Checkouts one at a time, alternating the reader with 200 loans and one with none."""
    session, headers = await signed_in(base, 1)
    timings: dict[str, list[float]] = {HEAVY_CARD: [], LIGHT_CARD: []}
    errors = 0
    spares = [spare_barcode(n) for n in range(HEAVY_LOANS, HEAVY_LOANS + COMPARE_COPIES)]
    async with session:
        for n in range(rounds):
            order = [HEAVY_CARD, LIGHT_CARD] if n % 2 else [LIGHT_CARD, HEAVY_CARD]
            for k, card in enumerate(order):
                barcode = spares[(2 * n + k) % len(spares)]
                began = time.perf_counter()
                ok, _ = await _post(session, base, headers, "/api/loans/checkout",
                                    {"branch": BRANCH, "card_number": card, "barcode": barcode}, 201)
                elapsed = (time.perf_counter() - began) * 1000
                back, _ = await _post(session, base, headers, "/api/loans/checkin",
                                      {"branch": BRANCH, "barcode": barcode}, 200)
                if ok and back:
                    timings[card].append(elapsed)
                else:
                    errors += 1
    heavy = Measurement(len(timings[HEAVY_CARD]), 0, 0, timings[HEAVY_CARD])
    light = Measurement(len(timings[LIGHT_CARD]), 0, 0, timings[LIGHT_CARD])
    return {"heavy": heavy, "light": light, "errors": errors}


def cycle_figures(bench: str, engine: str, cycles: dict, many: Measurement, one: Measurement, concurrency: int,
                  ceiling_is: str) -> dict:
    """The figures of a checkout -> checkin cycle bench (`cycles`: the measurement, the checkout
    and checkin halves and the error kinds) against the same cycles by the service functions
    (`many` tasks or one, whichever was faster)."""
    measured = cycles["measurement"]
    ceiling = max(many, one, key=lambda m: m.rate)
    return {
        "bench": bench, "engine": engine, "value": round(measured.rate, 1), "unit": "cycles/s",
        "ceiling": round(ceiling.rate, 1), "ceiling_is": ceiling_is,
        "ratio": round(measured.rate / ceiling.rate, 3) if ceiling.rate else None,
        "p50_ms": round(measured.percentile(0.5), 2), "p99_ms": round(measured.percentile(0.99), 2),
        "errors": measured.errors, "cycles": measured.requests,
        "checkout_p50_ms": round(cycles["checkout"].percentile(0.5), 2),
        "checkout_p99_ms": round(cycles["checkout"].percentile(0.99), 2),
        "checkin_p50_ms": round(cycles["checkin"].percentile(0.5), 2),
        "checkin_p99_ms": round(cycles["checkin"].percentile(0.99), 2),
        "error_kinds": cycles["error_kinds"],
        f"ceiling_tasks_{concurrency}": round(many.rate, 1), "ceiling_tasks_1": round(one.rate, 1),
        "ceiling_p50_ms": round(ceiling.percentile(0.5), 2), "ceiling_errors": ceiling.errors,
    }


def checkout_cycle(engine: str, duration: float = 8.0, concurrency: int = 16, items: int = 5000,
                   rounds: int = 300) -> list[dict]:
    items = max(items, concurrency)
    with database(engine) as env:
        began = time.perf_counter()
        child(env, "_seed", items)
        prepare_s = time.perf_counter() - began
        # Half of the ceiling before the HTTP phase and half after it: a machine whose load
        # changes during the run weighs on both figures alike.
        many_before = child(env, "_direct", items, concurrency, duration / 2, 1.0)
        one_before = child(env, "_direct", items, 1, duration / 2, 1.0)
        with server(env) as base:
            http = asyncio.run(http_cycles(base, items, concurrency, duration))
            # The server idles meanwhile (each HTTP client finished its last cycle).
            many_after = child(env, "_direct", items, concurrency, duration / 2, 1.0)
            one_after = child(env, "_direct", items, 1, duration / 2, 1.0)
            compare = asyncio.run(heavy_vs_light(base, rounds))
    measured = http["measurement"]
    many, one = as_measurement(many_before, many_after), as_measurement(one_before, one_after)
    heavy_p50, light_p50 = compare["heavy"].percentile(0.5), compare["light"].percentile(0.5)
    return [{
        **cycle_figures("loans.checkout_cycle", engine, http, many, one, concurrency,
                        "the same cycles by the service functions in one process, no HTTP, same database, same run"),
        "clients": concurrency,
        "ceiling_error_kinds": {**many_before["error_kinds"], **one_before["error_kinds"],
                                **many_after["error_kinds"], **one_after["error_kinds"]},
        "ceiling_before_after": [round(max(as_measurement(many_before).rate, as_measurement(one_before).rate), 1),
                                 round(max(as_measurement(many_after).rate, as_measurement(one_after).rate), 1)],
        "items": items, "patrons": items, "duration_s": round(measured.duration_s, 2), "prepare_s": round(prepare_s, 1),
        "python": sys.version.split()[0],
    }, {
        "bench": "loans.checkout_cycle.open_loans", "engine": engine, "value": round(heavy_p50, 2),
        "unit": f"ms p50 checkout, reader with {HEAVY_LOANS} open loans (lower is better)",
        "ceiling": round(light_p50, 2), "ceiling_is": "ms p50 checkout, reader with no loans, same run, interleaved",
        "ratio": round(heavy_p50 / light_p50, 3) if light_p50 else None,
        "p50_ms": round(heavy_p50, 2), "p99_ms": round(compare["heavy"].percentile(0.99), 2),
        "light_p50_ms": round(light_p50, 2), "light_p99_ms": round(compare["light"].percentile(0.99), 2),
        "errors": compare["errors"], "checkouts_each": rounds, "clients": 1,
    }]


os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
