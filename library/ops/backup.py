"""Backups of a node that restore, made while the service runs.

A backup is a folder `backup-<UTC time>` under the backups folder: the database (SQLite: a copy
made with SQLite's online backup API, one read transaction, so writers go on meanwhile;
PostgreSQL: `pg_dump` in its custom format, from a snapshot exported by a transaction that also
counts the rows, so dump and counts are the same moment) and `manifest.json` — the engine, when,
the migrations the schema had, the rows of every table, the database file's size and SHA-256.

A backup is written in a hidden folder and renamed into place once whole (a rename within a
folder is atomic): a backup killed half-way (kill -9, a power cut) leaves at most a hidden
folder, which the next backup removes, and never touches an earlier backup. Backups of a node
take turns (a lock file), and the oldest beyond `keep` go once a new one is in place.

A restore checks before it writes: the manifest is there and whole, the file's checksum is the
manifest's, the backup was made on this engine, and by this release or an earlier one (every
migration it had is known here; an older schema is migrated forward afterwards, `library
restore` runs them); the database restored into is empty unless `replace` is asked. Then it
restores and compares every table's rows with the manifest's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from piccolo.conf.apps import Finder

from library import __version__
from library.ops.schema import known_migrations
from library.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
POSTGRES_FILE = "database.pgdump"
PREFIX = "backup-"
INCOMPLETE = ".incomplete-"
LOCK = ".lock"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, for an operator."""


@dataclass
class Backup:
    path: Path
    manifest: dict[str, Any]


@dataclass
class Restored:
    counts: dict[str, int]
    migrations_to_run: int = 0
    removed_before: list[str] = field(default_factory=list)


# --- what a database holds ----------------------------------------------------------------------


def _tables() -> list[str]:
    """Every table of every app (and Piccolo's own list of migrations), by name."""
    names = {table._meta.tablename for table in Finder().get_table_classes()}
    return sorted(names | {"migration"})


def _sqlite_contents(connection: sqlite3.Connection) -> tuple[dict[str, int], dict[str, list[str]]]:
    present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = {table: connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
              for table in _tables() if table in present}
    migrations: dict[str, list[str]] = {}
    if "migration" in present:
        for app, name in connection.execute("SELECT app_name, name FROM migration ORDER BY name"):
            migrations.setdefault(app, []).append(name)
    return counts, migrations


async def _postgres_contents(connection) -> tuple[dict[str, int], dict[str, list[str]]]:
    present = {row["tablename"] for row in await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    counts = {table: await connection.fetchval(f'SELECT COUNT(*) FROM "{table}"')
              for table in _tables() if table in present}
    migrations: dict[str, list[str]] = {}
    if "migration" in present:
        for row in await connection.fetch("SELECT app_name, name FROM migration ORDER BY name"):
            migrations.setdefault(row["app_name"], []).append(row["name"])
    return counts, migrations


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- backing up -------------------------------------------------------------------------------


@contextlib.contextmanager
def _turn(folder: Path) -> Iterator[None]:
    """One backup of this folder at a time; what a killed one left is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup into {folder} is running") from None
        try:
            for leftover in folder.glob(INCOMPLETE + "*"):
                shutil.rmtree(leftover, ignore_errors=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def backups(folder: Path) -> list[Backup]:
    """The whole backups in a folder, oldest first."""
    found = []
    for path in sorted(folder.glob(PREFIX + "*")) if folder.is_dir() else []:
        try:
            found.append(Backup(path, json.loads((path / MANIFEST).read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # not a backup of ours (a manifest is written last: a folder without one is not whole)
    return found


def _sqlite_backup(settings: Settings, target: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    source_path = settings.sqlite_path
    if not source_path.is_file():
        raise BackupError(f"there is no database at {source_path}")
    source = sqlite3.connect(source_path, timeout=30)
    copy = sqlite3.connect(target)
    try:
        # All pages in one step: one read transaction, a consistent copy; in WAL mode the
        # service's writers are not held up by it.
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")  # one file, nothing beside it
        counts, migrations = _sqlite_contents(copy)
    finally:
        copy.close()
        source.close()
    return counts, migrations


async def _postgres_backup(settings: Settings, target: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    connection = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            counts, migrations = await _postgres_contents(connection)
            # The dump reads the snapshot this transaction exported: what was counted.
            process = await asyncio.create_subprocess_exec(
                "pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                f"--file={target}", f"--dbname={settings.database_url}",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, said = await process.communicate()
            if process.returncode != 0:
                raise BackupError("pg_dump failed: " + said.decode("utf-8", "replace").strip()[:500])
    finally:
        await connection.close()
    return counts, migrations


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def backup(settings: Settings, folder: Path, keep: int | None = None) -> Backup:
    """A new backup of the node's database into `folder`; then only the newest `keep` stay."""
    if keep is not None and keep < 1:
        raise BackupError("keep at least one backup")
    with _turn(folder):
        made = _now()
        working = Path(tempfile.mkdtemp(prefix=INCOMPLETE, dir=folder))
        try:
            if settings.engine == "postgres":
                name = POSTGRES_FILE
                counts, migrations = asyncio.run(_postgres_backup(settings, working / name))
            else:
                name = SQLITE_FILE
                counts, migrations = _sqlite_backup(settings, working / name)
            manifest = {
                "format": FORMAT, "engine": settings.engine, "made_at": made.isoformat(timespec="seconds"),
                "release": __version__, "node_role": settings.node_role, "branch_code": settings.branch_code,
                "file": name, "bytes": (working / name).stat().st_size, "sha256": _sha256(working / name),
                "migrations": migrations, "counts": counts,
            }
            manifest_path = working / MANIFEST
            manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
            for written in (working / name, manifest_path):
                with written.open("rb") as handle:
                    os.fsync(handle.fileno())
            final = folder / f"{PREFIX}{made.strftime('%Y%m%dT%H%M%SZ')}"
            suffix = 1
            while final.exists():
                suffix += 1
                final = folder / f"{PREFIX}{made.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"
            os.rename(working, final)
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except BaseException:
            shutil.rmtree(working, ignore_errors=True)
            raise
        if keep is not None:
            for old in backups(folder)[:-keep]:
                shutil.rmtree(old.path, ignore_errors=True)
        return Backup(final, manifest)


# --- restoring --------------------------------------------------------------------------------


def check(path: Path, settings: Settings) -> dict[str, Any]:
    """The backup's manifest, once the backup is found whole, on this engine, and not newer than
    this release; BackupError saying what is wrong otherwise."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path} is not a backup: it has no {MANIFEST} (a backup stopped half-way has none)") \
            from None
    except (OSError, ValueError) as error:
        raise BackupError(f"the manifest of {path} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} was made in a backup format this release does not read")
    if manifest.get("engine") != settings.engine:
        raise BackupError(f"{path} is a backup of a {manifest.get('engine')} database; this node uses "
                          f"{settings.engine}")
    data = path / str(manifest.get("file", ""))
    if not data.is_file() or data.stat().st_size != manifest.get("bytes"):
        raise BackupError(f"the backup {path} is incomplete: its database file is missing or of the wrong size")
    if _sha256(data) != manifest.get("sha256"):
        raise BackupError(f"the backup {path} is damaged: its database file does not match its checksum")
    known = known_migrations()
    unknown = sorted(f"{app} {name}" for app, names in (manifest.get("migrations") or {}).items()
                     for name in names if name not in known.get(app, set()))
    if unknown:
        raise BackupError(f"the backup {path} was made by a newer release (its schema has migrations this release "
                          f"does not know: {', '.join(unknown[:5])}); restore it with that release or a later one")
    return manifest


def _missing_migrations(migrations: dict[str, list[str]]) -> int:
    return sum(len(set(names) - set(migrations.get(app, []))) for app, names in known_migrations().items())


def _compare(expected: dict[str, int], found: dict[str, int]) -> None:
    wrong = [f"{table}: {found.get(table)} rows, {count} in the backup" for table, count in expected.items()
             if found.get(table) != count]
    if wrong:
        raise BackupError("the restored database does not hold what the backup held: " + "; ".join(wrong[:5]))


def _sqlite_restore(settings: Settings, data: Path, manifest: dict[str, Any], replace: bool) -> Restored:
    target = settings.sqlite_path
    if target.exists() and not replace:
        with contextlib.closing(sqlite3.connect(target)) as connection:
            if connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                raise BackupError(f"the database {target} is not empty: stop the service and restore with --replace "
                                  f"to put the backup in its place")
    target.parent.mkdir(parents=True, exist_ok=True)
    placing = target.with_name(target.name + ".restoring")
    shutil.copyfile(data, placing)
    with contextlib.closing(sqlite3.connect(placing)) as connection:
        if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            placing.unlink(missing_ok=True)
            raise BackupError(f"the backup's database fails SQLite's check: {data}")
        connection.execute("PRAGMA journal_mode = WAL")  # as the service keeps it
    for suffix in ("-wal", "-shm"):  # the replaced database's, which belong to it alone
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.replace(placing, target)
    with contextlib.closing(sqlite3.connect(target)) as connection:
        counts, migrations = _sqlite_contents(connection)
    _compare(manifest["counts"], counts)
    return Restored(counts, _missing_migrations(migrations))


async def _postgres_restore(settings: Settings, data: Path, manifest: dict[str, Any], replace: bool) -> Restored:
    connection = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        tables = await connection.fetchval("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()")
        if tables and not replace:
            raise BackupError("the database is not empty: stop the service and restore with --replace to put the "
                              "backup in its place")
        # One transaction: the database is the backup's, or (pg_restore failed) as it was.
        # Replacing, what the backup holds is dropped first inside it (--clean).
        process = await asyncio.create_subprocess_exec(
            "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
            *(["--clean", "--if-exists"] if tables else []), f"--dbname={settings.database_url}", str(data),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, said = await process.communicate()
        if process.returncode != 0:
            raise BackupError("pg_restore failed (nothing was restored): "
                              + said.decode("utf-8", "replace").strip()[:500])
        counts, migrations = await _postgres_contents(connection)
    finally:
        await connection.close()
    _compare(manifest["counts"], counts)
    return Restored(counts, _missing_migrations(migrations))


def restore(settings: Settings, path: Path, replace: bool = False) -> Restored:
    """The backup at `path` into the node's database (see the module's docstring)."""
    manifest = check(path, settings)
    data = path / manifest["file"]
    if settings.engine == "postgres":
        return asyncio.run(_postgres_restore(settings, data, manifest, replace))
    return _sqlite_restore(settings, data, manifest, replace)
