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


async def own_rows(branch_code: str, tag: str) -> dict[str, str]:
    """What the desk of this branch does in a week, as rows of its own tables: a room, a staff
    account, a reading programme with a session, two registrations (one attended), a reader in
    the challenge and a reading log. The uuids made, by what they are."""
    from library.accounts.tables import Patron, StaffBranch, StaffMember
    from library.activities.tables import Event, Occurrence, Programme, ProgrammeParticipant, ReadingLog, Registration
    from library.branches.tables import Branch, Room
    from library.catalog.tables import Record
    from library.db import run_in_write_transaction

    made = {name: str(uuid.uuid4()) for name in ("room", "staff", "programme", "event", "occurrence",
                                                   "registration", "attended", "reading_log")}
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = dt.datetime(2027, 7, 10, 9, 30)

    async def work() -> None:
        branch = (await Branch.select(Branch.id).where(Branch.code == branch_code).first())["id"]
        readers = [row["id"] for row in await Patron.select(Patron.id).where(Patron.home_branch == branch)
                   .order_by(Patron.id).limit(2)]
        record = (await Record.select(Record.id).order_by(Record.id).first())["id"]
        await Room.insert(Room(uuid=made["room"], branch=branch, code=f"R-{tag}", name_zh=f"绘本室{tag}",
                               name_en=f"Picture books {tag}", capacity=20, features=["projector"]))
        room = (await Room.select(Room.id).where(Room.uuid == made["room"]).first())["id"]
        await StaffMember.insert(StaffMember(uuid=made["staff"], username=f"volunteer-{tag}",
                                             display_name=f"志愿者 {tag}", password_hash="$argon2id$v=19$not-a-real",
                                             language="zh_CN"))
        staff = (await StaffMember.select(StaffMember.id).where(StaffMember.uuid == made["staff"]).first())["id"]
        await StaffBranch.insert(StaffBranch(staff=staff, branch=branch))
        await Programme.insert(Programme(uuid=made["programme"], branch=branch, title_zh=f"暑期阅读 {tag}",
                                         starts_on=dt.date(2027, 7, 1), ends_on=dt.date(2027, 8, 31),
                                         goals=[{"min": 3, "max": 12, "goal": 10}], badges=[3, 6, 10]))
        programme = (await Programme.select(Programme.id).where(Programme.uuid == made["programme"]).first())["id"]
        await Event.insert(Event(uuid=made["event"], branch=branch, room=room, programme=programme,
                                 title_zh=f"绘本故事会 {tag}", capacity=12, first_start=start, duration_minutes=60,
                                 created_by="staff:desk"))
        event = (await Event.select(Event.id).where(Event.uuid == made["event"]).first())["id"]
        await Occurrence.insert(Occurrence(
            uuid=made["occurrence"], event=event, room=room, original_start=start, local_start=start,
            local_end=start + dt.timedelta(hours=1), starts_at=now, ends_at=now + dt.timedelta(hours=1),
            capacity=12, confirmed=2, arrivals=2))
        occurrence = (await Occurrence.select(Occurrence.id).where(
            Occurrence.uuid == made["occurrence"]).first())["id"]
        await Registration.insert(
            Registration(uuid=made["registration"], occurrence=occurrence, patron=readers[0],
                         registered_by=readers[0], status="confirmed", arrival=1, created_at=now, confirmed_at=now),
            Registration(uuid=made["attended"], occurrence=occurrence, patron=readers[1], status="attended",
                         arrival=2, created_at=now, confirmed_at=now, checked_in_at=now))
        await ProgrammeParticipant.insert(ProgrammeParticipant(programme=programme, patron=readers[0],
                                                               log_loans=True))
        await ReadingLog.insert(ReadingLog(uuid=made["reading_log"], programme=programme, patron=readers[0],
                                           record=record, title=f"猜猜我有多爱你 {tag}", minutes=15,
                                           read_on=dt.date(2027, 7, 11)))

    await run_in_write_transaction(work)
    return made


async def attend(registration_uuid: str) -> None:
    """The desk marks a reader present at a session (attendance is a change of a registration)."""
    from library.activities.tables import Registration

    await Registration.update({Registration.status: "attended",
                               Registration.checked_in_at: dt.datetime.now(dt.timezone.utc)}).where(
        Registration.uuid == registration_uuid)


async def forget_reading_log(log_uuid: str) -> None:
    from library.activities.tables import ReadingLog

    await ReadingLog.delete().where(ReadingLog.uuid == log_uuid)


async def own_images() -> dict[str, dict]:
    """Every own row of this box (the vault's kinds) as "kind/key" -> image: comparable across boxes."""
    from library.sync.vault import local_images

    return {f"{kind}/{key}": image for (kind, key), image in (await local_images()).items()}
