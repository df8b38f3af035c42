"""Staged imports: a MARC file read into a batch, looked at, committed, and undone if need be.

A file is kept under the data folder (`<data dir>/imports/<batch uuid>/source`) and read from
there, a block at a time. *Staging* reads it whole: every record converted, matched and
counted (library.catalog.exchange, mode "stage"), nothing written to the catalogue; every
refused record is listed with where its bytes are, so that they can be downloaded as a MARC
file, fixed and loaded again. *Committing* reads it again and writes (the fast bulk path),
with the choice made for records that match catalogued ones (overlay, add, ignore); what each
record did is kept, which is what *undoing* reads: records the import created are deleted,
unless a copy of them has been lent or held since (or they were changed since, or have
copies of other origin), which are left and reported; overlaid records get back the values
they had, unless changed since; copies likewise. The command line stages and commits in one
pass (`library catalog import`), or stages only (`--stage-only`) for `library catalog commit`.

Staged counts are what committing would do if the catalogue stays as it is (one approximation:
the same record twice in a file, more than a batch of records apart, is forecast as two new
records); the committed counts are exact. Either way read = new + matched + unchanged +
ignored + refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import shutil
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

from library import audit
from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog import converters, exchange
from library.catalog.conversion import ENCODINGS, Refusal, xml_records
from library.catalog.exchange import _JSON_OVERLAY, ITEM_UPDATE, OVERLAY_COLUMNS, ImportCounts, ImportReport, ImportRun, _update_sql
from library.catalog.matching import parse_match_points
from library.catalog.references import referred
from library.catalog.tables import ImportBatch, ImportBatchRecord, ImportBatchStatus, Item, MatchAction, Record
from library.db import executemany, json_object, read_transaction, run_in_write_transaction
from library.errors import Conflict, DomainError, InvalidInput, NotFound
from library.settings import load_settings

FLAVOURS = ("auto", "marc21", "cnmarc")
ON_MATCH = tuple(action.value for action in MatchAction)
SOURCE_NAME = "source"
PAGE_SIZE = 50
UNDO_CHUNK = 500  # batch rows undone a transaction
# A copy that another app's row refers to (a loan, a hold, a transit, a transfer) has been lent,
# held or moved since it came in; a record that one refers to other than its copies and the
# pairs of possible duplicates (a hold, a reading-log entry) has readers waiting or reading.
_RECORD_USES_IGNORED = frozenset({"item", "possible_duplicate"})


def imports_dir(data_dir: Path) -> Path:
    return data_dir / "imports"


def _default_imports_dir() -> Path:
    return imports_dir(load_settings().data_dir)


def source_path(directory: Path, batch_uuid: str) -> Path:
    return directory / str(batch_uuid) / SOURCE_NAME


async def _branches() -> dict[str, int]:
    return {row["code"]: row["id"] for row in await Branch.select(Branch.id, Branch.code)}


def _check_options(flavour: str, encoding: str, on_match: str) -> None:
    if flavour not in FLAVOURS:
        raise InvalidInput("invalid_choice", field="flavour")
    if encoding not in ENCODINGS:
        raise InvalidInput("invalid_choice", field="encoding")
    if on_match not in ON_MATCH:
        raise InvalidInput("invalid_choice", field="on_match")


def place_file(source: Path | BinaryIO, directory: Path, batch_uuid: str, max_bytes: int | None = None) -> Path:
    """A batch's file under the data folder, copied from a path or an open binary file (an
    upload) a block at a time; refused at once (and nothing kept) when it is not MARC or too big."""
    target = source_path(directory, batch_uuid)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        if isinstance(source, Path) and max_bytes is None:
            shutil.copyfile(source, target)  # the kernel copies it (copy_file_range), not this process
        else:
            with target.open("wb") as out:
                handle = source.open("rb") if isinstance(source, Path) else source
                try:
                    while block := handle.read(1 << 20):
                        size += len(block)
                        if max_bytes is not None and size > max_bytes:
                            raise InvalidInput("import_too_big", field="file", limit=max_bytes // (1024 * 1024))
                        out.write(block)
                finally:
                    if isinstance(source, Path):
                        handle.close()
        converters.check_marc(target)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise
    return target


async def new_batch(source: Path | BinaryIO, file_name: str, actor: str, *, flavour: str = "auto",
                    encoding: str = "auto", default_branch: str | None = None, on_match: str = "overlay",
                    match_points: str = "", imported_by: Principal | None = None, directory: Path | None = None,
                    max_bytes: int | None = None, batch_uuid: str | None = None) -> str:
    """A new batch for a file (a path, or an open binary file such as an upload; or the file
    `place_file` put in place already for `batch_uuid`); its uuid. Refuses at once what is not
    MARC, and a branch the staff member does not work for (copies with an unknown branch would
    go there)."""
    directory = directory or _default_imports_dir()
    placed = batch_uuid is not None and isinstance(source, Path) and source == source_path(directory, batch_uuid)
    try:
        _check_options(flavour, encoding, on_match)
        match_points = ",".join(point.name for point in parse_match_points(match_points)) if match_points else ""
        branches = await _branches()
        if default_branch:
            if default_branch not in branches:
                raise InvalidInput("invalid_choice", field="branch")
            if imported_by is not None and not imported_by.works_for(branches[default_branch]):
                raise InvalidInput("invalid_choice", field="branch")
    except BaseException:
        if placed:
            shutil.rmtree(source.parent, ignore_errors=True)
        raise
    if not placed:
        batch_uuid = str(uuid_module.uuid4())
        await asyncio.to_thread(place_file, source, directory, batch_uuid, max_bytes)
    size = source_path(directory, batch_uuid).stat().st_size
    await run_in_write_transaction(lambda: ImportBatch.insert(ImportBatch(
        uuid=batch_uuid, file_name=(file_name or "")[:255], size_bytes=size, flavour=flavour, encoding=encoding,
        default_branch=default_branch or "", on_match=on_match, match_points=match_points,
        status=ImportBatchStatus.staging, staged_by=actor)))
    return batch_uuid


async def _batch_row(batch_uuid: str) -> dict[str, Any]:
    try:
        uuid_module.UUID(str(batch_uuid))
    except ValueError:
        raise NotFound("import_batch_not_found") from None
    row = await ImportBatch.select().where(ImportBatch.uuid == batch_uuid).first()
    if row is None:
        raise NotFound("import_batch_not_found")
    return row


def _counts_columns(counts: ImportCounts) -> dict[Any, Any]:
    return {ImportBatch.records_read: counts.read, ImportBatch.records_new: counts.new,
            ImportBatch.records_matched: counts.matched, ImportBatch.records_unchanged: counts.unchanged,
            ImportBatch.records_ignored: counts.ignored, ImportBatch.records_refused: counts.refused,
            ImportBatch.records_with_warnings: counts.with_warnings,
            ImportBatch.possible_duplicates: counts.possible_duplicates, ImportBatch.copies_new: counts.copies_new,
            ImportBatch.copies_changed: counts.copies_changed, ImportBatch.flavour_seen: counts.flavour}


async def _claim(batch_uuid: str, before: tuple[str, ...], during: str, refusal: str) -> dict[str, Any]:
    """The batch, its status moved from one of `before` to `during` by one conditional UPDATE:
    two clicks on Commit make one commit."""
    row = await _batch_row(batch_uuid)

    async def work() -> list:
        return await ImportBatch.update({ImportBatch.status: during}).where(
            (ImportBatch.uuid == batch_uuid) & ImportBatch.status.is_in(list(before))).returning(ImportBatch.id)

    if not await run_in_write_transaction(work):
        current = (await _batch_row(batch_uuid))["status"]
        raise Conflict(refusal, status=current)
    return row


async def _run(row: dict[str, Any], mode: str, today: dt.date, directory: Path, on_match: str,
               progress: Callable[[ImportCounts], None],
               conversion: converters.Conversion | None,
               workers: concurrent.futures.ProcessPoolExecutor | None = None) -> ImportCounts:
    path = source_path(directory, row["uuid"])
    if not path.exists():
        raise InvalidInput("import_file_missing")
    points = parse_match_points(row["match_points"] or ",".join(p.name for p in exchange.DEFAULT_POINTS))
    run = ImportRun(row["id"], str(row["uuid"]), mode=mode, on_match=on_match, points=points)
    # Whatever an earlier pass left (staging's rows, or a commit that failed half-way is not
    # committed again: see `commit`).
    await run_in_write_transaction(lambda: ImportBatchRecord.delete().where(ImportBatchRecord.batch == row["id"]))
    began_here = conversion is None
    conversion = conversion or converters.Conversion(path, row["flavour"], today, row["encoding"],
                                                     run.found_by, workers=workers)
    try:
        return await exchange.import_file(conversion, run, await _branches(), row["default_branch"] or None,
                                          progress)
    finally:
        if began_here:
            conversion.close()


async def stage(batch_uuid: str, today: dt.date, *, directory: Path | None = None,
                progress: Callable[[ImportCounts], None] = lambda counts: None,
                conversion: converters.Conversion | None = None) -> ImportCounts:
    """Read a new batch's file: convert, match and count every record; write nothing to the catalogue."""
    directory = directory or _default_imports_dir()
    row = await _claim(batch_uuid, (ImportBatchStatus.staging, ImportBatchStatus.staged), ImportBatchStatus.staging,
                       "import_not_staged")
    try:
        counts = await _run(row, "stage", today, directory, MatchAction.overlay, progress, conversion)
    except BaseException as error:
        await _failed(batch_uuid, error, ImportBatchStatus.failed)
        raise
    await run_in_write_transaction(lambda: ImportBatch.update(
        {**_counts_columns(counts), ImportBatch.status: ImportBatchStatus.staged, ImportBatch.error: ""}).where(
        ImportBatch.uuid == batch_uuid))
    return counts


