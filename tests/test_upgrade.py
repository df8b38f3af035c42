"""Upgrades keep the data (issue 24, part 2): a database made and filled by the first wave's release
(BASELINE, its own code taken from this repository's history) is migrated forward by this
release, on the suite's engine, and every row of every table it had is still there with the
same values — but for what a migration is meant to change, named below with its reason.

Needs the repository's history (git): CI runs on a clone, so a missing commit fails the test
rather than skipping it."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from library.settings import PROJECT_ROOT
from tests.support import node_database

BASELINE = "e6e3b9b"  # 2026-11-29: the first wave (catalogue, circulation, activities, sync)
# What migrating forward changes on purpose: (table, column) -> why.
CHANGED_ON_PURPOSE = {
    ("migration", None): "it lists the migrations run, and now has more",
    ("record", "search_text"): "made again in sections (catalog migration 2026-12-07T08:30:00)",
    ("record", "search_vector"): "PostgreSQL's full-text vector of search_text, weighted by section since that migration",
}


def _baseline_tree(folder: Path) -> Path:
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", BASELINE, "library", "piccolo_conf.py"],
                                 cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"the baseline release {BASELINE} cannot be taken from git ({error}): run the suite in a "
                    f"clone with its history")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _run(code_root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "library.cli", *args], cwd=code_root, capture_output=True,
                            text=True, timeout=300,
                            env={**env, "PYTHONPATH": str(code_root), "PICCOLO_CONF": "piccolo_conf"})
    assert result.returncode == 0, f"{' '.join(args)} with {code_root}: {result.stderr[-2000:]}"
    return result


def _contents(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """table -> (columns, rows as text, sorted) for every plain table of the database."""
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url[len("sqlite:///"):])
        try:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND sql NOT LIKE 'CREATE VIRTUAL%' AND name NOT LIKE '%fts%'")]
            found = {}
            for table in tables:
                cursor = connection.execute(f'SELECT * FROM "{table}"')
                found[table] = ([d[0] for d in cursor.description], sorted(tuple(map(repr, row)) for row in cursor))
            return found
        finally:
            connection.close()

    async def read() -> dict:
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            found = {}
            for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"):
                records = await connection.fetch(f'SELECT * FROM "{row[0]}"')
                columns = [a.name for a in (await connection.prepare(f'SELECT * FROM "{row[0]}"')).get_attributes()]
                found[row[0]] = (columns, sorted(tuple(repr(value) for value in record.values()) for record in records))
            return found
        finally:
            await connection.close()

    return asyncio.run(read())


def _common(before: tuple[list[str], list[tuple]], after: tuple[list[str], list[tuple]], skip: set[str]):
    """Both sides' rows reduced to the columns both have (but `skip`)."""
    columns = [c for c in before[0] if c in after[0] and c not in skip]
    pick = lambda side: sorted(tuple(row[side[0].index(c)] for c in columns) for row in side[1])  # noqa: E731
    return columns, pick(before), pick(after)


@pytest.fixture
def database(tmp_path):
    with node_database("library_upgrade", tmp_path / "upgraded.sqlite3") as url:
        yield url


def test_a_first_wave_database_migrates_forward_with_its_data(tmp_path, database):
    baseline = _baseline_tree(tmp_path / "baseline")
    env = {**os.environ, "LIBRARY_DATABASE_URL": database, "LIBRARY_DATA_DIR": str(tmp_path / "data")}
    _run(baseline, env, "migrate")
    _run(baseline, env, "demo")  # branches, rooms, staff, readers and families, records, copies, loans, holds,
    before = _contents(database)  # rules, calendars, a programme of activities: what the first wave knew
    assert before["loan"][1] and before["hold"][1] and before["guardian_link"][1] and before["occurrence"][1]

    ran = _run(PROJECT_ROOT, env, "migrate").stdout
    assert int(ran.split()[0]) > 0, ran  # there was something to migrate
    after = _contents(database)

    for table, rows in before.items():
        assert table in after, f"table {table} is gone after the upgrade"
        if (table, None) in CHANGED_ON_PURPOSE:
            assert len(after[table][1]) >= len(rows[1])
            continue
        skip = {column for (name, column) in CHANGED_ON_PURPOSE if name == table}
        columns, old, new = _common(rows, after[table], skip)
        assert len(new) == len(old), f"{table}: {len(old)} rows before the upgrade, {len(new)} after"
        assert new == old, f"{table}: values changed by the upgrade in columns {columns}"

    # This release works on the upgraded database: the check passes, and the catalogue exports whole.
    _run(PROJECT_ROOT, env, "check")
    exported = tmp_path / "all.mrc"
    _run(PROJECT_ROOT, env, "catalog", "export", str(exported))
    assert exported.read_bytes().count(b"\x1d") == len(before["record"][1])
    assert _run(PROJECT_ROOT, env, "migrate", "--check").stdout.strip().endswith("no migration would run")


