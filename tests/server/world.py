"""What the multi-process tests set up in a node's database, run in a child process with the
node's settings (the test process's own engine is the suite's database, not the node's).

`python -c "from tests.server import world; world.main()" '{"readers": 120, ...}'` prints one
line of JSON: what the test needs to know (card numbers, barcodes, the session's id).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import uuid as uuid_module
from typing import Any


async def prepare(readers: int, capacity: int, copies: int) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from library.accounts.principal import Principal
    from library.accounts.tables import Patron
    from library.activities import service as activities
    from library.activities.service import EventInput
    from library.activities.tables import Occurrence
    from library.branches.tables import Branch
    from library.catalog.tables import Item
    from library.clock import now_utc
    from library.errors import DomainError

    now = now_utc()
    zx = await Branch.select(Branch.id, Branch.time_zone).where(Branch.code == "ZX").first()
    cards = [f"ZX8{n:07d}" for n in range(readers)]
    await Patron.insert(*[Patron(uuid=str(uuid_module.uuid4()), card_number=card, name=f"并发读者{n}",
                                 category="adult", home_branch=zx["id"], expires_on=now.date() + dt.timedelta(days=365),
                                 pin_hash="-") for n, card in enumerate(cards)])
    staff = Principal(kind="staff", id=0, uuid="concurrency-test", name="并发测试", language="zh_CN",
                      role="administrator", all_branches=True)
    # 10:00 on the branch's next open day (tomorrow or later), registration open since an hour ago.
    today = now.astimezone(ZoneInfo(zx["time_zone"])).date()
    for days in range(1, 15):
        try:
            event = await activities.schedule_event(staff, EventInput(
                branch_code="ZX", title_zh="并发故事会", duration_minutes=60, capacity=capacity,
                first_start=dt.datetime.combine(today + dt.timedelta(days=days), dt.time(10, 0)),
                registration_opens_at=now - dt.timedelta(hours=1)), now)
            break
        except DomainError:  # closed that day
            continue
    session = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.uuid == event).first()
    # Copies of one picture book on the shelf at ZX, each to be scanned at several desks at once.
    record = (await Item.select(Item.record).where(Item.home_branch == zx["id"]).first())["record"]
    barcodes = [f"CONC{n:05d}" for n in range(copies)]
    await Item.insert(*[Item(uuid=str(uuid_module.uuid4()), record=record, barcode=barcode, home_branch=zx["id"],
                             current_branch=zx["id"], status="available") for barcode in barcodes])
    return {"cards": cards, "session": str(session["uuid"]), "barcodes": barcodes}


def main() -> None:
    from library.db import close_connections, prepare_sqlite

    arguments = json.loads(sys.argv[1])

    async def run() -> dict[str, Any]:
        await prepare_sqlite()
        try:
            return await prepare(**arguments)
        finally:
            await close_connections()

    print(json.dumps(asyncio.run(run())))
