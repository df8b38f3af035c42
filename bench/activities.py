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
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.harness import Measurement, database, in_child, in_flight, server

REQUESTS = 1000
IN_FLIGHT = 100
SEATS = 30
LOGIN = {"kind": "staff", "login": "admin", "secret": "admin-demo-pass"}


def card(n: int) -> str:
    return f"BR{n:07d}"


async def _seed(requests: int = REQUESTS) -> dict[str, str]:
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
              now, now) for n in range(requests)])

    await run_in_write_transaction(readers)
    sessions = {}
    for name, hour in (("http", 10), ("direct", 14)):
        start = dt.datetime.combine(dt.date.today() + dt.timedelta(days=30), dt.time(hour, 0))
        event = await service.schedule_event(admin, service.EventInput(
            branch_code="ZX", title_zh=f"基准测试 {name}", first_start=start, duration_minutes=60, capacity=SEATS,
            registration_opens_at=now - dt.timedelta(days=1)), now)
        sessions[name] = str((await service.occurrences_of(event))[0]["uuid"])
    return sessions


async def directly(count: int, register: Callable[[Any, int], Awaitable[object]]) -> dict:
    """The ceiling, in the bench's child process: `register(admin, n)` for every n below `count`
    straight on the service, IN_FLIGHT at a time, with a pool as the server has on PostgreSQL;
    `admin` is the demo's network administrator."""
    from library.db import engine
    from library.demo import _network_admin

    db = engine()
    if type(db).__name__ == "PostgresEngine":
        await db.start_connection_pool(min_size=2, max_size=20)
    admin = _network_admin()

    async def attempt(n: int) -> bool:
        try:
            await register(admin, n)
        except Exception:  # noqa: BLE001 - counted
            return False
        return True

    measured = await in_flight(count, IN_FLIGHT, attempt)
    return {"duration_s": measured.duration_s, "latencies": measured.latencies_ms, "errors": measured.errors}


async def over_http(base: str, count: int, path: str, card_of: Callable[[int], str]) -> Measurement:
    """`count` POSTs of {"card_numbers": [card_of(n)]} to `path`, IN_FLIGHT at a time, by a desk
    signed in as the demo's network administrator; anything but 201 counts as an error."""
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1), which aiohttp skips by default.
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(base + "/") as response:
            await response.read()
        token = next(c.value for c in client.cookie_jar if c.key == "library_csrf")
        async with client.post(base + "/api/session", json=LOGIN, headers={"X-CSRFToken": token}) as response:
            assert response.status in (200, 201), await response.text()
        # Signing in starts a new session, and with it a new CSRF token.
        headers = {"X-CSRFToken": next(c.value for c in client.cookie_jar if c.key == "library_csrf")}

        async def attempt(n: int) -> bool:
            async with client.post(base + path, json={"card_numbers": [card_of(n)]}, headers=headers) as response:
                await response.read()
                return response.status == 201

        return await in_flight(count, IN_FLIGHT, attempt)


def registrations(engine: str, module: str, count: int, path: str,
                  card_of: Callable[[int], str]) -> tuple[Measurement, dict, dict]:
    """What both registration benches do on a fresh database, with `module`'s own steps run in a
    second process: `bench._seed(count)` makes two identical targets, "http" and "direct";
    `bench._direct(target, count)` measures the ceiling on one; `count` POSTs to
    `path.format(target)` go to the real server for the other; `bench._check(target, count)` looks at
    both afterwards. (HTTP measurement, the ceiling as `directly` answers, the checks.)"""
    with database(engine) as env:
        targets = in_child(env, module, f"bench._seed({count})")
        direct = in_child(env, module, f"bench._direct({targets['direct']!r}, {count})")
        with server(env) as base:
            measured = asyncio.run(over_http(base, count, path.format(targets["http"]), card_of))
        checks = {f"{name}_{k}": v for name in ("http", "direct")
                  for k, v in in_child(env, module, f"bench._check({targets[name]!r}, {count})").items()}
    return measured, direct, checks


def registration_figure(bench: str, engine: str, unit: str, measured: Measurement, direct: dict,
                        **checks: object) -> dict:
    """One JSON line: the rate over HTTP beside the ceiling's (`direct`, as `directly` answers)."""
    ceiling = Measurement(len(direct["latencies"]), direct["errors"], direct["duration_s"], direct["latencies"])
    return {
        "bench": bench, "engine": engine, "value": round(measured.rate, 1), "unit": unit,
        "ceiling": round(ceiling.rate, 1), "ratio": round(measured.rate / ceiling.rate, 3) if ceiling.rate else None,
        "p50_ms": round(measured.percentile(0.50), 2), "p99_ms": round(measured.percentile(0.99), 2),
        "ceiling_p50_ms": round(ceiling.percentile(0.50), 2), "ceiling_p99_ms": round(ceiling.percentile(0.99), 2),
        "errors": measured.errors, "ceiling_errors": ceiling.errors, "requests": measured.requests,
        "in_flight": IN_FLIGHT, "seats": SEATS, **checks,
    }


async def _direct(session: str, requests: int = REQUESTS) -> dict:
    import datetime as dt

    from library.activities import service

    return await directly(requests, lambda admin, n: service.register(
        admin, session, [card(n)], dt.datetime.now(dt.timezone.utc)))


async def _check(session: str, requests: int = REQUESTS) -> dict:
    from library.activities import service

    rows = await service.waitlist(session)
    arrivals = [row["arrival"] for row in rows]
    confirmed = sorted(row["arrival"] for row in rows if row["status"] == "confirmed")
    waiting = [row["arrival"] for row in rows if row["status"] == "waitlisted"]
    return {"confirmed": len(confirmed), "waitlisted": len(waiting),
            "arrival_order_ok": arrivals == list(range(1, len(rows) + 1)) and confirmed == list(range(1, SEATS + 1))
            and waiting == sorted(waiting)}


def register(engine: str) -> list[dict]:
    measured, direct, checks = registrations(engine, "bench.activities", REQUESTS,
                                             "/api/activities/sessions/{}/registrations", card)
    return [registration_figure("activities.register", engine, "req/s", measured, direct, **checks)]


if __name__ == "__main__":
    for engine in sys.argv[1:] or ["sqlite"]:
        for line in register(engine):
            print(json.dumps(line, ensure_ascii=False))