async def _failed(batch_uuid: str, error: BaseException, status: str, **more: Any) -> None:
    why = error.message() if isinstance(error, DomainError) else f"{type(error).__name__}: {error}".strip()
    try:
        await run_in_write_transaction(lambda: ImportBatch.update(
            {ImportBatch.status: status, ImportBatch.error: why[:2000], **more}).where(ImportBatch.uuid == batch_uuid))
    except Exception:  # noqa: BLE001 - the original error is what the caller sees
        pass


async def commit(batch_uuid: str, actor: str, today: dt.date, *, on_match: str | None = None,
                 directory: Path | None = None, progress: Callable[[ImportCounts], None] = lambda counts: None,
                 conversion: converters.Conversion | None = None, staged: bool = True,
                 workers: concurrent.futures.ProcessPoolExecutor | None = None) -> ImportCounts:
    """Write a staged batch into the catalogue (or a new one straight away, `staged=False`: the
    one-pass import of the command line). `on_match`: the choice for matched records, if made
    now. A commit that fails half-way leaves the batch "failed" with what it wrote recorded,
    so that it can be undone. `workers`: converter processes started ahead (see
    converters.Conversion); the caller shuts them down too, should the commit end before
    they are taken."""
    directory = directory or _default_imports_dir()
    before = (ImportBatchStatus.staged,) if staged else (ImportBatchStatus.staging,)
    if on_match is not None:  # checked before the batch is claimed: a wrong choice leaves it staged
        _check_options("auto", "auto", on_match)
    row = await _claim(batch_uuid, before, ImportBatchStatus.committing, "import_not_staged")
    if on_match is not None:
        row["on_match"] = on_match
    try:
        counts = await _run(row, "commit", today, directory, row["on_match"], progress, conversion, workers)
    except BaseException as error:
        await _failed(batch_uuid, error, ImportBatchStatus.failed, committed_by=actor,
                      committed_at=dt.datetime.now(dt.timezone.utc))
        raise
    now = dt.datetime.now(dt.timezone.utc)

    async def done() -> None:
        await ImportBatch.update({**_counts_columns(counts), ImportBatch.status: ImportBatchStatus.committed,
                                  ImportBatch.on_match: row["on_match"], ImportBatch.error: "",
                                  ImportBatch.committed_by: actor, ImportBatch.committed_at: now}).where(
            ImportBatch.uuid == batch_uuid)
        await audit.record(actor, "catalog.import_committed", "catalog", batch=str(batch_uuid),
                           file=row["file_name"], read=counts.read, new=counts.new, matched=counts.matched,
                           unchanged=counts.unchanged, ignored=counts.ignored, refused=counts.refused,
                           possible_duplicates=counts.possible_duplicates, copies_new=counts.copies_new,
                           copies_changed=counts.copies_changed)

    await run_in_write_transaction(done)
    return counts


