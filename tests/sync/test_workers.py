"""`library serve --workers 4`: every worker runs the notice loop, one round runs per interval.

A real central node with four uvicorn workers (the engine under test: a SQLite file, or a
fresh PostgreSQL database), a notice interval of one second, and an outbox full of due
notices addressed to a real SMTP server in this process. Each round sends one batch and
stamps the batch's `sent_at` with the round's time, so the distinct `sent_at` values in the
database are the rounds that ran. Were each worker to run its own round, there would be
about four in every interval.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid as uuid_module
from collections.abc import Iterator

import pytest

from library.branches.leases import lease_seconds
from tests.integration.notice_world import Inbox, smtp_server
from tests.support import SERVER_START_SECONDS, node_folder, serve_with_workers
from tests.sync.nodes import Node, free_port

WORKERS = 4
INTERVAL = 1
RUN_SECONDS = 8
NOTICES = 2000  # 50 a round: enough for four rounds an interval, were the lease not there
CHUNK = 100  # 800 arguments: Node.execute numbers up to 999


class ServedByWorkers(Node):
    """A node whose server is `library serve --workers N`."""

    workers: int = WORKERS

    def start(self, timeout: float = SERVER_START_SECONDS) -> None:
        # Every worker, not only the first: each one starts its own notice loop.
        serve_with_workers(self, self.workers, timeout)


@pytest.fixture
def mail() -> Iterator[tuple[int, Inbox]]:
    port = free_port()
    with smtp_server(port) as inbox:
        yield port, inbox


@pytest.fixture
def central(mail: tuple[int, Inbox]) -> Iterator[ServedByWorkers]:
    """A fresh, migrated central node, its outbox full of due notices; server not started."""
    with node_folder("workers", "central.sqlite3") as (data_dir, url):
        node = ServedByWorkers("central", data_dir, url, {
            "LIBRARY_NODE_ROLE": "central", "LIBRARY_NOTICE_INTERVAL_SECONDS": str(INTERVAL),
            "LIBRARY_SMTP_HOST": "127.0.0.1", "LIBRARY_SMTP_PORT": str(mail[0])})
        try:
            node.library("migrate")
            queue_due_notices(node, NOTICES)
            yield node
        finally:
            node.stop()
            print(f"--- central server log ---\n{node.server_log()[-6000:]}")  # shown when the test failed


def queue_due_notices(node: Node, count: int) -> None:
    due = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    for start in range(0, count, CHUNK):
        numbers = range(start, min(count, start + CHUNK))
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in numbers)
        args = [value for n in numbers for value in (
            str(uuid_module.uuid4()), f"test:{n}", "overdue", f"reader{n}@example.org", "逾期提醒", "请还书。",
            due, due)]
        node.execute("INSERT INTO notice (uuid, key, kind, to_address, subject, body, created_at, send_after) "
                     f"VALUES {values}", *args)


def as_utc(value) -> dt.datetime:
    """sent_at as SQLite gives it (text) or PostgreSQL (a datetime)."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return moment.astimezone(dt.timezone.utc)


def test_four_workers_run_one_notice_round_per_interval(central: ServedByWorkers, mail: tuple[int, Inbox]):
    central.start()
    started = dt.datetime.now(dt.timezone.utc)  # every worker's loop is running
    time.sleep(RUN_SECONDS)
    stopped = dt.datetime.now(dt.timezone.utc)
    central.stop()

    log = central.server_log()
    assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == WORKERS, log[-3000:]
    assert "notice cycle failed" not in log, log[-3000:]
    rounds = sorted({as_utc(row["sent_at"]) for row in central.rows(
        "SELECT DISTINCT sent_at FROM notice WHERE sent_at IS NOT NULL")})
    assert central.count("notice", "sent_at IS NOT NULL") == 50 * len(rounds) == len(mail[1].messages)

    # At most one round per interval that went by while all four workers ran (not four times
    # as many); at least half as many, so the loops did run. Not "exactly as many": on a loaded
    # machine (CI saw 7 rounds in 8.0 intervals, one gap of 1.97) a round may start late, and
    # a late round is not the fault this test is about.
    intervals = (stopped - started).total_seconds() / INTERVAL
    during = [moment for moment in rounds if started <= moment <= stopped]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(rounds, rounds[1:])]
    assert intervals / 2 - 1 <= len(during) <= intervals + 1, (len(during), intervals, gaps)
    # ... and never two in one interval: the lease ends after 0.9 of it, and the database holds it till then.
    assert min(gaps) >= lease_seconds(INTERVAL), gaps
