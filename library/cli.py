"""The `library` command: serve, migrate, demo, create-staff, check, catalog, notices, sip2, selfcheck."""

from __future__ import annotations

import asyncio
import gc
import getpass
import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from library.catalog.matching import checked_setting
from library.settings import Settings, SettingsError, load_settings

os.environ.setdefault("PICCOLO_CONF", "piccolo_conf")


def _settings() -> Settings:
    try:
        settings = load_settings()
        checked_setting(settings)
    except SettingsError as error:
        click.secho(f"Configuration error: {error}", fg="red", err=True)
        sys.exit(2)
    # Messages in the operator's language: LANG (zh_CN.UTF-8, en_US.UTF-8), else the default.
    from library.i18n import choose_language, current_language

    lang = (os.environ.get("LC_ALL") or os.environ.get("LANG") or "").split(".")[0]
    current_language.set(choose_language(None, None, lang if lang not in ("C", "POSIX") else None,
                                         settings.default_language))
    return settings


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def _database_problem() -> str | None:
    from library.db import engine

    try:
        await asyncio.wait_for(engine().run_ddl("SELECT 1"), timeout=10)
    except Exception as error:  # noqa: BLE001 - reported to the operator, never raised
        return f"{type(error).__name__}: {error}".strip()
    return None


def _require_database(settings: Settings) -> None:
    problem = asyncio.run(_database_problem())
    if problem:
        click.secho(f"Cannot reach the database at {_redacted(settings.database_url)}", fg="red", err=True)
        click.secho(f"  {problem}", err=True)
        click.secho("  Check LIBRARY_DATABASE_URL and that the database server is running.", err=True)
        sys.exit(2)


@click.group(help="The library branch network service.")
def main() -> None:
    pass


@main.command(help="Check the settings and that the database can be reached.")
def check() -> None:
    settings = _settings()
    _require_database(settings)
    click.echo(f"settings ok; database ({settings.engine}) reachable at {_redacted(settings.database_url)}")


async def _applied_migrations() -> int:
    from piccolo.apps.migrations.tables import Migration

    return await Migration.count() if await Migration.table_exists() else 0


async def _migrate() -> int:
    """Run what has not run; how many migrations that was. Piccolo's own lines (one per app,
    "1 migration already complete" beside "5 migrations not yet run" for a new database) are
    kept back: one line that adds up says more.

    All of it is one transaction (Piccolo's own, one per migration, nest inside it as no-ops):
    a migration that fails half-way — a bug, a row the new constraint refuses, the process
    killed — leaves the database exactly as it was before `library migrate`, on both engines
    (PostgreSQL's and SQLite's DDL are transactional), and the migration table with it, so
    running it again after the fix starts from the same place."""
    import contextlib
    import io

    from piccolo.apps.migrations.commands.forwards import run_forwards

    from library.db import prepare_sqlite, write_transaction

    await prepare_sqlite()
    before = await _applied_migrations()
    said = io.StringIO()
    try:
        async with write_transaction():
            with contextlib.redirect_stdout(said):
                result = await run_forwards(app_name="all")
            if not result.success:
                raise RuntimeError(result.message)
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way
        started = [line.strip() for line in said.getvalue().splitlines() if line.strip().startswith("- ")]
        where = f" in {started[-1].removeprefix('- ').split(' [')[0]}" if started else ""
        raise click.ClickException(
            f"migration failed{where}: {type(error).__name__}: {error}\nNothing was changed: the database is as it "
            f"was before `library migrate` (every migration of this run was undone).") from error
    return await _applied_migrations() - before


@main.command(help="Bring the database schema up to date (Piccolo migrations, forwards).")
@click.option("--check", is_flag=True, help="Only say which migrations would run (exit status 1 when any would).")
def migrate(check: bool) -> None:
    settings = _settings()
    _require_database(settings)
    if check:
        from library.ops.schema import pending_migrations

        pending = asyncio.run(pending_migrations())
        for migration in pending:
            click.echo(f"{migration.app} {migration.id}  {migration.description}")
        click.echo(f"{len(pending)} migration{'' if len(pending) == 1 else 's'} would run"
                   if pending else "the database is up to date: no migration would run")
        sys.exit(1 if pending else 0)
    ran = asyncio.run(_migrate())
    click.secho(f"{ran} migration{'' if ran == 1 else 's'} run; the database is up to date", fg="green")


