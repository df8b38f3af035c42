"""activities.register_programme: 1,000 guardians registering a child for an eight-session
programme (a weekly series) with 30 seats, 100 in flight.

A fresh database (migrated, demo loaded) gets 1,000 children, each linked to a guardian, and
two identical series of eight 30-seat Saturday sessions at ZX, registration open. Then:

1. The ceiling, in a child process on the same database: the same 1,000 programme
   registrations by `library.activities.service.register_programme` directly (no HTTP), 100 in
   flight at a time, for the second series.
2. The real server (uvicorn, one worker): 1,000 POST /api/activities/series/{event}/registrations,
   100 in flight at a time, each for one child's card, by a desk signed in as the demo's network
   administrator (signing in 1,000 guardians would measure the PIN hash, not registration; the
   service path is the same for a guardian, who only adds the guardian check on ids in memory).
3. Checked on the database afterwards, for both series and every one of the eight sessions:
   exactly 30 confirmed, the rest waitlisted, arrival numbers 1..N with no gap, the seats to
   arrivals 1..30, and the same order of children in every session's queue.

One JSON line per engine: programme registrations/s beside the ceiling, p50/p99, errors and
the checks. `python -m bench.activities_programme [sqlite|postgres ...] [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import aiohttp

from bench.harness import ROOT, Measurement, database, server

REQUESTS = 1000
IN_FLIGHT = 100
SEATS = 30
SESSIONS = 8
LOGIN = {"kind": "staff", "login": "admin", "secret": "admin-demo-pass"}


def child(n: int) -> str:
    return f"PC{n:07d}"


def guardian(n: int) -> str:
    return f"PG{n:07d}"


async def _seed(requests: int) -> dict[str, str]:
    import datetime as dt
    import uuid

    from library.accounts.tables import Patron
    from library.activities import service
    from library.branches.tables import Branch
    from library.db import executemany, run_in_write_transaction
    from library.demo import _network_admin

    admin = _network_admin()
    zx = (await Branch.select(Branch.id).where(Branch.code == "ZX").first())["id"]
    now = dt.datetime.now(dt.timezone.utc)

    async def families() -> None:
        rows = []
        for n in range(requests):
            rows.append((str(uuid.uuid4()), guardian(n), f"家长{n}", "adult", zx, "", "", "zh_CN",
                         dt.date(2030, 1, 1), None, "-", None, now, now))
            rows.append((str(uuid.uuid4()), child(n), f"孩子{n}", "child", zx, "", "", "zh_CN",
                         dt.date(2030, 1, 1), None, "-", dt.date(2019, 1, 1), now, now))
        await executemany(
            "INSERT INTO patron (uuid, card_number, name, category, home_branch, phone, email, language, expires_on, "
            "block_reason, pin_hash, birth_date, created_at, updated_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})", rows)
        ids = {row["card_number"]: row["id"] for row in await Patron.select(Patron.id, Patron.card_number).where(
            Patron.card_number.like("P%"))}
        await executemany("INSERT INTO guardian_link (uuid, guardian, child, relationship) VALUES ({}, {}, {}, {})",
                          [(str(uuid.uuid4()), ids[guardian(n)], ids[child(n)], "parent") for n in range(requests)])

    await run_in_write_transaction(families)
    events = {}
    for name, hour in (("http", 9), ("direct", 14)):
        start = dt.datetime.combine(dt.date.today() + dt.timedelta(days=30), dt.time(hour, 0))
        events[name] = await service.schedule_event(admin, service.EventInput(
            branch_code="ZX", title_zh=f"基准测试暑期营 {name}", first_start=start, duration_minutes=60,
            capacity=SEATS, rrule=f"FREQ=WEEKLY;COUNT={SESSIONS}", skip_closed_days=False,
            override_comment="bench", registration_opens_at=now - dt.timedelta(days=1)), now)
    return events


async def _direct(event: str, requests: int) -> dict:
    import datetime as dt

    from library.activities import service
    from library.db import engine
    from library.demo import _network_admin

    db = engine()
    if type(db).__name__ == "PostgresEngine":
        await db.start_connection_pool(min_size=2, max_size=20)
    admin = _network_admin()
    gate = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []
    errors = 0

    async def one(n: int) -> None:
        nonlocal errors
        async with gate:
            started = time.perf_counter()
            try:
                await service.register_programme(admin, "series", event, [child(n)], None,
                                                 dt.datetime.now(dt.timezone.utc))
            except Exception:  # noqa: BLE001 - counted
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(requests)))
    return {"duration_s": time.perf_counter() - started, "latencies": latencies, "errors": errors}


async def _check(event: str, requests: int) -> dict:
    from library.activities import service

    sessions = await service.occurrences_of(event)
    exact, in_order, orders = True, True, []
    for session in sessions:
        rows = await service.waitlist(str(session["uuid"]))
        arrivals = [row["arrival"] for row in rows]
        confirmed = sorted(row["arrival"] for row in rows if row["status"] == "confirmed")
        waiting = [row["arrival"] for row in rows if row["status"] == "waitlisted"]
        exact &= len(confirmed) == SEATS and len(waiting) == requests - SEATS
        in_order &= arrivals == list(range(1, requests + 1)) and confirmed == list(range(1, SEATS + 1))
        orders.append([row["card_number"] for row in rows])
    return {"sessions": len(sessions), "exactly_30_each": exact, "arrival_order_ok": in_order,
            "same_order_every_session": all(order == orders[0] for order in orders)}


def _child(env: dict, code: str) -> dict:
    """Run `code` (an awaitable expression over this module) with the bench database's settings."""
    script = ("import asyncio, json, sys\n"
              "from bench import activities_programme as bench\n"
              f"print(json.dumps(asyncio.run({code}), default=str))\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _http(base: str, event: str, requests: int) -> Measurement:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1), which aiohttp skips by default.
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(base + "/") as response:
            await response.read()
        token = next(c.value for c in client.cookie_jar if c.key == "library_csrf")
        async with client.post(base + "/api/session", json=LOGIN, headers={"X-CSRFToken": token}) as response:
            assert response.status in (200, 201), await response.text()
        headers = {"X-CSRFToken": next(c.value for c in client.cookie_jar if c.key == "library_csrf")}
        gate = asyncio.Semaphore(IN_FLIGHT)
        result = Measurement(0, 0, 0.0)

        async def one(n: int) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    async with client.post(f"{base}/api/activities/series/{event}/registrations",
                                           json={"card_numbers": [child(n)]}, headers=headers) as response:
                        await response.read()
                        failed = response.status != 201
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failed = True
                result.requests += 1
                result.errors += 1 if failed else 0
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(requests)))
        result.duration_s = time.perf_counter() - started
        return result


def register_programme(engine: str, requests: int = REQUESTS) -> list[dict]:
    with database(engine) as env:
        events = _child(env, f"bench._seed({requests})")
        direct = _child(env, f"bench._direct({events['direct']!r}, {requests})")
        ceiling = Measurement(requests, direct["errors"], direct["duration_s"], direct["latencies"])
        with server(env) as base:
            measured = asyncio.run(_http(base, events["http"], requests))
        http_check = _child(env, f"bench._check({events['http']!r}, {requests})")
        direct_check = _child(env, f"bench._check({events['direct']!r}, {requests})")
    return [{
        "bench": "activities.register_programme", "engine": engine, "value": round(measured.rate, 1),
        "unit": "programme registrations/s", "ceiling": round(ceiling.rate, 1),
        "ratio": round(measured.rate / ceiling.rate, 3) if ceiling.rate else None,
        "p50_ms": round(measured.percentile(0.50), 2), "p99_ms": round(measured.percentile(0.99), 2),
        "ceiling_p50_ms": round(ceiling.percentile(0.50), 2), "ceiling_p99_ms": round(ceiling.percentile(0.99), 2),
        "errors": measured.errors, "ceiling_errors": ceiling.errors, "requests": measured.requests,
        "in_flight": IN_FLIGHT, "seats": SEATS, "sessions_each": SESSIONS,
        **{f"http_{k}": v for k, v in http_check.items()}, **{f"direct_{k}": v for k, v in direct_check.items()},
    }]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.activities_programme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engines", nargs="*", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="guardians (default 1000; at least 31)")
    args = parser.parse_args()
    for engine in args.engines:
        for line in register_programme(engine, max(args.requests, SEATS + 1)):
            print(json.dumps(line, ensure_ascii=False))