async def choose(batch_uuid: str, on_match: str) -> None:
    """The choice for a staged batch's matched records: overlay, add or ignore."""
    _check_options("auto", "auto", on_match)
    row = await _batch_row(batch_uuid)
    if row["status"] != ImportBatchStatus.staged:
        raise Conflict("import_not_staged", status=row["status"])
    await run_in_write_transaction(lambda: ImportBatch.update({ImportBatch.on_match: on_match}).where(
        (ImportBatch.uuid == batch_uuid) & (ImportBatch.status == ImportBatchStatus.staged)))


async def discard(batch_uuid: str, *, directory: Path | None = None) -> None:
    """A batch that wrote nothing (staged, or failed while staging) goes, with its file."""
    directory = directory or _default_imports_dir()
    row = await _batch_row(batch_uuid)

    async def work() -> list:
        nothing_written = ImportBatch.status.is_in([ImportBatchStatus.staged, ImportBatchStatus.staging]) | (
            (ImportBatch.status == ImportBatchStatus.failed) & ImportBatch.committed_at.is_null())
        return await ImportBatch.delete().where((ImportBatch.uuid == batch_uuid) & nothing_written).returning(
            ImportBatch.id)

    if not await run_in_write_transaction(work):
        raise Conflict("import_not_staged", status=row["status"])
    shutil.rmtree(source_path(directory, row["uuid"]).parent, ignore_errors=True)