@main.command(help="Back up the database while the service runs (a folder with the database and a manifest), "
                   "keeping the newest LIBRARY_BACKUP_KEEP in LIBRARY_BACKUP_DIR.")
@click.option("--to", "folder", type=click.Path(file_okay=False), default=None,
              help="The backups folder (default: LIBRARY_BACKUP_DIR).")
@click.option("--keep", type=click.IntRange(min=1), default=None, help="How many backups to keep (default: "
                                                                         "LIBRARY_BACKUP_KEEP).")
def backup(folder: str | None, keep: int | None) -> None:
    from pathlib import Path

    from library.ops import backup as ops

    settings = _settings()
    _require_database(settings)
    # A backup runs beside the service on a box of two cores: it gives way to the desk and the
    # self-check machines (and so does pg_dump, its child), taking longer rather than slowing a loan.
    os.nice(10)
    try:
        made = ops.backup(settings, Path(folder).absolute() if folder else settings.backup_dir,
                          keep or settings.backup_keep)
    except ops.BackupError as error:
        raise click.ClickException(str(error)) from None
    rows = sum(made.manifest["counts"].values())
    click.secho(f"backed up {rows} rows ({made.manifest['bytes'] // 1024} KiB) to {made.path}", fg="green")


@main.command(help="Restore a backup made by `library backup` into this node's database (empty, or with --replace "
                   "while the service is stopped), then bring the schema up to date.")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--replace", is_flag=True, help="Put the backup in place of the data the database holds now.")
def restore(path: str, replace: bool) -> None:
    from pathlib import Path

    from library.ops import backup as ops

    settings = _settings()
    _require_database(settings)
    try:
        restored = ops.restore(settings, Path(path).absolute(), replace)
    except ops.BackupError as error:
        raise click.ClickException(str(error)) from None
    ran = asyncio.run(_migrate()) if restored.migrations_to_run else 0
    click.secho(f"restored {sum(restored.counts.values())} rows in {len(restored.counts)} tables from {path}"
                + (f"; {ran} migration{'' if ran == 1 else 's'} run" if ran else ""), fg="green")


@main.command("recover-branch", help="Rebuild a dead branch box on a new, migrated one: the initial sync from the "
                                     "central node, then the branch's own rows (activities, registrations, "
                                     "reading logs, rooms, staff accounts) from its vault there. Safe to run again.")
@click.option("--from", "central_url", default=None, help="The central node's URL (default: LIBRARY_CENTRAL_URL).")
@click.option("--credential", default=None, help="The branch's sync credential CODE.secret (default: "
                                                 "LIBRARY_SYNC_CREDENTIAL); a new one issued for the branch works.")
def recover_branch(central_url: str | None, credential: str | None) -> None:
    import dataclasses

    from library.errors import DomainError
    from library.sync.client import SyncFailed, recover_box

    settings = _settings()
    _require_database(settings)
    credential = credential or settings.sync_credential
    settings = dataclasses.replace(settings, node_role="branch", central_url=central_url or settings.central_url,
                                   sync_credential=credential,
                                   branch_code=settings.branch_code or (credential or "").partition(".")[0])
    try:
        done = asyncio.run(recover_box(settings))
    except SyncFailed as error:
        raise click.ClickException(f"recovery stopped (what was done is kept; run it again): {error}") from None
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    written = done["written"]
    click.echo(f"initial sync: {done['round'].received} changes received in {done['round'].pages} pages")
    click.echo(f"from the vault: {done['vault_rows']} rows, written "
               + ", ".join(f"{kind} {count}" for kind, count in written.items()) if written else
               f"from the vault: {done['vault_rows']} rows, nothing written")
    for kind, key in done["dropped"]:
        click.echo(f"dropped {kind} {key}: deleted after the backup this box was restored from")
    for kind, key, why in done["skipped"]:
        click.secho(f"skipped {kind} {key}: {why}", fg="yellow", err=True)
    click.secho(f"branch {settings.branch_code} recovered", fg="green")


