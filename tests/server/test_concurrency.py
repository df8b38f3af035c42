"""The invariants concurrency can break, held with several server processes on one database.

In one process, SQLite's writers queue on an asyncio lock before BEGIN IMMEDIATE (library.db),
so the concurrency tests of tests/integration never have two SQLite writers meet in the
database itself: SQLite's busy handler, a BEGIN that finds the file locked by another process
(`run_script` then goes on in the connection's thread), a write transaction that is not
IMMEDIATE — none of it happens there. (Tried: with write transactions made DEFERRED, the
in-process tests of one loan per copy, seats and renewals still pass; these fail with 500s,
"database is locked".) `library serve --workers N` is a supported way to run on SQLite (one
file in WAL mode, IMMEDIATE write transactions, a 30 s busy timeout), so it is tried here as
an operator runs it: a real server with four worker processes on a fresh SQLite file (two on
a fresh PostgreSQL database when the suite runs on PostgreSQL), and requests arriving at
once over HTTP from many connections, which the workers share between them.

- 200 readers registering at once for a session of 25 seats: 25 confirmed, 175 on the
  waitlist in arrival order, nobody refused by an error;
- twelve desks scanning the same copy at once, for each of eight copies: one loan per
  copy, the eleven others refused with the reason, never a 500.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import SERVER_START_SECONDS, node_folder, serve_with_workers
from tests.sync.nodes import PYTHON, ROOT, Node

POSTGRES = bool(os.environ.get("LIBRARY_TEST_DATABASE_URL"))
# Each worker's PostgreSQL pool holds up to 20 connections (library.app): four would take 80 of
# the server's default 100, more than a test server shared with the suite can spare. The point
# of several processes is SQLite's, whose in-process lock they get past.
WORKERS = 2 if POSTGRES else 4
READERS = 200
SEATS = 25
COPIES = 8
DESKS = 12  # scanning each copy at once


class Served(Node):
    """A node whose server is `library serve --workers N`."""

    def start(self, timeout: float = SERVER_START_SECONDS) -> None:
        serve_with_workers(self, WORKERS, timeout)

    def worker_pids(self) -> list[int]:
        return sorted({int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", self.server_log())})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Served, dict]]:
    with node_folder("processes") as (data_dir, url):
        served = Served("processes", data_dir, url)
        try:
            served.library("migrate")
            served.library("demo")
            prepared = subprocess.run(
                [PYTHON, "-c", "from tests.server import world; world.main()",
                 json.dumps({"readers": READERS, "capacity": SEATS, "copies": COPIES})],
                env=served.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert prepared.returncode == 0, prepared.stderr[-3000:]
            world = json.loads(prepared.stdout.strip().splitlines()[-1])
            served.start()
            yield served, world
        finally:
            served.stop()
            print(f"--- server log ---\n{served.server_log()[-6000:]}")  # shown when a test failed


async def at_once(served: Served, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    """Staff at the desk send every request at the same moment, each on a connection of its own."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=served.url, timeout=120, limits=limits) as client:
        await client.get("/")
        headers = {"X-CSRFToken": client.cookies["library_csrf"], "Accept-Language": "en"}
        signed = await client.post("/api/session", json={"kind": "staff", "login": "admin",
                                                        "secret": "admin-demo-pass"}, headers=headers)
        assert signed.status_code == 201, signed.text
        headers["X-CSRFToken"] = client.cookies["library_csrf"]  # signing in changed the token
        return await asyncio.gather(*(client.post(path, json=body, headers=headers) for path, body in requests))


def several_workers_served(served: Served, burst) -> list[httpx.Response]:
    """Run the burst; on SQLite assert that more than one worker process did the work.

    The kernel hands the shared socket's connections to whichever worker accepts first: on
    PostgreSQL, where a request is quick, one worker sometimes takes the whole burst (seen in
    CI: 0.46 s of CPU against 0.04). There the invariants are the database's either way; on
    SQLite, where several processes contending for the file's write lock is the point of this
    test, requests wait on that lock and the burst spreads."""
    pids = served.worker_pids()
    assert len(pids) == WORKERS, served.server_log()[-3000:]
    before = {pid: cpu_seconds(pid) for pid in pids}
    responses = asyncio.run(burst)
    busy = [pid for pid in pids if cpu_seconds(pid) - before[pid] > 0.05]
    if not POSTGRES:
        assert len(busy) >= 2, ({pid: cpu_seconds(pid) - before[pid] for pid in pids},
                                "one worker did all the work")
    errors = [f"{r.status_code} {r.text[:300]}" for r in responses if r.status_code >= 500]
    assert not errors, errors[:3]
    return responses


def test_seats_are_never_above_capacity_with_several_server_processes(node):
    served, world = node
    path = f"/api/activities/sessions/{world['session']}/registrations"
    responses = several_workers_served(served, at_once(served, [(path, {"card_numbers": [card]})
                                                                for card in world["cards"]]))
    assert collections.Counter(r.status_code for r in responses) == {201: READERS}
    outcomes = collections.Counter(r.json()[0]["status"] for r in responses)
    assert outcomes == {"confirmed": SEATS, "waitlisted": READERS - SEATS}
    # What the database holds, as each process saw it: the seats, and one waitlist in one order.
    rows = served.rows("SELECT r.status, COUNT(*) AS n FROM registration r JOIN occurrence o ON o.id = r.occurrence "
                       "WHERE o.uuid = ? GROUP BY r.status", world["session"])
    assert {row["status"]: row["n"] for row in rows} == {"confirmed": SEATS, "waitlisted": READERS - SEATS}
    positions = sorted(r.json()[0]["position"] for r in responses if r.json()[0]["status"] == "waitlisted")
    assert positions == list(range(1, READERS - SEATS + 1))
    assert "database is locked" not in served.server_log()


def test_one_copy_is_lent_once_with_several_server_processes(node):
    served, world = node
    requests = [("/api/loans/checkout", {"branch": "ZX", "card_number": world["cards"][copy * DESKS + desk],
                                         "barcode": barcode})
                for copy, barcode in enumerate(world["barcodes"]) for desk in range(DESKS)]
    responses = several_workers_served(served, at_once(served, requests))
    by_copy: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (_, body), response in zip(requests, responses):
        by_copy[body["barcode"]][response.status_code] += 1
        if response.status_code == 409:
            assert response.json()["reasons"][-1]["code"] == "item_on_loan", response.text
    assert by_copy == {barcode: {201: 1, 409: DESKS - 1} for barcode in world["barcodes"]}
    marks = ", ".join("?" for _ in world["barcodes"])
    open_loans = served.rows(f"SELECT i.barcode, COUNT(*) AS n FROM loan l JOIN item i ON i.id = l.item "
                             f"WHERE l.returned_at IS NULL AND i.barcode IN ({marks}) GROUP BY i.barcode",
                             *world["barcodes"])
    assert {row["barcode"]: row["n"] for row in open_loans} == {barcode: 1 for barcode in world["barcodes"]}
    assert "database is locked" not in served.server_log()
