"""`library serve` as an operator starts it: where it listens, and whose address it believes.

A real server (uvicorn, in a child process) on a fresh, migrated database: a SQLite file,
or a PostgreSQL database when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import node_folder
from tests.sync.nodes import PYTHON, ROOT, Node, free_port


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[Path, str]]:
    """A data folder and a migrated database, shared by the servers of this module."""
    with node_folder("serve") as (data_dir, url):
        Node("serve", data_dir, url).library("migrate")
        yield data_dir, url


@pytest.fixture
def server(database) -> Iterator:
    """Start `library serve` with the given settings (no --host, no --port: the settings say)."""
    data_dir, url = database
    started: list[tuple[Node, subprocess.Popen]] = []

    def start(**settings: str) -> Node:
        node = Node("serve", data_dir, url, settings)
        log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - the child keeps it open
        process = subprocess.Popen([PYTHON, "-m", "library.cli", "serve"], env=node.env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()
        started.append((node, process))
        address = f"http://{settings.get('LIBRARY_HOST', '127.0.0.1')}:{settings['LIBRARY_PORT']}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(address + "/health", timeout=1).status_code == 200:
                    return node
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, node.server_log()[-3000:]
            time.sleep(0.1)

    yield start
    for node, process in started:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        node.execute("DELETE FROM sign_in_failure")


def test_the_server_listens_where_the_settings_say(server):
    """LIBRARY_HOST / LIBRARY_PORT: without --host and --port, `library serve` listens there, and only there."""
    port = free_port()
    node = server(LIBRARY_HOST="127.0.0.2", LIBRARY_PORT=str(port))
    assert httpx.get(f"http://127.0.0.2:{port}/health", timeout=5).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert f"serving on http://127.0.0.2:{port}" in node.server_log()


def sign_in_failures(port: int, forwarded_for: str, cards: list[str]) -> list[int]:
    """Wrong PINs for `cards` through a reverse proxy that says the client is `forwarded_for`."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        client.get("/health")
        client.get("/signin")
        headers = {"X-CSRFToken": client.cookies["library_csrf"], "X-Forwarded-For": forwarded_for}
        return [client.post("/api/session", json={"kind": "patron", "login": card, "secret": "000000"},
                            headers=headers).status_code for card in cards]


def test_x_forwarded_for_is_believed_only_from_the_proxies_named(server):
    """LIBRARY_FORWARDED_ALLOW_IPS: from a listed proxy, X-Forwarded-For names the client, so the
    sign-in throttle counts each reader's address apart; from anyone else the header is ignored and
    every failure counts against the connecting address. LIBRARY_SIGNIN_FAILURES_PER_MINUTE=1: four
    failures per address (on different cards, one each)."""
    cards = [f"ZX7000000{n}" for n in range(1, 6)]
    limit = {"LIBRARY_SIGNIN_FAILURES_PER_MINUTE": "1"}

    # Behind the proxy on 127.0.0.1: two readers, each with an address of their own.
    port = free_port()
    server(LIBRARY_PORT=str(port), LIBRARY_FORWARDED_ALLOW_IPS="127.0.0.1", **limit)
    assert sign_in_failures(port, "198.51.100.1", cards) == [401, 401, 401, 401, 429]
    assert sign_in_failures(port, "198.51.100.2", ["ZX70000011"]) == [401]

    # The connection does not come from a listed proxy: the header is anybody's to write.
    port = free_port()
    server(LIBRARY_PORT=str(port), LIBRARY_FORWARDED_ALLOW_IPS="192.0.2.10", **limit)
    other_cards = [f"ZX7100000{n}" for n in range(1, 5)]
    assert sign_in_failures(port, "198.51.100.3", other_cards) == [401, 401, 401, 401]
    assert sign_in_failures(port, "198.51.100.4", ["ZX70000021"]) == [429]  # 127.0.0.1 has had its four