@main.command(help="Load the demo branches, rooms, staff and readers (safe to run again).")
def demo() -> None:
    settings = _settings()
    _require_database(settings)
    from library.clock import today_in
    from library.demo import BOOKS, BRANCHES, PATRONS, STAFF, load_demo

    total = len(BRANCHES) + len(STAFF) + len(PATRONS) + len(BOOKS)
    with click.progressbar(length=total, label="demo data", show_pos=True) as bar:

        def progress(label: str, created: bool) -> None:
            bar.label = f"demo data: {label} {'created' if created else 'already there'}"
            bar.update(1)

        counts = asyncio.run(load_demo(today_in(settings.time_zone), progress))
    click.echo(f"created {counts['created']}, already there {counts['existing']}")
    click.echo("staff:   librarian / librarian-demo (Zhenxing), volunteer / volunteer-demo (Zhenxing), "
               "admin / admin-demo-pass (all branches)")
    click.echo("readers: card ZX10000001, PIN 123456 (a mother of two linked children)")


@main.command(help="Print the permission matrix (roles x permissions) as Markdown: docs/permissions.md is this.")
def permissions() -> None:
    from library.accounts.permissions import permission_table

    click.echo(permission_table(), nl=False)


@main.command("create-staff", help="Create a staff account (the password is asked for, not passed).")
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True, help="The name shown to colleagues.")
@click.option("--role", type=click.Choice(["librarian", "administrator", "volunteer"]), default="librarian",
              show_default=True)
