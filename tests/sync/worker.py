"""What a test asks a node to do in a child process with that node's settings (see Node.in_node).

Bulk data is written the way the MARC import writes it (one INSERT for many rows in one
transaction): the change log's triggers fire for every row, as they would for any import.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

BATCH = 2000


async def run(function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    from library.db import close_connections, prepare_sqlite

    await prepare_sqlite()
    try:
        return await function(*args)
    finally:
        await close_connections()


async def seed_copies(branch_code: str, count: int, prefix: str) -> int:
    """`count` records with one copy each at `branch_code` (barcodes PREFIX0000001...), no ISBNs."""
    from library.branches.tables import Branch
    from library.catalog.records import search_text_of
    from library.catalog.exchange import ITEM_COLUMNS, RECORD_COLUMNS, _insert_sql
    from library.db import executemany, run_in_write_transaction

    branch_id = (await Branch.raw("SELECT id FROM branch WHERE code = {}", branch_code))[0]["id"]
    now = dt.datetime.now(dt.timezone.utc)

    for start in range(0, count, BATCH):
        numbers = range(start, min(count, start + BATCH))

        async def work(numbers: range = numbers) -> None:
            record_rows, record_uuids = [], []
            for number in numbers:
                values = {"title": f"{prefix} 绘本 第{number}册", "subtitle": "", "parallel_title": "",
                          "original_title": "", "contributors": [{"name": "测试作者", "role": "author"}],
                          "publisher": "测试出版社", "series": "", "subjects": ["测试"], "clc": "I287.8"}
                record_uuid = str(uuid.uuid4())
                record_uuids.append(record_uuid)
                record_rows.append((
                    record_uuid, None, "[]", None, values["title"], "", "", "", json.dumps(values["contributors"]),
                    values["publisher"], 2020, "chi", "", "", json.dumps(values["subjects"]), 3, 6,
                    "picture_book", 32, "", "", "I287.8", f"I287.8/{number}", search_text_of(values), now, now))
            await executemany(_insert_sql("record", RECORD_COLUMNS), record_rows)
            ids = {str(row["uuid"]): row["id"] for row in await Branch.raw(
                "SELECT id, uuid FROM record WHERE title LIKE {}", f"{prefix} %")}
            item_rows = [(str(uuid.uuid4()), ids[record_uuid], f"{prefix}{number:07d}", branch_id, branch_id,
                          "绘本区", "picture_book", "available", 2980, dt.date(2026, 3, 1), "", now, now)
                         for number, record_uuid in zip(numbers, record_uuids)]
            await executemany(_insert_sql("item", ITEM_COLUMNS), item_rows)

        await run_in_write_transaction(work)
    return count


def _desk() -> Any:
    from library.accounts.principal import Principal

    return Principal(kind="staff", id=0, uuid=str(uuid.uuid4()), name="sync-test", language="en",
                     role="administrator", all_branches=True)


async def checkout(branch_code: str, card_number: str, barcode: str) -> str:
    """A checkout at the desk of this node (the service the desk's page calls); the loan's uuid."""
    from library.loans import service

    return (await service.checkout(_desk(), branch_code, card_number, barcode,
                                   dt.datetime.now(dt.timezone.utc))).loan_uuid


async def reset_pin(card_number: str, pin: str) -> None:
    """Staff at this node's desk set a reader's PIN (the service the desk's page calls)."""
    from library.accounts import service

    await service.reset_pin(_desk(), card_number, pin)
