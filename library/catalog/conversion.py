"""A MARC file's records converted into the rows they become: what the converter processes
(library.catalog.converters) run while the importing process writes.

Pure CPU work and light on purpose: no Piccolo, no database. A worker imports this, the
MARC mapping and the record rules, and hands back plain tuples.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from library.catalog import marc
from library.catalog.marc import Skipped
from library.catalog.records import JSON_COLUMNS, record_values
from library.errors import DomainError, InvalidRecord

RECORD_COLUMNS = ("uuid", "isbn13", "other_isbns", "control_number", "title", "subtitle", "parallel_title",
                  "original_title", "contributors", "publisher", "publication_year", "language", "series",
                  "series_number", "subjects", "age_min", "age_max", "format", "pages", "summary", "cover", "clc",
                  "call_number", "search_text", "created_at", "updated_at")
# What a converted record carries: every column but the two timestamps, in table order.
ROW_COLUMNS = RECORD_COLUMNS[:-2]
# (position, isbn13, control number, row of ROW_COLUMNS, holdings); a holding is
# (uuid, barcode, home branch, current branch, shelf location, item type, status, price, acquired on),
# its branches codes as converted and ids once placed (`place_copies`).
Entry = tuple[int, Any, Any, tuple, list[tuple]]


def _uuid7_factory() -> Callable[[], str]:
    """New UUIDs as text, version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then 74
    random bits. Rows imported together get neighbouring keys, so the unique indexes of
    record.uuid and item.uuid (and the change log's) grow at their end instead of taking
    5,000 inserts all over their pages in every batch; and it is half the work of uuid4."""
    import os
    import time

    buffer, position = b"", 0

    def new() -> str:
        nonlocal buffer, position
        if position >= len(buffer):
            buffer, position = os.urandom(10 * 1024), 0
        # Written as text directly (half the time of building the 128-bit number first): the
        # millisecond, version 7 and 12 random bits, the variant (binary 10) and 2 random bits
        # in one hex digit, 60 random bits.
        random = buffer[position:position + 10].hex()
        position += 10
        ms = "%012x" % (time.time_ns() // 1_000_000)
        return f"{ms[:8]}-{ms[8:]}-7{random[:3]}-{'89ab'[int(random[3], 16) & 3]}{random[4:7]}-{random[7:19]}"

    return new


def convert_chunk(data: bytes, first_position: int, flavour: str, today: dt.date,
                  force_utf8: bool | None = None) -> tuple[list[Entry], list[Skipped], int, str]:
    """Read and convert records: (entries, skipped, records read, flavour seen). Pure CPU work,
    so it runs as well in a converter process as in the importing one (small files). Copies
    name their branches by code (see `place_copies`): a converter starts before the importing
    process has asked the database for its branches."""
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    read, seen = 0, ""
    new_uuid = _uuid7_factory()
    to_json = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(..., ensure_ascii=False) gives
    json_at = [i for i, column in enumerate(ROW_COLUMNS) if column in JSON_COLUMNS]
    for position, record, reason in marc.read_marc(data, force_utf8, first_position):
        read += 1
        if record is None:
            skipped.append(Skipped(position, reason))
            continue
        record_flavour = marc.detect_flavour(record) if flavour == "auto" else flavour
        seen = seen or record_flavour
        converted = None
        try:
            converted = marc.convert(record, record_flavour)
            values = record_values(converted.record, today)
        except InvalidRecord as error:
            skipped.append(Skipped(position, marc.describe_problems(error),
                                   (converted.record.control_number if converted else "") or ""))
            continue
        except (DomainError, ValueError, KeyError, IndexError, AttributeError) as error:
            skipped.append(Skipped(position, f"{type(error).__name__}: {error}"))
            continue
        values["uuid"] = new_uuid()
        row = [values[column] for column in ROW_COLUMNS]
        for i in json_at:
            row[i] = to_json(row[i]) if row[i] else "[]"  # most records have no other ISBN
        holdings = [(new_uuid(), holding.barcode, holding.home_branch or "", holding.current_branch or "",
                     holding.shelf_location[:100], marc.valid_item_type(holding.item_type), holding.status,
                     holding.price_cents, holding.acquired_on) for holding in converted.holdings]
        entries.append((position, values["isbn13"], values["control_number"], tuple(row), holdings))
    return entries, skipped, read, seen


def place_copies(entries: list[Entry], branches: dict[str, int], default_home: int | None) -> list[Entry]:
    """The copies' branches from codes to ids, in place: an unknown home branch is `default_home`,
    or the copy is left out when there is none; an unknown current branch is the home one."""
    for entry in entries:
        holdings = entry[4]
        if holdings:
            placed = []
            for holding in holdings:
                home = branches.get(holding[2]) or default_home
                if home is not None:
                    placed.append((holding[0], holding[1], home, branches.get(holding[3]) or home, *holding[4:]))
            holdings[:] = placed
    return entries