@click.option("--branch", "branches", multiple=True, help="A branch code the account works for (repeatable).")
@click.option("--all-branches", is_flag=True, help="Works for every branch (network administrators).")
@click.option("--language", type=click.Choice(["zh_CN", "en"]), default="zh_CN", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_staff(username: str, display_name: str, role: str, branches: tuple[str, ...], all_branches: bool,
                 language: str, password_stdin: bool) -> None:
    settings = _settings()
    _require_database(settings)
    from library.accounts.service import create_staff as create
    from library.errors import DomainError

    if not branches and not all_branches:
        raise click.UsageError("give at least one --branch, or --all-branches")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise click.ClickException("the passwords differ")
    try:
        asyncio.run(create(username, display_name, password, role, list(branches), "cli",
                           all_branches=all_branches, language=language))
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    click.secho(f"staff account {username} created", fg="green")


@main.group(help="The catalogue: MARC import and export.")
def catalog() -> None:
    pass


async def _pooled(settings: Settings, work):
    """`work` with a PostgreSQL connection pool as big as an import's writers: without one, every
    transaction connects anew (a server process each, its caches and plans cold), and an
    import writes dozens of batches."""
    if settings.engine != "postgres":
        return await work
    from library.catalog.exchange import WRITERS_POSTGRES
    from library.db import engine

    await engine().start_connection_pool(min_size=1, max_size=WRITERS_POSTGRES)
    try:
        return await work
    finally:
        await engine().close_connection_pool()


_ENCODING_CHOICES = ["auto", "utf-8", "marc-8", "gb18030", "gbk"]


def _print_counts(batch_uuid: str, status: str, counts) -> None:
    click.echo(f"batch {batch_uuid} {status}")
    click.echo(f"read {counts.read} ({counts.flavour or 'no'} records): new {counts.new}, matched {counts.matched}, "
               f"unchanged {counts.unchanged}, ignored {counts.ignored}, refused {counts.refused}; "
               f"possible duplicates {counts.possible_duplicates}, with warnings {counts.with_warnings}; "
               f"copies new {counts.copies_new}, changed {counts.copies_changed}")


async def _print_refused(batch_uuid: str, total: int) -> None:
    """Every refused record, a page at a time (a file of garbage may have thousands)."""
    from library.catalog.batches import batch_records

    page = 1
    while (page - 1) * 500 < total:
        for row in (await batch_records(batch_uuid, "refused", page, 500))["records"]:
            number = f" [{row['control_number']}]" if row["control_number"] else ""
            click.echo(f"  refused record {row['position']}{number}: {row['reason']}", err=True)
        page += 1
    if total:
        click.echo(f"  the refused records as they were in the file: the batch's page, or "
                   f"GET /api/catalog/imports/{batch_uuid}/refused.mrc", err=True)


def _run_import(settings: Settings, work) -> Any:
    """`work()` with the import's settings: a bulk load, so the cycle collector stands aside for
    the length of the command. The import's rows are freed by reference counting, and it makes
    no cycles worth collecting; measured on a 50,000-record file: with collections after every
    50,000 new objects they still took 0.9-1.3 of this process's 8 CPU-s (each young
    generation held a batch's rows), and none at all with it off."""
    from library.errors import DomainError

    collecting = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        return asyncio.run(_pooled(settings, work()))
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()


@catalog.command("import", help="Import MARC21 or CNMARC records with their holdings (ISO 2709 or MARCXML): "
                                "staged and committed in one pass (or --stage-only). A record matching one "
                                "catalogued (LIBRARY_CATALOG_MATCH_POINTS) overlays it, or is unchanged; one "
                                "that only shares an ISBN is added and flagged as a possible duplicate.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "flavour", type=click.Choice(["auto", "marc21", "cnmarc"]), default="auto",
              show_default=True, help="auto: CNMARC when a record has a 200 field and no 245.")
@click.option("--encoding", type=click.Choice(_ENCODING_CHOICES, case_sensitive=False), default="auto",
              show_default=True, help="The file's character set (gbk is read as GB18030); auto: decided per record.")
@click.option("--branch", help="The branch that gets copies whose holdings name no known branch.")
@click.option("--on-match", type=click.Choice(["overlay", "add", "ignore"]), default="overlay", show_default=True,
              help="A record that matches a catalogued one: overlay it (its local edits stay), add it as a new "
                   "record (flagged as a possible duplicate), or leave the catalogued one as it is.")
@click.option("--stage-only", is_flag=True, help="Read, match and count only; commit later with "
                                                 "`library catalog commit BATCH` (or on the batch's page).")
def catalog_import(file: str, flavour: str, encoding: str, branch: str | None, on_match: str,
                   stage_only: bool) -> None:
    settings = _settings()
    import uuid
    from pathlib import Path

    from library.catalog import batches, converters
    from library.catalog.marc import encoding_choice
    from library.clock import today_in
    from library.errors import DomainError

    encoding = encoding_choice(encoding)
    today = today_in(settings.time_zone)
    batch_uuid = str(uuid.uuid4())
    directory = batches.imports_dir(settings.data_dir)
    # The file is kept under the data folder, and read from there; a big file's conversion begins
    # first: its processes start up and convert while we reach the database.
    try:
        placed = batches.place_file(Path(file), directory, batch_uuid)
        conversion = converters.Conversion(placed, flavour, today, encoding, f"import {batch_uuid}")
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    try:
        _require_database(settings)

        async def work():
            await batches.new_batch(placed, Path(file).name, "cli", flavour=flavour, encoding=encoding,
                                    default_branch=branch, on_match=on_match,
                                    match_points=settings.catalog_match_points, directory=directory,
                                    batch_uuid=batch_uuid)
            with click.progressbar(length=converters.count_records(placed),
                                   label="staging" if stage_only else "importing", show_pos=True) as bar:
                done = {"n": 0}

                def progress(counts) -> None:
                    bar.update(counts.read - done["n"])
                    done["n"] = counts.read

                if stage_only:
                    counts = await batches.stage(batch_uuid, today, directory=directory, progress=progress,
                                                 conversion=conversion)
                else:
                    counts = await batches.commit(batch_uuid, "cli", today, directory=directory, progress=progress,
                                                  conversion=conversion, staged=False)
            _print_counts(batch_uuid, "staged" if stage_only else "committed", counts)
            await _print_refused(batch_uuid, counts.refused)

        _run_import(settings, work)
    finally:
        conversion.close(wait=True)


@catalog.command("commit", help="Commit a staged import (`library catalog import --stage-only`): write its records.")
@click.argument("batch")
@click.option("--on-match", type=click.Choice(["overlay", "add", "ignore"]), default=None,
              help="The choice for records matching catalogued ones (default: the batch's).")
def catalog_commit(batch: str, on_match: str | None) -> None:
    settings = _settings()
    _require_database(settings)
    from library.catalog import batches, converters
    from library.clock import today_in

    directory = batches.imports_dir(settings.data_dir)
    # A big file's converters are forked now, before the event loop (see converters.start):
    # started from inside it they would be spawned, each a new interpreter importing the
    # conversion again (measured: a 50,000-record commit took 1.2 s longer than the import).
    source = batches.source_path(directory, batch)
    workers = converters.start() if source.is_file() and converters.wanted(source) else None

    async def work():
        counts = await batches.commit(batch, "cli", today_in(settings.time_zone), on_match=on_match,
                                      directory=directory, workers=workers)
        _print_counts(batch, "committed", counts)
        await _print_refused(batch, counts.refused)

    try:
        _run_import(settings, work)
    finally:
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)


@catalog.command("undo", help="Undo a committed import: the records it created are deleted (unless a copy was "
                              "lent or held since), the records it overlaid get their values back.")
@click.argument("batch")
def catalog_undo(batch: str) -> None:
    settings = _settings()
    _require_database(settings)
    from library.catalog import batches

    async def work():
        report = await batches.undo(batch, "cli")
        click.echo(f"batch {batch} undone: records removed {report['records_removed']}, restored "
                   f"{report['records_restored']}; copies removed {report['copies_removed']}, restored "
                   f"{report['copies_restored']}; left as they are {len(report['kept'])}")
        for kept in report["kept"]:
            click.echo(f"  left: {' '.join(str(part) for part in kept)}", err=True)

    _run_import(settings, work)


@catalog.command("export", help="Export the catalogue (or one branch's part) as MARC21, MARCXML or CNMARC.")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--format", "fmt", type=click.Choice(["marc21", "marcxml", "cnmarc"]), default="marc21", show_default=True)
@click.option("--encoding", type=click.Choice(["utf-8", "gb18030"]), default="utf-8", show_default=True,
              help="CNMARC only: GB18030 (GBK) is what most Chinese systems read.")
@click.option("--branch", help="Only records with copies at this branch, with those copies.")
def catalog_export(file: str, fmt: str, encoding: str, branch: str | None) -> None:
    settings = _settings()
    _require_database(settings)
    from library.catalog.export import export_marc
    from library.errors import DomainError

    async def write() -> int:
        size = 0
        with open(file, "wb") as handle:
            async for chunk in export_marc(fmt, branch, encoding=encoding):
                handle.write(chunk)
                size += len(chunk)
        return size

    try:
        size = asyncio.run(write())
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    click.echo(f"wrote {size} bytes to {file}")


@main.group(help="Notices to readers: reminders, the outbox, sending over SMTP.")
def notices() -> None:
    pass


@notices.command("send", help="One round of the notice worker: lapse seat offers not taken in time, expire "
                              "the hold shelf, queue reminders, send what is due (the server does this every LIBRARY_NOTICE_INTERVAL_SECONDS; "
                              "forgetting old loans is `library privacy forget`).")
def notices_send() -> None:
    settings = _settings()
    _require_database(settings)
    from library.app import NOTICE_STEPS
    from library.clock import now_utc
    from library.i18n import gettext as _
    from library.notices.tables import Notice
    from library.notices.worker import run_cycle

    async def go():
        now = now_utc()
        # The server's round, with the same steps (seat offers not taken in time come first).
        report = await run_cycle(now, settings, NOTICE_STEPS)
        waiting = await Notice.count().where(Notice.sent_at.is_null())
        return report, waiting

    report, waiting = asyncio.run(go())
    queued = {"due_soon": 0, "overdue": 0, "hold_expiring": 0, **report.queued}
    click.echo(_("Holds expired on the hold shelf: {count}").format(count=report.holds_expired))
    click.echo(_("Reminders queued: {due_soon} due soon, {overdue} overdue, {hold_expiring} last day to collect")
               .format(**queued))
    sending = report.sending
    if sending.disabled:
        click.secho(_("Sending is off: LIBRARY_SMTP_HOST is not set. {count} notices wait in the outbox.")
                    .format(count=waiting), fg="yellow")
    else:
        click.echo(_("Notices sent: {sent}; failed, to be retried: {failed}; still waiting: {waiting}")
                   .format(sent=sending.sent, failed=sending.failed, waiting=waiting))
    for error in dict.fromkeys(sending.errors):
        click.secho(_("Mail server: {error}").format(error=error), fg="red", err=True)
    for failure in report.failures:
        click.secho(_("Failed: {step}").format(step=failure), fg="red", err=True)
    if report.failures or sending.failed:
        sys.exit(1)


@notices.command("list", help="Notices waiting to be sent, with attempts and the last error.")
@click.option("--all", "show_all", is_flag=True, help="Also the notices already sent.")
@click.option("--limit", type=int, default=50, show_default=True)
def notices_list(show_all: bool, limit: int) -> None:
    settings = _settings()
    _require_database(settings)
    from library.i18n import gettext as _
    from library.notices.tables import Notice

    async def rows():
        query = Notice.select(Notice.kind, Notice.to_address, Notice.subject, Notice.created_at, Notice.send_after,
                              Notice.attempts, Notice.last_error, Notice.sent_at).order_by(Notice.id, ascending=False)
        if not show_all:
            query = query.where(Notice.sent_at.is_null())
        return await query.limit(limit)

    found = asyncio.run(rows())
    if not found:
        click.echo(_("No notices wait to be sent.") if not show_all else _("The outbox is empty."))
        return
    for row in found:
        if row["sent_at"]:
            state = _("sent {moment}").format(moment=row["sent_at"].isoformat(timespec="seconds"))
        else:
            state = _("next try {moment}, attempts {attempts}").format(
                moment=row["send_after"].isoformat(timespec="seconds"), attempts=row["attempts"])
        click.echo(f"{row['kind']:<14} {row['to_address']:<30} {state}  {row['subject']}")
        # Right under its notice and on the same stream, so that a pipe or a log file keeps them together.
        if row["last_error"] and not row["sent_at"]:
            click.echo("    " + _("last error: {error}").format(error=row["last_error"]))


@main.group(invoke_without_command=True,
            help="Branch sync with the central library. Without a subcommand: one round on a branch node "
                 "(send what waits, receive what changed), with a progress bar on the initial sync.")
@click.pass_context
def sync(context: click.Context) -> None:
    if context.invoked_subcommand is not None:
        return
    settings = _settings()
    _require_database(settings)
    from library.errors import DomainError
    from library.sync.client import SyncFailed, sync_round

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "snapshot" and total:
            bar = bars.get("snapshot")
            if bar is None:
                bar = bars["snapshot"] = click.progressbar(length=total, label="initial sync", show_pos=True)
                bar.__enter__()
            bar.update(done - bar.pos)
        elif stage == "upload":
            click.echo(f"uploaded {done} of {total}")

    try:
        report = asyncio.run(sync_round(settings, progress))
    except SyncFailed as error:
        raise click.ClickException(f"sync stopped (what was done is kept; run it again): {error}") from None
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
    click.echo(f"uploads sent: {report.uploaded} ({report.packaged} packaged this round), "
               f"conflicts reported by the central node: {report.upload_conflicts}")
    click.echo(f"changes received: {report.received} in {report.pages} pages; "
               f"kept local (not yet acknowledged): {report.kept_local}; not applied here: {report.refused_here}")


@sync.command("status", help="Last successful sync, what waits to go up, conflicts to resolve.")
def sync_status() -> None:
    settings = _settings()
    _require_database(settings)
    from library.sync.service import status

    state = asyncio.run(status(settings))
    click.echo(f"role: {state['role']}" + (f" ({state['branch_code']})" if state["branch_code"] else ""))
    if state["role"] == "branch":
        click.echo(f"central node: {state['central_url'] or 'not set up'}")
        click.echo(f"last successful sync: {state['last_success_at'] or 'never'}")
        click.echo(f"last attempt: {state['last_attempt_at'] or 'never'}")
        if state["last_error"]:
            click.secho(f"last error: {state['last_error']}", fg="red")
        click.echo(f"initial sync: {'done' if state['initial_sync_done'] else 'not finished'}")
        click.echo(f"waiting to go up: {state['waiting_changes']} changed entities, "
                   f"{state['waiting_uploads']} packaged uploads ({state['waiting_upload_changes']} changes)")
    else:
        click.echo(f"changes logged: {state['log_seq']}")
        for branch in state["branches"]:
            click.echo(f"  {branch['code']}: {branch['uploads']} uploads applied, last {branch['last_upload_at'] or '-'}")
    click.echo(f"conflicts to resolve: {state['open_conflicts']}")


@sync.command("credential", help="On the central node: issue a branch node's credential (printed once).")
@click.option("--branch", "branch_code", required=True, help="The branch code, e.g. ZX.")
def sync_credential(branch_code: str) -> None:
    settings = _settings()
    _require_database(settings)
    if settings.node_role != "central":
        raise click.ClickException("credentials are issued on the central node (LIBRARY_NODE_ROLE=central)")
    from library.errors import DomainError
    from library.sync.service import issue_credential

    try:
        credential = asyncio.run(issue_credential(branch_code.strip().upper(), "cli"))
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    click.echo(credential)


@sync.command("revoke", help="On the central node: revoke every credential of a branch.")
@click.option("--branch", "branch_code", required=True)
def sync_revoke(branch_code: str) -> None:
    settings = _settings()
    _require_database(settings)
    from library.errors import DomainError
    from library.sync.service import revoke_credentials

    try:
        count = asyncio.run(revoke_credentials(branch_code.strip().upper(), "cli"))
    except DomainError as error:
        raise click.ClickException(error.message()) from None
    click.echo(f"revoked: {count}")


@main.group(help="Readers' personal information: the retention table (docs/privacy.md).")
def privacy() -> None:
    pass


@privacy.command("forget", help="One run of the retention table: unlink returned loans from their readers, "
                                "delete closed holds, old reading logs, registrations, notices, audit entries and "
                                "sync packages (the server does this every LIBRARY_NOTICE_INTERVAL_SECONDS).")
def privacy_forget() -> None:
    settings = _settings()
    _require_database(settings)
    from library.clock import now_utc
    from library.i18n import gettext as _
    from library.privacy.retention import forget

    done = asyncio.run(forget(now_utc(), settings.loan_history_days, settings.activity_history_days))
    labels = {"loans": _("Returned loans unlinked from their readers"), "holds": _("Closed holds deleted"),
              "reading_logs": _("Reading-challenge logs deleted"), "registrations": _("Registrations deleted"),
              "notices": _("Notices deleted"), "audit": _("Audit entries and PIN records deleted"),
              "sync": _("Sync packages, answers and conflict details emptied")}
    for key, label in labels.items():
        click.echo(f"{label}: {done.counts.get(key, 0)}")


@main.group(help="Self-check machines: their kiosk accounts (docs/selfcheck.md).")
def selfcheck() -> None:
    pass


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise click.ClickException("the passwords differ")
    return password


def _run_kiosk_command(work) -> Any:
    from library.errors import DomainError

    try:
        return asyncio.run(work)
    except DomainError as error:
        raise click.ClickException(error.message()) from None


@selfcheck.command("add-kiosk", help="Create a kiosk account for a self-check machine of a branch (the password "
                                     "is asked for, not passed). The machine logs in with it over SIP2.")
@click.option("--login", required=True, help="What the machine sends as its SIP2 login user id (CN).")
@click.option("--branch", "branch_code", required=True, help="The branch the machine stands in, e.g. ZX.")
@click.option("--location", "location_code", default="", help="Where in the branch (SIP2 location code).")
@click.option("--messages", default="23,63,11,09,29,65,17,15", show_default=True,
              help="The SIP2 requests it may send, separated by commas (login, status, resend and end session "
                   "are always allowed).")
@click.option("--encoding", type=click.Choice(["utf-8", "gb18030"]), default="utf-8", show_default=True,
              help="The machine's text encoding (GB18030 reads GBK too).")
@click.option("--language", type=click.Choice(["zh_CN", "en"]), default="zh_CN", show_default=True,
              help="Screen messages when no reader's card says otherwise (returns).")
@click.option("--no-pin", is_flag=True, help="Readers borrow without their PIN (card only).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def selfcheck_add_kiosk(login: str, branch_code: str, location_code: str, messages: str, encoding: str,
                        language: str, no_pin: bool, password_stdin: bool) -> None:
    settings = _settings()
    _require_database(settings)
    from library.selfcheck import rules
    from library.selfcheck.service import add_kiosk

    codes = [code.strip() for code in messages.split(",") if code.strip()]
    problem = rules.allowed_problem(codes)
    if problem:
        raise click.BadParameter(problem, param_hint="--messages")
    password = _read_password(password_stdin)
    _run_kiosk_command(add_kiosk("cli", login, password, branch_code, location_code, codes, encoding, language,
                                 patron_pin_required=not no_pin))
    click.secho(f"kiosk account {login.strip().lower()} created for {branch_code.strip().upper()}", fg="green")


@selfcheck.command("disable-kiosk", help="Disable a kiosk account: its machine is cut off at its next message.")
@click.argument("login")
def selfcheck_disable_kiosk(login: str) -> None:
    settings = _settings()
    _require_database(settings)
    from library.selfcheck.service import set_kiosk_enabled

    _run_kiosk_command(set_kiosk_enabled("cli", login, False))
    click.echo(f"kiosk account {login} disabled")


@selfcheck.command("enable-kiosk", help="Enable a kiosk account again.")
@click.argument("login")
def selfcheck_enable_kiosk(login: str) -> None:
    settings = _settings()
    _require_database(settings)
    from library.selfcheck.service import set_kiosk_enabled

    _run_kiosk_command(set_kiosk_enabled("cli", login, True))
    click.echo(f"kiosk account {login} enabled")


@selfcheck.command("kiosk-password", help="Set a new password for a kiosk account.")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def selfcheck_kiosk_password(login: str, password_stdin: bool) -> None:
    settings = _settings()
    _require_database(settings)
    from library.selfcheck.service import set_kiosk_password

    _run_kiosk_command(set_kiosk_password("cli", login, _read_password(password_stdin)))
    click.echo(f"password of kiosk account {login} set")


@selfcheck.command("kiosks", help="List the kiosk accounts.")
def selfcheck_kiosks() -> None:
    settings = _settings()
    _require_database(settings)
    from library.selfcheck.service import list_kiosks

    for row in asyncio.run(list_kiosks()):
        state = "enabled" if row["enabled"] else "DISABLED"
        click.echo(f"{row['login']:<20} {row['branch.code']:<6} {row['location_code'] or '-':<12} "
                   f"{row['encoding']:<8} {row['language']:<6} pin {'yes' if row['patron_pin_required'] else 'no '} "
                   f"{state:<8} {row['allowed_messages']}")


@main.command(help="Run the SIP2 server for self-check machines (LIBRARY_SIP2_PORT, 6001 by default).")
@click.option("--host", default=None, help="Default: LIBRARY_SIP2_HOST, else LIBRARY_HOST, else 127.0.0.1.")
@click.option("--port", type=int, default=None, help="Default: LIBRARY_SIP2_PORT or 6001.")
def sip2(host: str | None, port: int | None) -> None:
    settings = _settings()
    _require_database(settings)
    import logging

    from library.selfcheck.server import serve as serve_sip2
    from library.web.logs import configure_logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    configure_logging(settings.log_format)  # JSON lines when asked, as the web service writes them
    host, port = host or settings.sip2_host, port or settings.sip2_port
    tls = " with TLS" if settings.sip2_tls_cert else ""

    def ready(bound: int) -> None:
        click.echo(f"SIP2 server on {host}:{bound}{tls} ({settings.engine})", err=True)

    # uvloop when installed, as uvicorn takes it for the web service ("auto").
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    try:
        run_loop(serve_sip2(settings, host, port, ready))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        raise click.ClickException(f"cannot serve SIP2 on {host}:{port}: {error}") from None


@main.command(help="Run the web service (uvicorn).")
@click.option("--host", default=None, help="Default: LIBRARY_HOST or 127.0.0.1.")
@click.option("--port", type=int, default=None, help="Default: LIBRARY_PORT or 8000.")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str | None, port: int | None, workers: int, reload: bool) -> None:
    settings = _settings()
    _require_database(settings)
    import uvicorn

    from library.web.logs import server_log_config

    host, port = host or settings.host, port or settings.port
    click.echo(f"serving on http://{host}:{port} ({settings.engine})")
    # Behind a reverse proxy the client's address (used to throttle sign-ins) comes from
    # X-Forwarded-For, trusted only from the proxies named in LIBRARY_FORWARDED_ALLOW_IPS.
    proxied = settings.forwarded_allow_ips is not None
    # The SIP2 server, when enabled, runs beside the web service in a process of its own (its own
    # event loop and database pool), started and stopped with it.
    sip2_process = None
    if settings.sip2_enabled:
        import signal
        import subprocess

        # Until uvicorn installs its own handlers, a SIGTERM still stops the SIP2 server too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sip2_process = subprocess.Popen([sys.executable, "-m", "library.cli", "sip2"])
    try:
        uvicorn.run("library.asgi:app", host=host, port=port, workers=workers, reload=reload,
                    proxy_headers=proxied, forwarded_allow_ips=settings.forwarded_allow_ips if proxied else None,
                    server_header=False, log_level="info", log_config=server_log_config(settings.log_format))
    finally:
        if sip2_process is not None:
            sip2_process.terminate()
            try:
                sip2_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sip2_process.kill()


if __name__ == "__main__":
    main()
