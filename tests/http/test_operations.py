"""What an operator sees: /metrics (LIBRARY_METRICS_TOKEN), JSON log lines (LIBRARY_LOG_FORMAT) and
the request id that ties a reader's error to the log (docs/deploy.md, library/web/metrics.py).

Counters are the process's own and other tests count too, so each test compares before and after.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import subprocess
import sys

import pytest

from litestar import get
from prometheus_client.parser import text_string_to_metric_families

from library.app import create_app
from library.branches.tables import Branch
from library.notices.tables import Notice
from library.settings import SettingsError, load_settings
from library.sync.tables import SyncApplied, SyncState
from library.web.logs import JsonLines, configure_logging
from tests.support import client_for, empty_all_tables

TOKEN = "metrics-" + "x" * 40
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


def app_with(**variables: str):
    return create_app(load_settings({**os.environ, **variables}))


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await client.get("/metrics", headers=AUTHORIZED)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def requests_of(samples: dict, route: str, status: str = "200", method: str = "GET") -> float:
    return samples.get(("library_http_requests_total",
                        (("method", method), ("route", route), ("status", status))), 0.0)


async def test_metrics_are_off_without_a_token():
    """LIBRARY_METRICS_TOKEN unset (the default): the address does not exist, with or without a token."""
    assert load_settings(os.environ).metrics_token is None
    async with client_for(create_app(load_settings())) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics", headers=AUTHORIZED)).status_code == 404


async def test_metrics_answer_only_the_token():
    """LIBRARY_METRICS_TOKEN set: a scraper from the street without it, or with another, gets 401 and
    none of the figures."""
    async with client_for(app_with(LIBRARY_METRICS_TOKEN=TOKEN)) as client:
        for headers in ({}, {"Authorization": "Bearer " + "y" * len(TOKEN)}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "library_http" not in refused.text
        assert (await client.get("/metrics", headers=AUTHORIZED)).status_code == 200


async def test_requests_are_counted_by_route_template():
    """Two branches' pages are one route: counted under the template, never under the address."""
    await empty_all_tables()
    async with client_for(app_with(LIBRARY_METRICS_TOKEN=TOKEN)) as client:
        before = await scrape(client)
        for code in ("ZX", "NH"):
            await client.get(f"/api/branches/{code}/next-open-day", params={"on_or_after": "2026-12-01"})
        await client.get("/api/ping")
        after = await scrape(client)
    template = "/api/branches/{code}/next-open-day"
    answered = {labels for (name, labels) in after if name == "library_http_requests_total"
                and dict(labels)["route"] == template}
    assert answered and sum(after[("library_http_requests_total", labels)]
                            - before.get(("library_http_requests_total", labels), 0) for labels in answered) == 2
    assert requests_of(after, "/api/ping") - requests_of(before, "/api/ping") == 1
    timed = ("library_http_request_duration_seconds_count", (("method", "GET"), ("route", "/api/ping")))
    assert after[timed] - before.get(timed, 0) == 1
    assert not any("ZX" in value or "NH" in value for (_, labels) in after for _, value in labels)


async def test_a_hostile_client_adds_no_series():
    """A scanner sending made-up addresses and methods: each lands in the one `unmatched` route or the
    one `other` method, so the number of series stays what it was after the first of each."""
    async with client_for(app_with(LIBRARY_METRICS_TOKEN=TOKEN)) as client:
        await client.get("/no/such/page")
        await client.request("BREW", "/api/ping")
        await client.get("/api/branches/ZZ/next-open-day")
        before = await scrape(client)
        junk = [secrets.token_hex(6) for _ in range(20)]
        for word in junk:
            await client.get(f"/{word}/wp-login.php")
            await client.get(f"/api/branches/{word}/next-open-day")
            await client.request(word.upper(), "/api/ping")
        after = await scrape(client)
    new_series = {key for key in after if key[0].startswith("library_http")} - set(before)
    assert not new_series, new_series
    text = repr(after)
    assert not any(word in text or word.upper() in text for word in junk)
    assert requests_of(after, "unmatched", "404") - requests_of(before, "unmatched", "404") >= 20


