"""Backups taken while the desk lends, and restores that give every row back (library.ops.backup).

The adversaries: a branch box killed in the middle of its backup (kill -9), a backup damaged on
the USB disk it was kept on, a backup made by a newer release, a restore over a node that
already holds data. Every test runs on the suite's engine (SQLite, or PostgreSQL with
LIBRARY_TEST_DATABASE_URL), restoring into a second, fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from library.catalog.tables import Item
from library.demo import load_demo
from library.loans import service as loans
from library.ops import backup as ops
from library.settings import PROJECT_ROOT, load_settings
from tests.integration.test_loans_service import ADMIN, NOW, TODAY
from tests.support import admin_execute, drop_database


@pytest.fixture
async def demo():
    await load_demo(TODAY)


@pytest.fixture
async def target(tmp_path):
    """The settings of a second node's database, empty: where backups are restored."""
    source = load_settings()
    if source.engine == "sqlite":
        yield load_settings({**os.environ, "LIBRARY_DATABASE_URL": f"sqlite:///{tmp_path}/restored.sqlite3"})
        return
    name = f"{source.database_url.rsplit('/', 1)[1]}_restore_{secrets.token_hex(3)}"
    await admin_execute(source.database_url, f'CREATE DATABASE "{name}"')
    try:
        yield load_settings({**os.environ, "LIBRARY_DATABASE_URL": source.database_url.rsplit("/", 1)[0] + "/" + name})
    finally:
        await drop_database(source.database_url, name)


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: [(value is None, str(value)) for value in row])


async def _rows(settings) -> dict[str, list[tuple]]:
    """Every row of every table of the apps, in one order (the same for equal contents)."""
    tables = ops._tables()
    if settings.engine == "sqlite":
        with contextlib.closing(sqlite3.connect(settings.sqlite_path)) as connection:
            present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {table: _sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall())
                    for table in tables if table in present}
    import asyncpg

    connection = await asyncpg.connect(settings.database_url)
    try:
        present = {row[0] for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = "
                                                            "current_schema()")}
        return {table: _sorted([tuple(row) for row in await connection.fetch(f'SELECT * FROM "{table}"')])
                for table in tables if table in present}
    finally:
        await connection.close()


async def _lend_and_return(stop: asyncio.Event, barcodes: list[str]) -> int:
    """The desk at work: each copy lent to a reader and returned, again and again."""
    cycles = 0
    at = NOW
    while not stop.is_set():
        for barcode in barcodes:
            at += dt.timedelta(minutes=1)
            await loans.checkout(ADMIN, "ZX", "JX20000001", barcode, at)
            await loans.checkin(ADMIN, "ZX", barcode, at + dt.timedelta(seconds=30))
            cycles += 1
    return cycles


async def test_a_backup_taken_while_the_desk_lends_restores_every_row(demo, target, tmp_path):
    source = load_settings()
    folder = tmp_path / "backups"
    barcodes = [row["barcode"] for row in await Item.select(Item.barcode).where(
        (Item.status == "available") & (Item.home_branch.code == "ZX") & (Item.item_type != "reference")).limit(3)]
    assert barcodes
    stop = asyncio.Event()
    desk = asyncio.create_task(_lend_and_return(stop, barcodes))
    try:
        during = [await asyncio.to_thread(ops.backup, source, folder) for _ in range(3)]
    finally:
        stop.set()
        cycles = await desk
    assert cycles > 0
    assert [b.path for b in ops.backups(folder)] == [b.path for b in during]

    # A backup taken mid-lending is one moment: every copy on loan has its open loan, and no other has one.
    restored = await asyncio.to_thread(ops.restore, target, during[-1].path)
    assert restored.counts == during[-1].manifest["counts"] and restored.migrations_to_run == 0
    rows = await _rows(target)
    columns = {"item": [c._meta.db_column_name for c in Item._meta.columns]}
    status_at = columns["item"].index("status")
    from library.loans.tables import Loan
    loan_columns = [c._meta.db_column_name for c in Loan._meta.columns]
    open_loans = [row[loan_columns.index("item")] for row in rows["loan"] if row[loan_columns.index("returned_at")] is None]
    lent = [row[0] for row in rows["item"] if row[status_at] == "on_loan"]
    assert sorted(open_loans) == sorted(lent)

    # Once the desk is quiet, a backup restored over that node gives back every row of every table.
    quiet = await asyncio.to_thread(ops.backup, source, folder, 3)
    assert len(ops.backups(folder)) == 3 and ops.backups(folder)[-1].path == quiet.path  # the oldest went
    await asyncio.to_thread(ops.restore, target, quiet.path, True)
    assert await _rows(target) == await _rows(source)


