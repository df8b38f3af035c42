"""The catalogue out as MARC: every record (or a branch's), page by page, in chunks.

A record that came in as MARC goes out as it came, with our changes applied
(library.catalog.marc_record: the kept record, each field group written from the columns only
where they differ from it, holdings from the copies as they are). Out in the other format, or
catalogued here, a record is written from its columns. MARC21 and MARCXML are UTF-8; CNMARC is
UTF-8 or GB18030, as asked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pymarc

from library.branches.tables import Branch
from library.catalog import marc, marc_record
from library.catalog.cnmarc import to_cnmarc
from library.catalog.records import JSON_COLUMNS
from library.catalog.tables import Item, Record
from library.db import json_list, read_transaction
from library.errors import InvalidInput, NotFound

FORMATS = ("marc21", "marcxml", "cnmarc")
ENCODINGS = ("utf-8", "gb18030")


def differing_groups(view: dict[str, Any], today: dt.date) -> list[str]:
    """The field groups whose columns no longer say what the kept record says."""
    kept = marc_record.kept_values(view["marc"], today)
    return list(marc_record.GROUPS) if kept is None else marc_record.changed_groups(kept, view)


def record_out(view: dict[str, Any], items: list[dict[str, Any]], fmt: str, today: dt.date) -> pymarc.Record:
    """One record as it goes out in `fmt` ("marc21" for MARCXML too, or "cnmarc")."""
    flavour = "cnmarc" if fmt == "cnmarc" else "marc21"
    generated = to_cnmarc(view, items, today) if flavour == "cnmarc" else marc.to_marc21(view, items)
    if not view.get("marc") or view.get("marc_format") != flavour:
        return generated
    return marc_record.merged_record(view["marc"], generated, differing_groups(view, today), flavour)


def record_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    for key in JSON_COLUMNS + ("local_edits",):
        if key in row:
            view[key] = json_list(row[key])
    return view


async def check_export(fmt: str, branch_code: str | None, encoding: str = "utf-8") -> None:
    """What `export_marc` would refuse, refused before a download starts (an answer cannot turn
    into an error once its first bytes are sent)."""
    if fmt not in FORMATS:
        raise InvalidInput("invalid_choice", field="format")
    if encoding not in ENCODINGS or (encoding != "utf-8" and fmt != "cnmarc"):
        raise InvalidInput("invalid_choice", field="encoding")
    if branch_code and not await Branch.exists().where(Branch.code == branch_code):
        raise NotFound("branch_not_found", code=branch_code)


async def export_marc(fmt: str = "marc21", branch_code: str | None = None, page: int = 1000,
                      encoding: str = "utf-8") -> AsyncIterator[bytes]:
    """The catalogue (or the records a branch holds, with that branch's copies), in chunks."""
    if fmt not in FORMATS:
        raise InvalidInput("invalid_choice", field="format")
    if encoding not in ENCODINGS or (encoding != "utf-8" and fmt != "cnmarc"):
        raise InvalidInput("invalid_choice", field="encoding")
    today = dt.date.today()
    branches = {row["id"]: row["code"] for row in await Branch.select(Branch.id, Branch.code)}
    branch_id = next((i for i, code in branches.items() if code == branch_code), None) if branch_code else None
    if branch_code and branch_id is None:
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
        chunk = [record_out(record_view(row), by_record.get(row["id"], []), fmt, today) for row in rows]
        if fmt == "marcxml":
            yield b"".join(pymarc.record_to_xml(record, namespace=False) for record in chunk)
        else:
            yield marc.write_iso2709(chunk, encoding)
        last_id = rows[-1]["id"]
    if fmt == "marcxml":
        yield b"</collection>\n"


async def one_record(uuid: str, fmt: str, today: dt.date) -> tuple[dict[str, Any], pymarc.Record]:
    """A record's view and the MARC it would go out as now, in `fmt` ("marc21" or "cnmarc")."""
    async with read_transaction():
        row = await Record.select().where(Record.uuid == uuid).first()
        if row is None:
            raise NotFound("record_not_found")
        items = await Item.select().where(Item.record == row["id"]).order_by(Item.barcode)
        branches = {b["id"]: b["code"] for b in await Branch.select(Branch.id, Branch.code)}
    copies = [{**item, "home_branch": branches[item["home_branch"]], "current_branch": branches[item["current_branch"]]}
              for item in items]
    view = record_view(row)
    return view, record_out(view, copies, fmt, today)


def display_fields(record: pymarc.Record) -> list[dict[str, Any]]:
    """A record's fields as the MARC page shows them: tag, indicators, data or subfields."""
    shown = []
    for marc_field in record.fields:
        if marc_field.control_field:
            shown.append({"tag": marc_field.tag, "data": marc_field.data})
        else:
            shown.append({"tag": marc_field.tag, "indicators": "".join(marc_field.indicators or "  ").replace(" ", "#"),
                          "subfields": [(s.code, s.value) for s in marc_field.subfields]})
    return shown


def kept_fields(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The record as it came in (empty for a record catalogued here)."""
    return display_fields(marc_record.unpack(view["marc"])) if view.get("marc") else []


def encoded(records: list[pymarc.Record], fmt: str, encoding: str = "utf-8") -> bytes:
    """Records written out: ISO 2709 (MARC21, CNMARC) or a MARCXML collection."""
    if fmt == "marcxml":
        return (b'<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">'
                + b"".join(pymarc.record_to_xml(record, namespace=False) for record in records) + b"</collection>\n")
    return marc.write_iso2709(records, encoding)