def gauge(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_a_branch_box_reports_its_sync_and_its_outbox():
    """A branch box that syncs (LIBRARY_CENTRAL_URL) and last succeeded two hours ago, with three
    notices unsent: one not due yet, one due, one due that failed twice. The lag is at least the two
    hours, the failed round shows, the outbox says 3 waiting, 1 failing, the oldest due waited an hour."""
    await empty_all_tables()
    now = dt.datetime.now(dt.timezone.utc)
    succeeded = (now - dt.timedelta(hours=2)).replace(microsecond=0)
    await SyncState.insert(SyncState(id=1, cursor="log:12", last_success_at=succeeded,
                                     last_attempt_at=now - dt.timedelta(minutes=5), last_error="central unreachable"))
    for key, due, attempts in (("later", now + dt.timedelta(days=1), 0), ("due", now - dt.timedelta(minutes=10), 0),
                               ("failing", now - dt.timedelta(hours=1), 2)):
        await Notice.insert(Notice(key=key, kind="due_soon", to_address="reader@example.org", subject="s", body="b",
                                   created_at=now - dt.timedelta(hours=1), send_after=due, attempts=attempts))
    app = app_with(LIBRARY_METRICS_TOKEN=TOKEN, LIBRARY_CENTRAL_URL="http://central.invalid:8000",
                   LIBRARY_BRANCH_CODE="ZX", LIBRARY_SYNC_CREDENTIAL="zx-credential",
                   LIBRARY_SYNC_INTERVAL_SECONDS="0")
    async with client_for(app) as client:
        samples = await scrape(client)
    assert gauge(samples, "library_sync_last_success_timestamp_seconds") == succeeded.timestamp()
    assert gauge(samples, "library_sync_lag_seconds") >= 2 * 3600
    assert gauge(samples, "library_sync_last_round_failed") == 1.0
    assert gauge(samples, "library_sync_uploads_waiting") == 0.0
    assert gauge(samples, "library_notices_waiting") == 3.0
    assert gauge(samples, "library_notices_failing") == 1.0
    assert gauge(samples, "library_notices_oldest_due_seconds") >= 3600


async def test_the_central_node_reports_each_branch_s_last_upload():
    """LIBRARY_NODE_ROLE=central: a series per branch that uploaded, labelled by its code; no lag of
    its own (the central node syncs with nobody)."""
    await empty_all_tables()
    applied = dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.timezone.utc)
    for code in ("ZX", "XZ"):
        branch = Branch(code=code, name_zh=code, name_en=code)
        await branch.save()
        for hours in (0, 5):
            await SyncApplied.insert(SyncApplied(branch=branch.id, applied_at=applied - dt.timedelta(hours=hours)))
    async with client_for(app_with(LIBRARY_METRICS_TOKEN=TOKEN, LIBRARY_NODE_ROLE="central",
                                   LIBRARY_SYNC_INTERVAL_SECONDS="0")) as client:
        samples = await scrape(client)
    for code in ("ZX", "XZ"):
        assert gauge(samples, "library_sync_branch_last_upload_timestamp_seconds", branch=code) == applied.timestamp()
    assert gauge(samples, "library_sync_lag_seconds") is None


async def test_the_problem_body_and_the_header_carry_one_request_id():
    """A client reporting an error with its body quotes the id of the answer's header; a proxy's own id
    is kept when it looks like one, and a forged one (a newline for the logs) is replaced."""
    async with client_for(create_app(load_settings())) as client:
        missing = await client.get("/api/records/999999999")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["request_id"] == missing.headers["x-request-id"]
        assert len(missing.headers["x-request-id"]) >= 16

        proxied = await client.get("/api/records/999999999", headers={"X-Request-ID": "nginx-4f2a9c:17"})
        assert proxied.headers["x-request-id"] == "nginx-4f2a9c:17" == proxied.json()["request_id"]

        forged = await client.get("/api/ping", headers={"X-Request-ID": "abc\tFORGED level=ERROR"})
        assert forged.status_code == 200
        assert "FORGED" not in forged.headers["x-request-id"]
        too_long = await client.get("/api/ping", headers={"X-Request-ID": "a" * 65})
        assert too_long.headers["x-request-id"] != "a" * 65
        assert (await client.get("/api/ping")).headers["x-request-id"] != (
            await client.get("/api/ping")).headers["x-request-id"]