async def import_now(source: Path | BinaryIO, file_name: str, actor: str, today: dt.date, **options: Any
                     ) -> tuple[str, ImportCounts]:
    """Stage and commit a file in one pass (the command line, and `import_marc`): (batch uuid, counts)."""
    progress = options.pop("progress", lambda counts: None)
    conversion = options.pop("conversion", None)
    directory = options.get("directory")
    batch_uuid = await new_batch(source, file_name, actor, **options)
    counts = await commit(batch_uuid, actor, today, directory=directory, progress=progress, conversion=conversion,
                          staged=False)
    return batch_uuid, counts


async def import_marc(data: bytes, actor: str, today: dt.date, flavour: str = "auto",
                      default_branch: str | None = None, *, encoding: str = "auto", on_match: str = "overlay",
                      match_points: str = "", imported_by: Principal | None = None, directory: Path | None = None,
                      file_name: str = "upload.mrc") -> ImportReport:
    """A file's bytes imported in one go (tests, the one-call API): the counts, the batch, and
    every refused record."""
    import io

    batch_uuid, counts = await import_now(io.BytesIO(data), file_name, actor, today, flavour=flavour,
                                          encoding=encoding, default_branch=default_branch, on_match=on_match,
                                          match_points=match_points, imported_by=imported_by, directory=directory)
    report = ImportReport(**vars(counts), batch=batch_uuid)
    page = 1
    while len(report.skipped) < counts.refused:
        rows = (await batch_records(batch_uuid, "refused", page, 1000))["records"]
        if not rows:
            break
        report.skipped += [Refusal(row["position"], 0, 0, row["control_number"], row["title"], row["reason"])
                           for row in rows]
        page += 1
    return report


# --- looking at batches ------------------------------------------------------------------------


def shown_counts(row: dict[str, Any]) -> dict[str, int]:
    """A batch's counts as its page shows them: a staged batch's as its current choice for matched
    records would make them (staging counts them as overlays)."""
    counts = {"read": row["records_read"], "new": row["records_new"], "matched": row["records_matched"],
              "unchanged": row["records_unchanged"], "ignored": row["records_ignored"],
              "refused": row["records_refused"], "with_warnings": row["records_with_warnings"],
              "possible_duplicates": row["possible_duplicates"], "copies_new": row["copies_new"],
              "copies_changed": row["copies_changed"]}
    if row["status"] == ImportBatchStatus.staged and row["on_match"] != MatchAction.overlay:
        matched, counts["matched"] = counts["matched"], 0
        if row["on_match"] == MatchAction.ignore:
            counts["ignored"] += matched
        else:
            counts["new"] += matched
            counts["possible_duplicates"] += matched
    return counts


def _view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    view["uuid"] = str(row["uuid"])
    view["counts"] = shown_counts(row)
    view["undo_report"] = json_object(row.get("undo_report"))
    return view


async def batch_detail(batch_uuid: str) -> dict[str, Any]:
    return _view(await _batch_row(batch_uuid))


