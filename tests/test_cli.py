"""The `library` command as an operator uses it: clear messages, no stack traces."""

import asyncio
import concurrent.futures
import os
import subprocess
import sys

import pytest

from library.settings import PROJECT_ROOT
from tests.support import empty_all_tables


def library(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "library.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, input=stdin, env={**os.environ, "LANG": "en_US.UTF-8", **(env or {})},
                          timeout=120)


@pytest.mark.parametrize("command", ["serve", "migrate", "demo", "create-staff", "check"])
def test_every_command_has_help(command):
    result = library(command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_a_malformed_setting_is_named_without_a_traceback():
    result = library("check", env={"LIBRARY_PORT": "eighty"})
    assert result.returncode == 2
    assert "LIBRARY_PORT must be a whole number" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_postgresql_is_explained():
    result = library("migrate", env={"LIBRARY_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/library"})
    assert result.returncode == 2
    assert "Cannot reach the database at postgresql://nobody:***@127.0.0.1:1/library" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_the_data_folder_holds_the_database_and_the_key(tmp_path):
    """LIBRARY_DATA_DIR, without LIBRARY_DATABASE_URL or LIBRARY_SECRET_KEY: `library migrate` makes the
    SQLite file there, and the secret key is generated there once (readable by the owner only)."""
    import sqlite3

    data_dir = tmp_path / "branch-box"
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("LIBRARY_DATABASE_URL", "LIBRARY_SECRET_KEY")}
    result = subprocess.run([sys.executable, "-m", "library.cli", "migrate"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120, env={**environment, "LIBRARY_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    connection = sqlite3.connect(data_dir / "library.sqlite3")
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()
    assert {"patron", "loan", "notice"} <= tables
    key = data_dir / "secret.key"
    assert len(key.read_text().strip()) >= 32 and key.stat().st_mode & 0o077 == 0
    # One line that adds up, not Piccolo's "1 migration already complete" beside "5 not yet run".
    assert "already complete" not in result.stdout and result.stdout.strip().endswith("the database is up to date")
    assert int(result.stdout.split()[0]) > 1
    again = subprocess.run([sys.executable, "-m", "library.cli", "migrate"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=120, env={**environment, "LIBRARY_DATA_DIR": str(data_dir)})
    assert again.stdout.strip() == "0 migrations run; the database is up to date", again.stderr


def test_demo_check_and_create_staff_on_the_test_database():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, as in tests/browser
        pool.submit(asyncio.run, empty_all_tables()).result()
    first = library("demo")
    assert first.returncode == 0, first.stderr
    second = library("demo")
    assert "created 0, already there 21" in second.stdout  # safe to run again
    assert library("check").returncode == 0
    created = library("create-staff", "--username", "cli-staff", "--name", "命令行", "--branch", "ZX",
                      "--password-stdin", stdin="a-long-enough-password\n")
    assert created.returncode == 0, created.stderr
    unknown = library("create-staff", "--username", "cli-other", "--name", "x", "--branch", "NOPE",
                      "--password-stdin", stdin="a-long-enough-password\n")
    assert unknown.returncode != 0 and "There is no branch with the code NOPE." in unknown.stderr
    again = library("create-staff", "--username", "CLI-staff", "--name", "x", "--branch", "ZX", "--password-stdin",
                    stdin="a-long-enough-password\n")
    assert again.returncode != 0 and "already in use" in again.stderr


def test_create_staff_refuses_a_short_password():
    result = library("create-staff", "--username", "shorty", "--name", "x", "--all-branches", "--password-stdin",
                     stdin="short\n")
    assert result.returncode != 0 and "at least 10 characters" in result.stderr


def test_notices_list_prints_each_error_under_its_notice():
    """`library notices list`: a notice that failed is followed, on the same stream, by its own last
    error, so that a pipe or a log file keeps them together; a notice without one is followed by none."""
    import datetime as dt
    import uuid

    from library.notices.tables import Notice

    now = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)

    def notice(key: str, to: str, subject: str, **values) -> Notice:
        return Notice(uuid=str(uuid.uuid4()), key=key, kind="overdue", to_address=to, subject=subject, body="-",
                      created_at=now, send_after=now, **values)

    async def outbox() -> None:
        await empty_all_tables()
        await Notice.insert(
            notice("test:wang", "wangfang@example.org", "已逾期：猜猜我有多爱你", attempts=2,
                   last_error="SMTPRecipientsRefused: 550 5.1.1 no such mailbox"),
            notice("test:emma", "emma@example.org", "Overdue: 大卫，不可以", attempts=1,
                   last_error="ConnectionRefusedError: [Errno 111] Connection refused"),
            notice("test:zhao", "zhao@example.org", "已逾期：好饿的毛毛虫"),
        )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, outbox()).result()
    result = library("notices", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def after(address: str) -> str:
        [index] = [n for n, line in enumerate(lines) if address in line]
        return lines[index + 1] if index + 1 < len(lines) else ""

    assert after("wangfang@example.org") == "    last error: SMTPRecipientsRefused: 550 5.1.1 no such mailbox"
    assert after("emma@example.org") == "    last error: ConnectionRefusedError: [Errno 111] Connection refused"
    assert "last error" not in after("zhao@example.org")
    assert "attempts 2" in next(line for line in lines if "wangfang@example.org" in line)


def test_every_command_is_in_the_readme():
    from library.cli import main

    readme = (PROJECT_ROOT / "README.md").read_text()
    names = []
    for name, command in main.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"library {name} {child}" for child in sub] if sub else [f"library {name}"]
    missing = [name for name in names if name not in readme]
    assert not missing, f"undocumented commands: {missing}"


def test_catalog_import_of_a_big_file_then_again_updates_and_never_duplicates(tmp_path):
    from bench.generate import marc_file
    from library.catalog import converters

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, empty_all_tables()).result()
    assert library("demo").returncode == 0
    data = marc_file(3000)
    path = tmp_path / "export.mrc"
    path.write_bytes(data)
    assert converters.wanted(path)  # converted in worker processes, as a real export would be
    first = library("catalog", "import", str(path))
    assert first.returncode == 0, first.stderr
    assert "read 3000 (marc21 records): new 3000, matched 0, unchanged 0, ignored 0, refused 0;" in first.stdout
    assert "copies new 0," not in first.stdout
    # The same file again: every record is found and nothing is written.
    again = library("catalog", "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "new 0, matched 0, unchanged 3000, ignored 0, refused 0;" in again.stdout
    assert "copies new 0, changed 0" in again.stdout


def test_privacy_forget_runs_the_retention_table_once():
    """`library privacy forget` deletes a notice sent longer ago than LIBRARY_LOAN_HISTORY_DAYS, keeps a
    recent one, and says what it did; run again, it has nothing left to do."""
    import datetime as dt
    import uuid

    from library.notices.tables import Notice

    now = dt.datetime.now(dt.timezone.utc)

    def sent(key: str, days_ago: int) -> Notice:
        moment = now - dt.timedelta(days=days_ago)
        return Notice(uuid=str(uuid.uuid4()), key=key, kind="overdue", to_address="reader@example.org",
                      subject="已逾期：好饿的毛毛虫", body="-", created_at=moment, send_after=moment, sent_at=moment)

    async def outbox() -> list[str]:
        await empty_all_tables()
        await Notice.insert(sent("test:old", 40), sent("test:new", 3))

    async def left() -> list[str]:
        return [row["key"] for row in await Notice.select(Notice.key)]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, outbox()).result()
    first = library("privacy", "forget", env={"LIBRARY_LOAN_HISTORY_DAYS": "30"})
    assert first.returncode == 0, first.stderr
    assert "Notices deleted: 1" in first.stdout
    again = library("privacy", "forget", env={"LIBRARY_LOAN_HISTORY_DAYS": "30"})
    assert "Notices deleted: 0" in again.stdout
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, left()).result() == ["test:new"]


def test_migrate_check_says_what_would_run_and_changes_nothing(tmp_path):
    """`library migrate --check` on a new database lists every migration (exit 1) and creates no
    table; after `library migrate`, it says there is nothing to run (exit 0)."""
    import sqlite3

    environment = {"LIBRARY_DATABASE_URL": f"sqlite:///{tmp_path}/check.sqlite3"}
    before = library("migrate", "--check", env=environment)
    assert before.returncode == 1, before.stderr
    lines = before.stdout.strip().splitlines()
    assert lines[-1].endswith("migrations would run") and int(lines[-1].split()[0]) == len(lines) - 1 > 20
    assert any(line.startswith("catalog ") for line in lines) and any(line.startswith("loans ") for line in lines)
    connection = sqlite3.connect(tmp_path / "check.sqlite3")
    try:
        assert connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'record'"
                                  ).fetchone()[0] == 0
    finally:
        connection.close()
    assert library("migrate", env=environment).returncode == 0
    after = library("migrate", "--check", env=environment)
    assert after.returncode == 0 and "no migration would run" in after.stdout

