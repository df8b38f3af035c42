"""activities.register: 1,000 registrations fired at one 30-seat session, 100 at a time.

A fresh database (migrated, demo loaded) gets 1,000 readers and two identical 30-seat
sessions at ZX, registration open. Then:

1. The ceiling, in a child process on the same database: the same 1,000 registrations by
   `library.activities.service.register` directly (no HTTP), 100 in flight at a time, at
   the second session.
2. The real server (uvicorn, one worker): 1,000 POST /api/activities/sessions/{id}/registrations,
   100 in flight at a time, each for one reader's card, by a desk signed in as the demo's
   network administrator (signing in 1,000 readers would measure Argon2, not registration).
3. Checked on the database afterwards, for both sessions: exactly 30 confirmed, the rest
   waitlisted, arrival numbers 1..1000 with no gap, the 30 seats to arrivals 1..30.

One JSON line: requests/s beside the ceiling, p50/p99, 5xx count and the checks.
"""

from __future__ import annotations

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
LOGIN = {"kind": "staff", "login": "admin", "secret": "admin-demo-pass"}


def card(n: int) -> str:
    return f"BR{n:07d}"


async def _seed() -> dict[str, str]:
    import datetime as dt

    from library.activities import service
    from library.branches.tables import Branch
    from library.db import executemany, run_in_write_transaction
    from library.demo import _network_admin

    admin = _network_admin()
    zx = (await Branch.select(Branch.id).where(Branch.code == "ZX").first())["id"]
    now = dt.datetime.now(dt.timezone.utc)

    async def readers() -> None:
        import uuid

        await executemany(
            "INSERT INTO patron (uuid, card_number, name, category, home_branch, phone, email, language, expires_on, "
            "block_reason, pin_hash, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            [(str(uuid.uuid4()), card(n), f"读者{n}", "adult", zx, "", "", "zh_CN", dt.date(2030, 1, 1), None, "-",
              now, now) for n in range(REQUESTS)])

    await run_in_write_transaction(readers)
    sessions = {}
    for name, hour in (("http", 10), ("direct", 14)):
        start = dt.datetime.combine(dt.date.today() + dt.timedelta(days=30), dt.time(hour, 0))
        event = await service.schedule_event(admin, service.EventInput(
            branch_code="ZX", title_zh=f"基准测试 {name}", first_start=start, duration_minutes=60, capacity=SEATS,
            registration_opens_at=now - dt.timedelta(days=1)), now)
        sessions[name] = str((await service.occurrences_of(event))[0]["uuid"])
    return sessions


async def _direct(session: str) -> dict:
    import datetime as dt

    from library.activities import service
    from library.db import engine
    from library.demo import _network_admin

    db = engine()
    if hasattr(db, "start_connection_pool") and type(db).__name__ == "PostgresEngine":
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
                await service.register(admin, session, [card(n)], dt.datetime.now(dt.timezone.utc))
            except Exception:  # noqa: BLE001 - counted
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(REQUESTS)))
    return {"duration_s": time.perf_counter() - started, "latencies": latencies, "errors": errors}


async def _check(session: str) -> dict:
    from library.activities import service

    rows = await service.waitlist(session)
    arrivals = [row["arrival"] for row in rows]
    confirmed = sorted(row["arrival"] for row in rows if row["status"] == "confirmed")
    waiting = [row["arrival"] for row in rows if row["status"] == "waitlisted"]
    return {"confirmed": len(confirmed), "waitlisted": len(waiting),
            "arrival_order_ok": arrivals == list(range(1, len(rows) + 1)) and confirmed == list(range(1, SEATS + 1))
            and waiting == sorted(waiting)}


def _child(env: dict, code: str) -> dict:
    """Run `code` (an awaitable expression over this module) with the bench database's settings."""
    script = ("import asyncio, json, sys\n"
              "from bench import activities as bench\n"
              f"print(json.dumps(asyncio.run({code}), default=str))\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _http(base: str, session: str) -> Measurement:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1), which aiohttp skips by default.
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(base + "/") as response:
            await response.read()
        token = next(c.value for c in client.cookie_jar if c.key == "library_csrf")
        headers = {"X-CSRFToken": token}
        async with client.post(base + "/api/session", json=LOGIN, headers=headers) as response:
            assert response.status in (200, 201), await response.text()
        # Signing in starts a new session, and with it a new CSRF token.
        headers = {"X-CSRFToken": next(c.value for c in client.cookie_jar if c.key == "library_csrf")}
        gate = asyncio.Semaphore(IN_FLIGHT)
        result = Measurement(0, 0, 0.0)

        async def one(n: int) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    async with client.post(f"{base}/api/activities/sessions/{session}/registrations",
                                           json={"card_numbers": [card(n)]}, headers=headers) as response:
                        await response.read()
                        failed = response.status >= 500 or response.status != 201
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failed = True
                result.requests += 1
                result.errors += 1 if failed else 0
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(REQUESTS)))
        result.duration_s = time.perf_counter() - started
        return result


def register(engine: str) -> list[dict]:
    with database(engine) as env:
        sessions = _child(env, "bench._seed()")
        direct = _child(env, f"bench._direct({sessions['direct']!r})")
        ceiling = Measurement(REQUESTS, direct["errors"], direct["duration_s"], direct["latencies"])
        with server(env) as base:
            measured = asyncio.run(_http(base, sessions["http"]))
        http_check = _child(env, f"bench._check({sessions['http']!r})")
        direct_check = _child(env, f"bench._check({sessions['direct']!r})")
    return [{
        "bench": "activities.register", "engine": engine, "value": round(measured.rate, 1), "unit": "req/s",
        "ceiling": round(ceiling.rate, 1), "ratio": round(measured.rate / ceiling.rate, 3) if ceiling.rate else None,
        "p50_ms": round(measured.percentile(0.50), 2), "p99_ms": round(measured.percentile(0.99), 2),
        "ceiling_p50_ms": round(ceiling.percentile(0.50), 2), "ceiling_p99_ms": round(ceiling.percentile(0.99), 2),
        "errors": measured.errors, "ceiling_errors": ceiling.errors, "requests": measured.requests,
        "in_flight": IN_FLIGHT, "seats": SEATS, **{f"http_{k}": v for k, v in http_check.items()},
        **{f"direct_{k}": v for k, v in direct_check.items()},
    }]


if __name__ == "__main__":
    for engine in sys.argv[1:] or ["sqlite"]:
        for line in register(engine):
            print(json.dumps(line, ensure_ascii=False))
