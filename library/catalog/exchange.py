"""Importing and exporting the catalogue as MARC: batches of records, each batch one transaction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from library import audit
from library.branches.tables import Branch
from library.catalog import marc
from library.catalog.marc import Holding, ImportReport, Skipped
from library.catalog.service import _json_list, is_unique_violation
from library.catalog.tables import Item, Record
from library.db import read_transaction, run_in_write_transaction
from library.errors import DomainError, InvalidInput, InvalidRecord

BATCH = 500
JSON_COLUMNS = ("other_isbns", "contributors", "subjects")


def _row(values: dict[str, Any]) -> dict[str, Any]:
    return {key: json.dumps(value, ensure_ascii=False) if key in JSON_COLUMNS else value
            for key, value in values.items()}


async def _apply(entries: list[tuple[int, dict[str, Any], list[Holding]]], branches: dict[str, int],
                 default_branch: str | None, report: ImportReport, actor: str) -> None:
    """Write one batch: match on ISBN, then control number; update what exists, insert the rest."""

    async def work() -> tuple[int, int, int, int]:
        created = updated = items_created = items_updated = 0
        isbns = [values["isbn13"] for _, values, _ in entries if values["isbn13"]]
        numbers = [values["control_number"] for _, values, _ in entries if values["control_number"]]
        existing_rows = []
        if isbns:
            existing_rows += await Record.select(Record.id, Record.isbn13, Record.control_number).where(
                Record.isbn13.is_in(isbns))
        if numbers:
            existing_rows += await Record.select(Record.id, Record.isbn13, Record.control_number).where(
                Record.control_number.is_in(numbers))
        by_isbn = {row["isbn13"]: row["id"] for row in existing_rows if row["isbn13"]}
        by_number = {row["control_number"]: row["id"] for row in existing_rows if row["control_number"]}
        record_ids: list[int] = []
        for _, values, _ in entries:
            record_id = by_isbn.get(values["isbn13"]) if values["isbn13"] else None
            if record_id is None and values["control_number"]:
                record_id = by_number.get(values["control_number"])
            if record_id is None:
                rows = await Record.insert(Record(**_row(values))).returning(Record.id)
                record_id = rows[0]["id"]
                created += 1
            else:
                update = dict(values)
                if not update["control_number"]:
                    update.pop("control_number")  # a file without 001 keeps the number we have
                if not update["isbn13"]:
                    update.pop("isbn13")
                await Record.update(_row(update)).where(Record.id == record_id)
                updated += 1
            if values["isbn13"]:
                by_isbn[values["isbn13"]] = record_id
            if values["control_number"]:
                by_number[values["control_number"]] = record_id
            record_ids.append(record_id)

        barcodes = [h.barcode for _, _, holdings in entries for h in holdings]
        existing_items = {}
        if barcodes:
            existing_items = {row["barcode"]: row["id"] for row in await Item.select(Item.id, Item.barcode).where(
                Item.barcode.is_in(barcodes))}
        new_items = []
        for record_id, (_, _, holdings) in zip(record_ids, entries):
            for holding in holdings:
                home = branches.get(holding.home_branch or "") or branches.get(default_branch or "")
                current = branches.get(holding.current_branch or "") or home
                if home is None:
                    continue
                fields = {
                    "record": record_id, "home_branch": home, "current_branch": current,
                    "shelf_location": holding.shelf_location[:100], "item_type": marc.valid_item_type(holding.item_type),
                    "status": holding.status, "price_cents": holding.price_cents, "acquired_on": holding.acquired_on,
                }
                if holding.barcode in existing_items:
                    await Item.update(fields).where(Item.id == existing_items[holding.barcode])
                    items_updated += 1
                else:
                    new_items.append(Item(barcode=holding.barcode, **fields))
                    existing_items[holding.barcode] = -1
        if new_items:
            await Item.insert(*new_items)
            items_created += len(new_items)
        return created, updated, items_created, items_updated

    created, updated, items_created, items_updated = await run_in_write_transaction(work)
    report.created += created
    report.updated += updated
    report.items_created += items_created
    report.items_updated += items_updated


async def _apply_safely(entries, branches, default_branch, report, actor) -> None:
    """A batch that fails as a whole is retried record by record, so one bad record skips alone."""
    try:
        await _apply(entries, branches, default_branch, report, actor)
    except Exception as error:  # noqa: BLE001 - narrowed below, record by record
        if len(entries) == 1:
            position, values, _ = entries[0]
            reason = "duplicate ISBN, control number or barcode" if is_unique_violation(error) else \
                f"{type(error).__name__}: {error}"
            report.skipped.append(Skipped(position, reason, values.get("control_number") or ""))
            return
        for entry in entries:
            await _apply_safely([entry], branches, default_branch, report, actor)


async def import_marc(data: bytes, actor: str, today: dt.date, flavour: str = "auto",
                      default_branch: str | None = None,
                      progress: Callable[[ImportReport], None] = lambda report: None) -> ImportReport:
    """Import every readable record; report what was created, updated and skipped (and why)."""
    if not data.strip():
        raise InvalidInput("marc_empty")
    branches = {row["code"]: row["id"] for row in await Branch.select(Branch.id, Branch.code)}
    report = ImportReport()
    entries: list[tuple[int, dict[str, Any], list[Holding]]] = []
    for position, record, reason in marc.read_marc(data):
        report.read += 1
        if record is None:
            report.skipped.append(Skipped(position, reason))
            continue
        record_flavour = marc.detect_flavour(record) if flavour == "auto" else flavour
        report.flavour = report.flavour or record_flavour
        try:
            converted = marc.convert(record, record_flavour)
            values = marc.values_of(converted, today)
        except InvalidRecord as error:
            report.skipped.append(Skipped(position, marc.describe_problems(error),
                                          converted.record.control_number or ""))
            continue
        except (DomainError, ValueError, KeyError, IndexError, AttributeError) as error:
            report.skipped.append(Skipped(position, f"{type(error).__name__}: {error}"))
            continue
        entries.append((position, values, converted.holdings))
        if len(entries) >= BATCH:
            await _apply_safely(entries, branches, default_branch, report, actor)
            entries = []
            progress(report)
    if entries:
        await _apply_safely(entries, branches, default_branch, report, actor)
    progress(report)
    if report.read == 0:
        raise InvalidInput("marc_empty")
    await run_in_write_transaction(lambda: audit.record(
        actor, "catalog.imported", "catalog", read=report.read, created=report.created, updated=report.updated,
        skipped=len(report.skipped)))
    return report


async def export_marc(fmt: str = "marc21", branch_code: str | None = None, page: int = 1000) -> AsyncIterator[bytes]:
    """The catalogue (or the records a branch holds, with that branch's copies), in chunks."""
    branches = {row["id"]: row["code"] for row in await Branch.select(Branch.id, Branch.code)}
    branch_id = next((i for i, code in branches.items() if code == branch_code), None) if branch_code else None
    if branch_code and branch_id is None:
        from library.errors import NotFound

        raise NotFound("branch_not_found", code=branch_code)
    if fmt == "marcxml":
        yield b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">'
    last_id = 0
    while True:
        async with read_transaction():
            query = Record.select().where(Record.id > last_id).order_by(Record.id).limit(page)
            if branch_id is not None:
                held = Item.select(Item.record).where(
                    (Item.home_branch == branch_id) | (Item.current_branch == branch_id))
                query = query.where(Record.id.is_in(held))
            rows = await query
            if not rows:
                break
            item_query = Item.select().where(Item.record.is_in([row["id"] for row in rows])).order_by(Item.barcode)
            if branch_id is not None:
                item_query = item_query.where((Item.home_branch == branch_id) | (Item.current_branch == branch_id))
            items = await item_query
        by_record: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            by_record.setdefault(item["record"], []).append({
                **item, "home_branch": branches[item["home_branch"]], "current_branch": branches[item["current_branch"]]})
        chunk = []
        for row in rows:
            view = dict(row)
            for key in JSON_COLUMNS:
                view[key] = _json_list(row[key])
            chunk.append(marc.to_marc21(view, by_record.get(row["id"], [])))
        if fmt == "marcxml":
            yield b"".join(_xml_record(record) for record in chunk)
        else:
            yield marc.write_marc21(chunk)
        last_id = rows[-1]["id"]
    if fmt == "marcxml":
        yield b"</collection>\n"


def _xml_record(record) -> bytes:
    import pymarc

    return pymarc.record_to_xml(record, namespace=False)