async def test_a_restore_over_a_node_with_data_needs_replace_and_writes_nothing_before(demo, target, tmp_path):
    made = await asyncio.to_thread(ops.backup, load_settings(), tmp_path / "backups")
    await asyncio.to_thread(ops.restore, target, made.path)
    before = await _rows(target)
    with pytest.raises(ops.BackupError, match="not empty: stop the service and restore with --replace"):
        await asyncio.to_thread(ops.restore, target, made.path)
    assert await _rows(target) == before


async def test_a_damaged_a_newer_or_a_half_made_backup_is_refused_and_nothing_is_written(demo, target, tmp_path):
    folder = tmp_path / "backups"
    made = await asyncio.to_thread(ops.backup, load_settings(), folder)
    data = made.path / made.manifest["file"]

    # A byte flipped on the USB disk.
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    with pytest.raises(ops.BackupError, match="is damaged: its database file does not match its checksum"):
        await asyncio.to_thread(ops.restore, target, made.path)

    # Made by a release with a migration this one does not know.
    good = await asyncio.to_thread(ops.backup, load_settings(), folder)
    manifest = json.loads((good.path / ops.MANIFEST).read_text())
    manifest["migrations"].setdefault("catalog", []).append("2099-01-01T00:00:00:000000")
    (good.path / ops.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ops.BackupError, match="made by a newer release"):
        await asyncio.to_thread(ops.restore, target, good.path)

    # A folder a killed backup left, and one of the other engine.
    (tmp_path / "half").mkdir()
    with pytest.raises(ops.BackupError, match="is not a backup: it has no manifest.json"):
        await asyncio.to_thread(ops.restore, target, tmp_path / "half")
    manifest["engine"] = "postgres" if target.engine == "sqlite" else "sqlite"
    (good.path / ops.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ops.BackupError, match="is a backup of a"):
        await asyncio.to_thread(ops.restore, target, good.path)

    assert await _rows(target) == {}


def _backup_process(folder: Path) -> subprocess.Popen:
    code = ("import sys; from pathlib import Path; from library.ops import backup; from library.settings import "
            "load_settings; backup.backup(load_settings(), Path(sys.argv[1]))")
    return subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=PROJECT_ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_a_backup_killed_half_way_leaves_the_earlier_ones_whole(demo, tmp_path):
    """kill -9 at moments spread over a backup's run: whatever moment, every backup listed is whole
    (its checksum and manifest check), the first one is untouched, and the next backup clears
    what the killed ones left."""
    settings = load_settings()
    folder = tmp_path / "backups"
    first = await asyncio.to_thread(ops.backup, settings, folder)
    began = time.perf_counter()
    whole = _backup_process(folder)
    whole.wait(timeout=120)
    run_for = time.perf_counter() - began
    for fraction in (0.15, 0.3, 0.45, 0.6, 0.75, 0.9):
        process = _backup_process(folder)
        await asyncio.sleep(run_for * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for listed in ops.backups(folder):
            ops.check(listed.path, settings)
    assert ops.check(first.path, settings) == first.manifest
    await asyncio.to_thread(ops.backup, settings, folder)
    assert not list(folder.glob(ops.INCOMPLETE + "*"))


def _library(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "library.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env={**os.environ, "LANG": "en_US.UTF-8", **env}, timeout=120)


async def test_the_commands_keep_the_newest_backups_where_the_settings_say(demo, target, tmp_path):
    """LIBRARY_BACKUP_DIR and LIBRARY_BACKUP_KEEP, as an operator's nightly `library backup` uses
    them; `library restore` into the second node, then refused over it without --replace."""
    folder = tmp_path / "usb-disk" / "library-backups"
    made = []
    for _ in range(3):
        result = await asyncio.to_thread(_library, "backup", env={"LIBRARY_BACKUP_DIR": str(folder),
                                                                  "LIBRARY_BACKUP_KEEP": "2"})
        assert result.returncode == 0, result.stderr
        made.append(result.stdout.strip().rsplit(" ", 1)[1])
    assert [str(b.path) for b in ops.backups(folder)] == made[1:]
    into = {"LIBRARY_DATABASE_URL": target.database_url}
    restored = await asyncio.to_thread(_library, "restore", made[-1], env=into)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("restored ") and f"from {made[-1]}" in restored.stdout
    again = await asyncio.to_thread(_library, "restore", made[-1], env=into)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr
