"""/metrics from a node run as docs/deploy.md runs it: `library serve --workers 2` with the SIP2 server
beside it, PROMETHEUS_MULTIPROC_DIR an empty folder, LIBRARY_LOG_FORMAT=json.

Three processes answer for the node (two web workers, the SIP2 server), and a scrape reaches one
web worker: what it reports must be the node's, not its own share. The kernel hands connections to
whichever worker accepts first, so the test sends enough requests on fresh connections that both
workers most likely answer some; the sum is checked either way.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import SERVER_START_SECONDS, node_folder, serve_with_workers
from tests.sync.nodes import Node, free_port

POSTGRES = bool(os.environ.get("LIBRARY_TEST_DATABASE_URL"))
TOKEN = "served-metrics-" + "z" * 40
PINGS = 60


class ServedWithMetrics(Node):
    def start(self, timeout: float = SERVER_START_SECONDS) -> None:
        serve_with_workers(self, 2, timeout, started=lambda log: "SIP2 server on" in log)


@pytest.fixture(scope="module")
def node() -> Iterator[ServedWithMetrics]:
    with node_folder("metrics") as (data_dir, url):
        metrics_dir = data_dir / "metrics"
        metrics_dir.mkdir()
        served = ServedWithMetrics("metrics", data_dir, url, settings={
            "LIBRARY_METRICS_TOKEN": TOKEN, "LIBRARY_LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LIBRARY_SIP2_ENABLED": "true", "LIBRARY_SIP2_PORT": str(free_port())})
        try:
            served.library("migrate")
            served.start()
            yield served
        finally:
            served.stop()
            print(f"--- server log ---\n{served.server_log()[-6000:]}")  # shown when a test failed


def scrape(node: Node) -> dict[tuple[str, tuple], float]:
    answer = httpx.get(node.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


PING = ("library_http_requests_total", (("method", "GET"), ("route", "/api/ping"), ("status", "200")))


def test_every_process_of_the_node_is_in_one_scrape(node):
    """PROMETHEUS_MULTIPROC_DIR: sixty pings on fresh connections, whichever worker took each, are
    sixty in any scrape; a machine connected to the SIP2 process is one session in the web's scrape."""
    before = scrape(node).get(PING, 0.0)
    for _ in range(PINGS):
        assert httpx.get(node.url + "/api/ping", timeout=10).status_code == 200
    for _ in range(3):  # three scrapes, perhaps three workers: the same sum each time
        assert scrape(node)[PING] - before == PINGS

    sip2 = int(node.env["LIBRARY_SIP2_PORT"])
    with socket.create_connection(("127.0.0.1", sip2), timeout=5):
        deadline = time.monotonic() + 10
        while scrape(node).get(("library_sip2_sessions", ()), 0.0) != 1.0:
            assert time.monotonic() < deadline, "the SIP2 session never showed"
            time.sleep(0.1)
    deadline = time.monotonic() + 10
    while scrape(node).get(("library_sip2_sessions", ()), 0.0) != 0.0:
        assert time.monotonic() < deadline, "the SIP2 session never left the count"
        time.sleep(0.1)


def test_the_web_workers_log_json_lines_with_the_request_id(node):
    """LIBRARY_LOG_FORMAT=json under uvicorn: the access line of a request carries the id its answer
    gave (the proxy's own, here), and every line the web workers wrote parses as JSON."""
    answer = httpx.get(node.url + "/api/ping", headers={"X-Request-ID": "proxy-7f3a"}, timeout=10)
    assert answer.headers["x-request-id"] == "proxy-7f3a"
    deadline = time.monotonic() + 10
    while '"proxy-7f3a"' not in node.server_log():
        assert time.monotonic() < deadline, node.server_log()[-3000:]
        time.sleep(0.1)
    records = [json.loads(line) for line in node.server_log().splitlines() if line.startswith("{")]
    access = [record for record in records if record.get("request_id") == "proxy-7f3a"]
    assert access and access[0]["logger"] == "uvicorn.access" and "/api/ping" in access[0]["message"]
    # What is not JSON comes from outside the web workers: `library serve`'s own first line, the SIP2
    # process (logging set up by `library sip2`), uvicorn's supervisor before any app is loaded.
    workers = [line for line in node.server_log().splitlines()
               if "Application startup complete" in line or "Started server process" in line]
    assert workers and all(line.startswith("{") for line in workers), workers