@get("/api/test-fails", include_in_schema=False, opt={"permission": "public"})
async def failing() -> None:
    raise RuntimeError("the bug under test")


async def test_json_log_lines_carry_the_request_id(capsys):
    """LIBRARY_LOG_FORMAT=json: each line on stderr is one JSON object; the lines a failing request
    wrote carry the id its answer (header and problem body) gave the client."""
    app = app_with(LIBRARY_LOG_FORMAT="json")
    app.register(failing)
    try:
        async with client_for(app) as client:
            answer = await client.get("/api/test-fails")
        assert answer.status_code == 500
        request_id = answer.headers["x-request-id"]
        assert answer.json()["request_id"] == request_id
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every line parses, or this fails
        errors = [record for record in records if record.get("request_id") == request_id]
        assert errors and errors[0]["level"] == "ERROR" and errors[0]["logger"] == "library.errors"
        assert "RuntimeError: the bug under test" in errors[0]["exception"]
        assert {"time", "level", "logger", "message"} <= set(errors[0])
    finally:
        configure_logging("text")


def test_text_logs_leave_no_json_behind():
    """LIBRARY_LOG_FORMAT=text (the default) after a JSON app in the same process: no JSON handler is
    left on the root logger to write a second copy of each line."""
    configure_logging("json")
    assert any(isinstance(handler.formatter, JsonLines) for handler in logging.getLogger().handlers)
    app_with(LIBRARY_LOG_FORMAT="text")
    assert not any(isinstance(handler.formatter, JsonLines) for handler in logging.getLogger().handlers)


def test_a_weak_token_or_unknown_format_stops_the_start():
    """A short LIBRARY_METRICS_TOKEN would be guessed; a LIBRARY_LOG_FORMAT typo would leave the
    log shipper reading text: both refuse to start, naming the variable."""
    for variables, named in (({"LIBRARY_METRICS_TOKEN": "short"}, "LIBRARY_METRICS_TOKEN"),
                             ({"LIBRARY_METRICS_TOKEN": "a b" * 20}, "LIBRARY_METRICS_TOKEN"),
                             ({"LIBRARY_LOG_FORMAT": "xml"}, "LIBRARY_LOG_FORMAT")):
        with pytest.raises(SettingsError, match=named):
            load_settings({**os.environ, **variables})


def test_the_server_s_own_lines_can_be_json_from_the_start():
    """`server_log_config("json")`, given to uvicorn as its log_config, makes even the supervisor's
    lines (written before the app is loaded) JSON; "text" leaves uvicorn's format as it is."""
    code = ("import logging.config, logging, sys; from library.web.logs import server_log_config; "
            "logging.config.dictConfig(server_log_config(sys.argv[1])); "
            "logging.getLogger('uvicorn.error').info('Started parent process [%d]', 1); "
            "logging.getLogger('uvicorn.access').info('%s - \"%s %s HTTP/%s\" %d', '127.0.0.1:1', 'GET', '/', '1.1', 200)")
    json_lines = subprocess.run([sys.executable, "-c", code, "json"], capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in (json_lines.stdout + json_lines.stderr).splitlines()]
    # uvicorn writes its access lines to stdout, the rest to stderr
    assert sorted(line["message"] for line in lines) == ['127.0.0.1:1 - "GET / HTTP/1.1" 200',
                                                         "Started parent process [1]"]
    text = subprocess.run([sys.executable, "-c", code, "text"], capture_output=True, text=True, check=True)
    assert "INFO:     Started parent process [1]" in text.stderr