# A release whose last migration fails half-way: it made a table and filled it, then its next
# step met what it did not expect (here: it raises).
_HALFWAY_APP = '''
from pathlib import Path
from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(app_name="halfway", migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
                       table_classes=[])
'''
_HALFWAY_MIGRATION = '''
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "{id}"


class Probe(Table, tablename="halfway_probe"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="halfway")

    async def run():
        await Probe.raw("CREATE TABLE halfway_probe (id INTEGER)")
        await Probe.raw("INSERT INTO halfway_probe (id) VALUES (1)")
        await Probe.raw("UPDATE patron SET name = 'changed by a failed migration'")
        if {fails}:
            raise RuntimeError("the new constraint refuses a row")

    manager.add_raw(run)
    return manager
'''
_HALFWAY_CONF = '''
from piccolo.conf.apps import AppRegistry
from piccolo_conf import APPS as RELEASED, DB  # noqa: F401

APPS = [*RELEASED, "halfway_app.piccolo_app"]
APP_REGISTRY = AppRegistry(apps=APPS)
'''


def _halfway_release(folder: Path, fails: bool) -> Path:
    migrations = folder / "halfway_app" / "piccolo_migrations"
    migrations.mkdir(parents=True)
    (folder / "halfway_app" / "__init__.py").write_text("")
    (migrations / "__init__.py").write_text("")
    (folder / "halfway_app" / "piccolo_app.py").write_text(_HALFWAY_APP)
    (folder / "halfway_conf.py").write_text(_HALFWAY_CONF)
    (migrations / "halfway_2099_01_01t00_00_00_000000.py").write_text(
        _HALFWAY_MIGRATION.format(id="2099-01-01T00:00:00:000000", fails=fails))
    return folder


def test_a_migration_failing_half_way_leaves_the_database_as_it_was(tmp_path, database):
    """The adversary is the upgrade itself: a migration that changes rows, then fails. Nothing of
    the run stays — not its tables, not its row changes, not the migration table's lines."""
    env = {**os.environ, "LIBRARY_DATABASE_URL": database, "LIBRARY_DATA_DIR": str(tmp_path / "data")}
    _run(PROJECT_ROOT, env, "migrate")
    _run(PROJECT_ROOT, env, "demo")
    before = _contents(database)

    failing = _halfway_release(tmp_path / "failing", fails=True)
    extra = {**env, "PYTHONPATH": f"{failing}{os.pathsep}{PROJECT_ROOT}", "PICCOLO_CONF": "halfway_conf"}
    result = subprocess.run([sys.executable, "-m", "library.cli", "migrate"], cwd=PROJECT_ROOT, env=extra,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "migration failed in 2099-01-01T00:00:00:000000: RuntimeError: the new constraint refuses a row" \
        in result.stderr, result.stderr
    assert "Nothing was changed" in result.stderr
    assert _contents(database) == before  # no halfway_probe, every reader's name as it was

    # Fixed, the same run goes through from the same place.
    fixed = _halfway_release(tmp_path / "fixed", fails=False)
    extra["PYTHONPATH"] = f"{fixed}{os.pathsep}{PROJECT_ROOT}"
    result = subprocess.run([sys.executable, "-m", "library.cli", "migrate"], cwd=PROJECT_ROOT, env=extra,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 migration run"), result.stdout
    after = _contents(database)
    assert after["halfway_probe"][1] == [("1",)]