async def list_batches(page: int = 1, page_size: int = 20) -> dict[str, Any]:
    async with read_transaction():
        total = await ImportBatch.count()
        rows = await ImportBatch.select().order_by(ImportBatch.id, ascending=False).limit(page_size).offset(
            (page - 1) * page_size)
    return {"batches": [_view(row) for row in rows], "total": total, "page": page, "page_size": page_size}


OUTCOMES = ("refused", "new", "matched", "unchanged", "ignored", "warnings")


async def batch_records(batch_uuid: str, outcome: str = "refused", page: int = 1,
                        page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """A page of a batch's records of one outcome ("warnings": those with warnings), in file order."""
    if outcome not in OUTCOMES:
        raise InvalidInput("invalid_choice", field="outcome")
    row = await _batch_row(batch_uuid)
    where = ImportBatchRecord.batch == row["id"]
    if outcome == "warnings":
        where &= ImportBatchRecord.warnings != "[]"
    else:
        where &= ImportBatchRecord.outcome == outcome
    async with read_transaction():
        total = await ImportBatchRecord.count().where(where)
        rows = await ImportBatchRecord.select(
            ImportBatchRecord.position, ImportBatchRecord.outcome, ImportBatchRecord.record,
            ImportBatchRecord.control_number, ImportBatchRecord.title, ImportBatchRecord.reason,
            ImportBatchRecord.reason_note, ImportBatchRecord.warnings).where(where).order_by(ImportBatchRecord.position).limit(page_size).offset(
            (page - 1) * page_size)
    for record in rows:
        record["warnings"] = json.loads(record["warnings"]) if isinstance(record["warnings"], str) else \
            list(record["warnings"] or [])
        record["record"] = str(record["record"]) if record["record"] else None
        record["reason_note"] = json_object(record["reason_note"])
    return {"records": rows, "total": total, "page": page, "page_size": page_size, "outcome": outcome}


async def refused_file(batch_uuid: str, *, directory: Path | None = None) -> AsyncIterator[bytes]:
    """The refused records of a batch as they were in its file (ISO 2709: their own bytes; MARCXML:
    a collection of their <record> elements), to fix and load again."""
    directory = directory or _default_imports_dir()
    row = await _batch_row(batch_uuid)
    path = source_path(directory, row["uuid"])
    if not path.exists():
        raise InvalidInput("import_file_missing")
    refused = await ImportBatchRecord.select(ImportBatchRecord.position, ImportBatchRecord.byte_offset,
                                             ImportBatchRecord.byte_length).where(
        (ImportBatchRecord.batch == row["id"]) & (ImportBatchRecord.outcome == "refused")).order_by(
        ImportBatchRecord.position)
    return _refused_bytes(path, refused)


async def _refused_bytes(path: Path, refused: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    if converters.is_xml(path):

        wanted = {r["position"] for r in refused}
        yield b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">\n'
        with path.open("rb") as handle:
            for position, (_, element) in enumerate(xml_records(handle), start=1):
                if position in wanted:
                    yield element + b"\n"
        yield b"</collection>\n"
        return
    with path.open("rb") as handle:
        for r in refused:
            handle.seek(r["byte_offset"])
            yield handle.read(r["byte_length"])


# --- undoing -----------------------------------------------------------------------------------


def _changed_since(stamp: Any, committed_at: dt.datetime) -> bool:
    if stamp is None:
        return False
    if isinstance(stamp, str):
        stamp = dt.datetime.fromisoformat(stamp)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp > committed_at


# An undo marks the batch (`undone_at`) at its start and after each chunk: a batch "undoing"
# whose mark is older than this stopped half-way (its process gone) and may be taken up again;
# a younger one is being undone now, and a second click is refused.
UNDO_STALE = dt.timedelta(minutes=2)


async def _claim_undo(batch_uuid: str) -> dict[str, Any]:
    row = await _batch_row(batch_uuid)
    now = dt.datetime.now(dt.timezone.utc)

    async def work() -> list:
        takeable = ImportBatch.status.is_in([ImportBatchStatus.committed, ImportBatchStatus.failed]) | (
            (ImportBatch.status == ImportBatchStatus.undoing)
            & (ImportBatch.undone_at.is_null() | (ImportBatch.undone_at < now - UNDO_STALE)))
        return await ImportBatch.update({ImportBatch.status: ImportBatchStatus.undoing,
                                         ImportBatch.undone_at: now}).where(
            (ImportBatch.uuid == batch_uuid) & takeable).returning(ImportBatch.id)

    if not await run_in_write_transaction(work):
        raise Conflict("import_not_committed", status=(await _batch_row(batch_uuid))["status"])
    return row


async def undo(batch_uuid: str, actor: str) -> dict[str, Any]:
    """Take a committed import back (see the module's docstring); what was left, and why, is
    kept on the batch (`undo_report`) and returned. Done a few hundred records a transaction,
    from the file's end: an undo that stops half-way (the database gone) is taken up again
    where it stopped by undoing again."""
    row = await _claim_undo(batch_uuid)
    if row["committed_at"] is None:  # failed while staging: nothing was written
        await run_in_write_transaction(lambda: ImportBatch.update({ImportBatch.status: row["status"],
                                                                   ImportBatch.undone_at: None}).where(
            ImportBatch.uuid == batch_uuid))
        raise Conflict("import_not_committed", status=row["status"])
    committed_at = row["committed_at"]
    if committed_at.tzinfo is None:
        committed_at = committed_at.replace(tzinfo=dt.timezone.utc)
    report = json_object(row["undo_report"]) or {}
    report.setdefault("records_removed", 0)
    report.setdefault("records_restored", 0)
    report.setdefault("copies_removed", 0)
    report.setdefault("copies_restored", 0)
    report.setdefault("kept", [])
    below = report.get("below")  # positions from here on are done
    while True:
        query = ImportBatchRecord.select().where(
            (ImportBatchRecord.batch == row["id"]) & (ImportBatchRecord.outcome != "refused"))
        if below is not None:
            query = query.where(ImportBatchRecord.position < below)
        rows = await query.order_by(ImportBatchRecord.position, ascending=False).limit(UNDO_CHUNK)
        if not rows:
            break
        below = rows[-1]["position"]

        async def work(rows: list[dict[str, Any]] = rows, below: int = below) -> None:
            await _undo_rows(rows, committed_at, report)
            report["below"] = below
            await ImportBatch.update({ImportBatch.undo_report: json.dumps(report, ensure_ascii=False),
                                      ImportBatch.undone_at: dt.datetime.now(dt.timezone.utc)}).where(
                ImportBatch.id == row["id"])

        await run_in_write_transaction(work)
    now = dt.datetime.now(dt.timezone.utc)
    report.pop("below", None)

    async def done() -> None:
        await ImportBatch.update({ImportBatch.status: ImportBatchStatus.undone, ImportBatch.undone_by: actor,
                                  ImportBatch.undone_at: now,
                                  ImportBatch.undo_report: json.dumps(report, ensure_ascii=False)}).where(
            ImportBatch.id == row["id"])
        await audit.record(actor, "catalog.import_undone", "catalog", batch=str(batch_uuid), file=row["file_name"],
                           records_removed=report["records_removed"], records_restored=report["records_restored"],
                           copies_removed=report["copies_removed"], copies_restored=report["copies_restored"],
                           kept=len(report["kept"]))

    await run_in_write_transaction(done)
    return report


async def _undo_rows(rows: list[dict[str, Any]], committed_at: dt.datetime, report: dict[str, Any]) -> None:
    """One chunk of a batch's rows undone (inside the caller's transaction), later positions first."""

    kept: list = report["kept"]
    copies = [(json.loads(r["copies"]) if r["copies"] else {"created": [], "changed": []}) for r in rows]
    created_copies = [uuid for c in copies for uuid in c.get("created", [])]
    changed_copies = {uuid: previous for c in copies for uuid, previous in c.get("changed", [])}
    items = await Item.select(Item.id, Item.uuid, Item.barcode, Item.record, Item.updated_at, Item.status).where(
        Item.uuid.is_in(created_copies + list(changed_copies))) if created_copies or changed_copies else []
    by_uuid = {str(item["uuid"]): item for item in items}
    used = await referred("item", [item["id"] for item in items])
    # A reader waiting for a record (a hold on the record, no copy set aside yet) keeps its
    # copies: the record stays, and not without the copies that would fill the hold.
    new_records = [str(r["record"]) for r in rows if r["outcome"] == "new" and r["record"]]
    record_ids = {item["record"] for item in items}
    if new_records:
        record_ids |= {rec["id"] for rec in await Record.select(Record.id).where(Record.uuid.is_in(new_records))}
    held = await referred("record", list(record_ids), _RECORD_USES_IGNORED)
    now = dt.datetime.now(dt.timezone.utc)

    # Copies the import changed: their values back, unless lent or changed since (a copy lent
    # while a long commit ran was changed before `committed_at`: its loan says so).
    restore = []
    for uuid, previous in changed_copies.items():
        item = by_uuid.get(uuid)
        if item is None:
            continue
        if item["id"] in used:
            kept.append(["copy", item["barcode"], "lent_since"])
            continue
        if _changed_since(item["updated_at"], committed_at):
            kept.append(["copy", item["barcode"], "changed_since"])
            continue
        values = [previous.get(column) for column in ITEM_UPDATE]
        values[0] = int(values[0]) if values[0] is not None else None
        values[1], values[2] = int(values[1]), int(values[2])
        values[6] = int(values[6]) if values[6] not in (None, "None") else None
        values[7] = dt.date.fromisoformat(values[7]) if values[7] not in (None, "None") else None
        restore.append(tuple(values) + (now, item["id"]))
    await executemany(_update_sql("item", (*ITEM_UPDATE, "updated_at")), restore)
    report["copies_restored"] += len(restore)

    # Copies the import created: removed, unless lent, held, moved or changed since.
    removable, refused_records = [], set()
    for uuid in created_copies:
        item = by_uuid.get(uuid)
        if item is None:
            continue
        if item["id"] in used:
            kept.append(["copy", item["barcode"], "lent_since"])
            refused_records.add(item["record"])
        elif item["record"] in held:
            kept.append(["copy", item["barcode"], "held_since"])
            refused_records.add(item["record"])
        elif _changed_since(item["updated_at"], committed_at):
            kept.append(["copy", item["barcode"], "changed_since"])
            refused_records.add(item["record"])
        else:
            removable.append(item["id"])
    if removable:
        await Item.delete().where(Item.id.is_in(removable))
    report["copies_removed"] += len(removable)

    # Overlaid records: their values back, unless changed since.
    overlaid = [r for r in rows if r["outcome"] == "matched" and r["previous"] and r["record"]]
    new = [r for r in rows if r["outcome"] == "new" and r["record"]]
    uuids = [str(r["record"]) for r in overlaid + new]
    records = {str(rec["uuid"]): rec for rec in await Record.select(
        Record.id, Record.uuid, Record.title, Record.updated_at).where(Record.uuid.is_in(uuids))} if uuids else {}
    updates = []
    for r in overlaid:
        record = records.get(str(r["record"]))
        if record is None:
            continue
        if _changed_since(record["updated_at"], committed_at):
            kept.append(["record", str(r["record"]), record["title"], "changed_since"])
            continue
        previous = json.loads(r["previous"])
        updates.append(tuple(json.dumps(previous.get(c), ensure_ascii=False) if c in _JSON_OVERLAY
                             else previous.get(c) if previous.get(c) is not None or c not in ("marc", "marc_format",
                                                                                              "marc_source",
                                                                                              "control_agency")
                             else "" for c in OVERLAY_COLUMNS) + (now, record["id"]))
    await executemany(_update_sql("record", (*OVERLAY_COLUMNS, "updated_at")), updates)
    report["records_restored"] += len(updates)

    # New records: deleted, unless held or read since, changed since, or with copies left.
    candidates = [records[str(r["record"])] for r in new if str(r["record"]) in records]
    with_copies = {item["record"] for item in await Item.select(Item.record).where(
        Item.record.is_in([rec["id"] for rec in candidates]))} if candidates else set()
    deleting = []
    for record in candidates:
        if record["id"] in held:
            kept.append(["record", str(record["uuid"]), record["title"], "held_since"])
        elif record["id"] in with_copies:
            kept.append(["record", str(record["uuid"]), record["title"],
                         "lent_since" if record["id"] in refused_records else "copies_since"])
        elif _changed_since(record["updated_at"], committed_at):
            kept.append(["record", str(record["uuid"]), record["title"], "changed_since"])
        else:
            deleting.append(record["id"])
    if deleting:
        await Record.delete().where(Record.id.is_in(deleting))
    report["records_removed"] += len(deleting)
