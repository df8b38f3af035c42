"""reports.dashboard: the statistics page of a year for the network over three years of history.

A fresh database (migrated, demo loaded) gets a generated history over the three years before
today at the demo's branches: readers, copies, LOANS returned loans (2,000,000 in issue 22;
200,000 by default so that it finishes in minutes on a 2-core machine) and SESSIONS activity
sessions with registrations, as the retention job leaves them (a loan returned more than the
history days ago no longer names its reader). The counts are then made once, as the first page would
(`library.reports.service.refresh`), and that time is reported (`build_s`).

Then, against the real server (uvicorn, one worker), signed in as the network administrator:
GET /staff/reports/?period=year&at=<last full year> by CONCURRENCY clients for DURATION s.

Two ceilings in the same run, each run by a child process on the same database:
- `bare_ms`: the bare aggregate query of the same loan numbers over the stored loans (loans of
  the year by month, branch and reader category, GROUP BY in SQL): what the page would cost
  without the counts;
- `counts_ms`: the page's own aggregate query over the counts table.
Goal (issue 22): p95 under 150 ms and at most 3× the bare query.

    python -m bench.reports [sqlite|postgres ...] [--loans N] [--sessions N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time

import aiohttp

from bench.harness import ROOT, database, drive, server

LOGIN = {"kind": "staff", "login": "admin", "secret": "admin-demo-pass"}
CONCURRENCY = 4
DURATION = 8.0
# Issue 22: three years of history, 2,000,000 loans and 20,000 sessions.
ISSUE_LOANS, ISSUE_SESSIONS = 2_000_000, 20_000
READERS, COPIES, EVENTS = 5000, 5000, 100


async def _seed(loans: int, sessions: int) -> dict:
    import datetime as dt
    import uuid

    from library.branches.tables import Branch
    from library.db import executemany, run_in_write_transaction
    from library.privacy.retention import forget
    from library.reports import service
    from library.settings import load_settings

    rng = random.Random(22)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now - dt.timedelta(days=3 * 365)
    branches = [row["id"] for row in await Branch.select(Branch.id)]
    span = int((now - start).total_seconds())

    def moment() -> dt.datetime:
        return start + dt.timedelta(seconds=rng.randrange(span))

    async def people_and_copies() -> None:
        await executemany(
            "INSERT INTO patron (uuid, card_number, name, category, birth_date, home_branch, phone, email, language, "
            "expires_on, pin_hash, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            [(str(uuid.uuid4()), f"RB{n:07d}", f"读者{n}", rng.choice(("adult", "child", "senior")),
              dt.date(1950 + rng.randrange(70), 1 + rng.randrange(12), 1), rng.choice(branches), "", "", "zh_CN",
              dt.date(2035, 1, 1), "-", moment(), now) for n in range(READERS)])
        await executemany("INSERT INTO record (uuid, title, created_at, updated_at) VALUES ({}, {}, {}, {})",
                          [(str(uuid.uuid4()), "基准", now, now)])

    await run_in_write_transaction(people_and_copies)
    record = (await Branch.raw("SELECT max(id) AS id FROM record"))[0]["id"]
    patrons = [(row["id"], row["category"]) for row in await Branch.raw(
        "SELECT id, category FROM patron WHERE card_number LIKE 'RB%'")]

    async def copies() -> None:
        await executemany(
            "INSERT INTO item (uuid, record, barcode, home_branch, current_branch, status, created_at, updated_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
            [(str(uuid.uuid4()), record, f"RC{n:08d}", branch, branch, "available", moment(), now)
             for n in range(COPIES) for branch in [rng.choice(branches)]])

    await run_in_write_transaction(copies)
    items = [row["id"] for row in await Branch.raw("SELECT id FROM item WHERE barcode LIKE 'RC%'")]
    settings = load_settings()
    forgotten_before = now - dt.timedelta(days=settings.loan_history_days)
    for first in range(0, loans, 20000):
        batch = []
        for _ in range(min(20000, loans - first)):
            out = moment()
            back = min(out + dt.timedelta(days=rng.randrange(1, 40)), now)
            patron, category = rng.choice(patrons)
            if back < forgotten_before:
                patron = None  # as the retention job leaves a returned loan (the category stays)
            branch = rng.choice(branches)
            batch.append((str(uuid.uuid4()), rng.choice(items), patron, category, branch, out,
                          (out + dt.timedelta(days=28)).date(), out + dt.timedelta(days=28), back, branch, now))

        async def write(rows=batch) -> None:
            await executemany(
                "INSERT INTO loan (uuid, item, patron, patron_category, branch, checked_out_at, due_on, due_at, "
                "returned_at, returned_branch, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})", rows)

        await run_in_write_transaction(write)

    async def activities() -> None:
        await executemany(
            "INSERT INTO event (uuid, branch, kind, title_zh, capacity, first_start, duration_minutes, updated_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
            [(str(uuid.uuid4()), rng.choice(branches), rng.choice(("reading_club", "lecture", "workshop")),
              f"活动{n}", 30, start.replace(tzinfo=None), 60, now) for n in range(EVENTS)])

    await run_in_write_transaction(activities)
    events = [row["id"] for row in await Branch.raw("SELECT id FROM event WHERE title_zh LIKE '活动%'")]
    occurrences = []
    for n in range(sessions):
        at = moment().replace(minute=0, second=0)
        # The series' own start (unique per event): one a minute apart, whatever the real start.
        occurrences.append((str(uuid.uuid4()), events[n % len(events)], start.replace(tzinfo=None) + dt.timedelta(
            minutes=n), at.replace(tzinfo=None), at.replace(tzinfo=None) + dt.timedelta(hours=1), at,
            at + dt.timedelta(hours=1), 30, 5, now))

    async def sessions_rows() -> None:
        await executemany(
            "INSERT INTO occurrence (uuid, event, original_start, local_start, local_end, starts_at, ends_at, "
            "capacity, confirmed, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})", occurrences)

    await run_in_write_transaction(sessions_rows)
    occurrence_rows = await Branch.raw("SELECT id, starts_at FROM occurrence")
    # One seat per reader and session (a unique constraint): five different readers each.
    registrations = [(str(uuid.uuid4()), row["id"], patron[0], k,
                      rng.choice(("attended", "attended", "attended", "no_show", "confirmed")), now)
                     for row in occurrence_rows for k, patron in enumerate(rng.sample(patrons, 5))]

    async def registration_rows() -> None:
        await executemany("INSERT INTO registration (uuid, occurrence, patron, arrival, status, created_at) "
                          "VALUES ({}, {}, {}, {}, {}, {})", registrations)

    await run_in_write_transaction(registration_rows)
    # Three years of a running server: its retention job has forgotten what the table says as it went,
    # so the measured server finds nothing to forget (a first run over 2,000,000 loans is its own story).
    await forget(now, settings.loan_history_days, settings.activity_history_days)
    started = time.perf_counter()
    # Stamped with the time the counts are made, so the measured pages do not pay a refresh.
    await service.refresh(dt.datetime.now(dt.timezone.utc), force=True)
    return {"build_s": round(time.perf_counter() - started, 1), "year": now.year - 1}


async def _bare(year: int, repeats: int = 7) -> dict:
    """The same loan numbers straight from the stored loans, and the page's query over the counts."""
    from library.db import engine, is_sqlite
    from library.reports import rules, service
    from library.reports.tables import DailyCount

    period = rules.parse_period("year", str(year))
    first, last = rules.days_window(period.first, period.last, "Asia/Shanghai")
    month = ("strftime('%Y-%m', datetime(checked_out_at, '+8 hours'))" if is_sqlite()
             else "to_char(checked_out_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')")
    # Engine-specific on purpose: the ceiling is the fastest way each engine can say it.
    bare_sql = (f"SELECT {month} AS month, branch, patron_category, count(*) AS n FROM loan "
                "WHERE checked_out_at >= {} AND checked_out_at < {} GROUP BY 1, 2, 3")
    db = engine()
    if type(db).__name__ == "PostgresEngine":
        await db.start_connection_pool(min_size=1, max_size=2)
    ids = [row["id"] for row in await DailyCount.raw("SELECT id FROM branch")]
    bare, counts, checked = [], [], None
    for _ in range(repeats):
        started = time.perf_counter()
        rows = await DailyCount.raw(bare_sql, first, last)
        bare.append((time.perf_counter() - started) * 1000)
        checked = sum(int(row["n"]) for row in rows)
        started = time.perf_counter()
        await service._summed(ids, period)
        counts.append((time.perf_counter() - started) * 1000)
    return {"bare_ms": sorted(bare)[len(bare) // 2], "counts_ms": sorted(counts)[len(counts) // 2],
            "bare_loans": checked}


def _child(env: dict, code: str) -> dict:
    script = ("import asyncio, json\nfrom bench import reports as bench\n"
              f"print(json.dumps(asyncio.run({code}), default=str))\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _signed_in_get(base: str, path: str, duration: float) -> tuple:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        async with client.get(base + "/") as response:
            await response.read()
        token = next(c.value for c in client.cookie_jar if c.key == "library_csrf")
        async with client.post(base + "/api/session", json=LOGIN, headers={"X-CSRFToken": token}) as response:
            assert response.status in (200, 201), await response.text()
        cookies = {c.key: c.value for c in client.cookie_jar}
    seen = {}

    async def request(session: aiohttp.ClientSession, base_url: str) -> bool:
        async with session.get(base_url + path, cookies=cookies) as response:
            body = await response.text()
            seen.setdefault("total", body.count('data-total="loans"'))
            return response.status == 200

    measured = await drive(base, request, CONCURRENCY, duration, warmup_s=2.0)
    return measured, seen


def dashboard(engine: str, loans: int, sessions: int, duration: float = DURATION) -> dict:
    with database(engine) as env:
        seeded = _child(env, f"bench._seed({loans}, {sessions})")
        ceilings = _child(env, f"bench._bare({seeded['year']})")
        with server(env) as base:
            measured, seen = asyncio.run(_signed_in_get(
                base, f"/staff/reports/?period=year&at={seeded['year']}", duration))
    p95 = measured.percentile(0.95)
    return {"bench": "reports.dashboard", "engine": engine, "value": round(p95, 2), "unit": "p95_ms",
            "ceiling": round(ceilings["bare_ms"], 2), "ratio": round(p95 / ceilings["bare_ms"], 3),
            "p50_ms": round(measured.percentile(0.5), 2), "p99_ms": round(measured.percentile(0.99), 2),
            "counts_query_ms": round(ceilings["counts_ms"], 2), "errors": measured.errors,
            "requests": measured.requests, "req_s": round(measured.rate, 1), "loans": loans, "sessions": sessions,
            "loans_in_year": ceilings["bare_loans"], "build_s": seeded["build_s"], "concurrency": CONCURRENCY,
            "page_has_loans": bool(seen.get("total"))}


def run(engine: str, duration: float = DURATION, records: int = ISSUE_LOANS) -> list[dict]:
    """For `python -m bench reports.dashboard`: issue 22's size (--records: how many loans)."""
    return [dashboard(engine, records, ISSUE_SESSIONS if records >= ISSUE_LOANS else max(2_000, records // 100),
                      duration)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engines", nargs="*", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--loans", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--duration", type=float, default=DURATION)
    args = parser.parse_args()
    for engine in args.engines:
        print(json.dumps(dashboard(engine, args.loans, args.sessions, args.duration), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
