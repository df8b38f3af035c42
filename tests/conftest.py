"""The whole suite runs against one fresh database per run (per worker process with xdist).

SQLite by default (a file in a temporary folder); PostgreSQL when
LIBRARY_TEST_DATABASE_URL names a server database to connect to, in which case a
new database `library_test_<random>` is created for the run and dropped after it.
Tests that touch data start from empty tables (see `tests/support.py`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from urllib.parse import urlsplit, urlunsplit

from tests.support import admin_execute, drop_database, migrate

_created: dict[str, str] = {}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _is_xdist_controller(config) -> bool:
    """With pytest-xdist (`make test` runs two workers), each worker is a process of its own and
    makes its own database and folder here; the controller only hands out tests and needs none."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config) -> None:
    if _is_xdist_controller(config):
        return
    data_dir = tempfile.mkdtemp(prefix="library-test-")
    _created["data_dir"] = data_dir
    os.environ["LIBRARY_DATA_DIR"] = data_dir
    os.environ["XDG_CACHE_HOME"] = os.path.join(data_dir, "cache")  # the pinyin tables: nothing outside the run
    os.environ["LIBRARY_SECRET_KEY"] = "test-" + secrets.token_urlsafe(40)
    os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")
    os.environ["LIBRARY_METADATA_PROVIDERS"] = "local"  # no network in tests
    # The server's notice loop stays off: a round in the middle of an HTTP test would expire
    # holds and queue notices under it (tests/integration/test_notices.py runs the loop itself).
    os.environ["LIBRARY_NOTICE_INTERVAL_SECONDS"] = "0"
    admin_url = os.environ.get("LIBRARY_TEST_DATABASE_URL")
    if admin_url:
        name = f"library_test_{secrets.token_hex(6)}"
        asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
        _created["postgres"] = name
        _created["admin_url"] = admin_url
        os.environ["LIBRARY_DATABASE_URL"] = _with_database(admin_url, name)
    else:
        os.environ["LIBRARY_DATABASE_URL"] = f"sqlite:///{data_dir}/test.sqlite3"

    asyncio.run(migrate())


def pytest_report_header(config) -> str:
    url = os.environ.get("LIBRARY_DATABASE_URL", "")
    engine = "postgres" if url.startswith("postgres") else "sqlite"
    return f"library test database: {engine} ({_created.get('postgres') or url})"


def pytest_unconfigure(config) -> None:
    name = _created.get("postgres")
    if name:
        asyncio.run(drop_database(_created["admin_url"], name))
    shutil.rmtree(_created.get("data_dir", ""), ignore_errors=True)
