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
import json

from bench.activities import SEATS, directly, registration_figure, registrations

REQUESTS = 1000
SESSIONS = 8  # seats and requests in flight are bench.activities' own, so the two figures compare


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

    return await directly(requests, lambda admin, n: service.register_programme(
        admin, "series", event, [child(n)], None, dt.datetime.now(dt.timezone.utc)))


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


def register_programme(engine: str, requests: int = REQUESTS) -> list[dict]:
    measured, direct, checks = registrations(engine, "bench.activities_programme", requests,
                                             "/api/activities/series/{}/registrations", child)
    return [registration_figure("activities.register_programme", engine, "programme registrations/s", measured,
                                direct, sessions_each=SESSIONS, **checks)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.activities_programme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engines", nargs="*", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="guardians (default 1000; at least 31)")
    args = parser.parse_args()
    for engine in args.engines:
        for line in register_programme(engine, max(args.requests, SEATS + 1)):
            print(json.dumps(line, ensure_ascii=False))
