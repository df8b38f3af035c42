"""Demo data: the Jiaxing central library, the Zhenxing smart study room and one more
branch, with rooms, staff and a family of readers. Safe to run again: what is there
already is left as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from library.accounts import service as accounts
from library.accounts.hashing import hash_secret
from library.accounts.tables import Patron, StaffMember
from library.branches.tables import Branch, CalendarException, OpeningPeriod, Room
from library.db import run_in_write_transaction
from library.volunteers.demo import ensure_demo_shifts

T = dt.time

BRANCHES = [
    {
        "code": "JX",
        "name_zh": "嘉兴市图书馆",
        "name_en": "Jiaxing Library (Central)",
        "kind": "central",
        "address_zh": "嘉兴市南湖区海盐塘路339号",
        "address_en": "339 Haiyantang Road, Nanhu District, Jiaxing",
        # The central library stays open through public holidays, except at Spring Festival.
        "closes_on_public_holidays": False,
        "hours": {weekday: [(T(9, 0), T(20, 30))] for weekday in range(1, 7)},
        "rooms": [
            ("HALL", "报告厅", "Lecture hall", 200, ["stage", "projector", "sound system"]),
            ("KIDS", "少儿阅览室", "Children's reading room", 120, ["picture books", "storytelling corner"]),
        ],
        # ... on New Year's Eve and Day, whichever days the lunar calendar makes them each year.
        "yearly_closures": ["spring_festival_eve_and_day"],
        "closures": [],
    },
    {
        "code": "ZX",
        "name_zh": "振兴社区智慧书房",
        "name_en": "Zhenxing Community Smart Study Room",
        "kind": "smart_study_room",
        "address_zh": "嘉兴市南湖区振兴社区服务中心二楼",
        "address_en": "2F, Zhenxing Community Service Centre, Nanhu District, Jiaxing",
        "closes_on_public_holidays": True,
        "hours": {weekday: [(T(8, 30), T(11, 30)), (T(13, 30), T(20, 30))] for weekday in range(1, 7)},
        "rooms": [
            ("KIDS", "邻乐空间", "Kids' space (Linle)", 30, ["picture books", "floor cushions", "projector"]),
            ("STUDY", "书房", "Study room", 40, ["quiet", "power sockets", "Wi-Fi"]),
            ("CRAFT", "手工教室", "Craft classroom", 20, ["looms", "sink", "worktables"]),
            ("TALK", "邻里议事区", "Neighbourhood discussion area", 15, ["bookshelves", "round table"]),
            ("STUDIO", "大师工作室", "Master craftsman's studio", 8, ["workbench"]),
        ],
        "closures": [
            (dt.date(2026, 12, 15), "社区服务中心设备检修", "Community centre maintenance"),
        ],
    },
    {
        "code": "XZ",
        "name_zh": "秀洲区图书馆",
        "name_en": "Xiuzhou District Library",
        "kind": "branch",
        "address_zh": "嘉兴市秀洲区洪兴西路",
        "address_en": "Hongxing West Road, Xiuzhou District, Jiaxing",
        "closes_on_public_holidays": True,
        "hours": {weekday: [(T(9, 0), T(17, 0))] for weekday in range(1, 7)},
        "rooms": [
            ("KIDS", "少儿阅览室", "Children's reading room", 60, ["picture books"]),
            ("HALL", "多功能厅", "Multi-purpose hall", 120, ["projector", "movable chairs"]),
        ],
        "closures": [],
    },
]


@dataclass(frozen=True)
class DemoStaff:
    username: str
    display_name: str
    password: str
    role: str
    branches: tuple[str, ...]
    all_branches: bool = False


STAFF = [
    DemoStaff("librarian", "周晓琳", "librarian-demo", "librarian", ("ZX",)),
    # A volunteer (晨星志愿者) at the desk: lends and returns, never sees readers' details.
    DemoStaff("volunteer", "林晨星", "volunteer-demo", "volunteer", ("ZX",)),
    DemoStaff("admin", "Network administrator", "admin-demo-pass", "administrator", (), all_branches=True),
]


@dataclass(frozen=True)
class DemoPatron:
    card_number: str
    name: str
    pin: str
    category: str
    birth_date: dt.date
    home_branch: str
    guardian: str | None = None
    block_reason: str | None = None
    expires_on: dt.date | None = None
    language: str = "zh_CN"


PATRONS = [
    DemoPatron("ZX10000001", "王芳", "123456", "adult", dt.date(1988, 5, 12), "ZX"),
    DemoPatron("ZX10000002", "李小米", "123456", "child", dt.date(2021, 3, 8), "ZX", guardian="ZX10000001"),
    DemoPatron("ZX10000003", "李小宇", "123456", "child", dt.date(2023, 6, 20), "ZX", guardian="ZX10000001"),
    DemoPatron("JX20000001", "张建国", "123456", "senior", dt.date(1950, 10, 1), "JX"),
    DemoPatron("ZX10000004", "陈静", "123456", "adult", dt.date(1992, 2, 29), "ZX",
               block_reason="遗失图书尚未赔偿"),  # as a librarian types it: one language
    DemoPatron("XZ30000001", "Emma Liu", "123456", "adult", dt.date(1995, 7, 30), "XZ",
               expires_on=dt.date(2025, 12, 31), language="en"),
]

ACTOR = "demo"


def _network_admin():
    from library.accounts.principal import Principal

    return Principal(kind="staff", id=0, uuid="demo", name="demo", language="zh_CN", role="administrator",
                     all_branches=True)


_NETWORK_ADMIN = _network_admin()

# Catalogued in the demo, with copies (branch, copies, on loan); 好饿的毛毛虫 is left for the
# librarian to scan in (it is in the local metadata file, so the form fills itself).
BOOKS = [
    ("9787533259594", [("ZX", 2, 1), ("JX", 3, 0)]),
    ("9787543464650", [("ZX", 1, 0), ("XZ", 1, 0)]),
    ("9787539109619", [("JX", 2, 2)]),
    ("9787533291204", [("ZX", 2, 0)]),
    ("9787202026458", [("ZX", 1, 0), ("JX", 2, 1)]),
    ("9780399226908", [("XZ", 1, 0)]),
]

_hashes: dict[str, str] = {}


async def _demo_hash(secret: str) -> str:
    """Demo accounts share a few secrets: hash each once per process (Argon2 takes ~0.1 s)."""
    if secret not in _hashes:
        _hashes[secret] = await hash_secret(secret)
    return _hashes[secret]


async def _ensure_branch(spec: dict) -> bool:
    async def work() -> bool:
        if await Branch.exists().where(Branch.code == spec["code"]):
            return False
        rows = await Branch.insert(
            Branch(
                code=spec["code"],
                name_zh=spec["name_zh"],
                name_en=spec["name_en"],
                kind=spec["kind"],
                address_zh=spec["address_zh"],
                address_en=spec["address_en"],
                closes_on_public_holidays=spec["closes_on_public_holidays"],
                yearly_closures=spec.get("yearly_closures", []),
            )
        ).returning(Branch.id)
        branch_id = rows[0]["id"]
        await OpeningPeriod.insert(
            *[
                OpeningPeriod(branch=branch_id, weekday=weekday, opens=opens, closes=closes)
                for weekday, periods in spec["hours"].items()
                for opens, closes in periods
            ]
        )
        await Room.insert(
            *[
                Room(branch=branch_id, code=code, name_zh=zh, name_en=en, capacity=capacity, features=features)
                for code, zh, en, capacity, features in spec["rooms"]
            ]
        )
        if spec["closures"]:
            await CalendarException.insert(
                *[
                    CalendarException(branch=branch_id, day=day, is_open=False, reason_zh=zh, reason_en=en,
                                      created_by=ACTOR)
                    for day, zh, en in spec["closures"]
                ]
            )
        return True

    return await run_in_write_transaction(work)


async def _ensure_staff(staff: DemoStaff) -> bool:
    if await StaffMember.exists().where(StaffMember.username == staff.username):
        return False
    await accounts.create_staff(
        staff.username, staff.display_name, staff.password, staff.role, list(staff.branches), ACTOR,
        all_branches=staff.all_branches, password_hash=await _demo_hash(staff.password),
    )
    return True


async def _ensure_patron(patron: DemoPatron, today: dt.date) -> bool:
    if await Patron.exists().where(Patron.card_number == patron.card_number):
        return False
    await accounts.create_patron(
        accounts.NewPatron(
            card_number=patron.card_number,
            name=patron.name,
            pin=patron.pin,
            home_branch_code=patron.home_branch,
            category=patron.category,
            birth_date=patron.birth_date,
            language=patron.language,
            expires_on=patron.expires_on,
            guardian_card_number=patron.guardian,
        ),
        actor=ACTOR,
        today=today,
        pin_hash=await _demo_hash(patron.pin),
    )
    if patron.block_reason:
        await Patron.update({Patron.block_reason: patron.block_reason}).where(
            Patron.card_number == patron.card_number
        )
    return True


async def _ensure_book(isbn13: str, copies: list[tuple[str, int, int]], today: dt.date) -> bool:
    from library.catalog import service as catalog
    from library.catalog.metadata import LocalProvider
    from library.catalog.tables import Record

    if await Record.exists().where(Record.isbn13 == isbn13):
        return False
    metadata = await LocalProvider().lookup(isbn13) or {}
    uuid = await catalog.create_record(catalog.RecordInput(isbn=isbn13, **metadata), ACTOR, today)
    for branch, count, on_loan in copies:
        barcodes = await catalog.add_items(_NETWORK_ADMIN, uuid, catalog.NewCopies(
            branch_code=branch, count=count, shelf_location="邻乐空间" if branch == "ZX" else "少儿阅览室",
            item_type=metadata.get("format", "picture_book") if metadata.get("format") in ("picture_book",
                                                                                          "board_book") else "book",
            price_cents=3280, acquired_on=today - dt.timedelta(days=30)))
        for barcode in barcodes[:on_loan]:
            _lend_later.append((branch, barcode))
    return True


# (branch, barcode) of copies the demo lends once its rules exist, to these readers in turn.
_lend_later: list[tuple[str, str]] = []
BORROWERS = ["ZX10000001", "ZX10000002", "ZX10000001", "ZX10000003"]
# Rules of the demo network: the last-resort rule, children's own limit, reference copies
# stay in the library, and the smart study room lends picture books for three weeks.
RULES = [
    dict(name="全馆通用 / Network default"),
    dict(patron_category="child", name="少儿读者 / Children", max_loans=5, loan_days=21, renewal_days=21),
    dict(item_type="reference", name="工具书 / Reference", loanable=False, holds_allowed=False),
    dict(branch_code="ZX", item_type="picture_book", name="振兴绘本 / Zhenxing picture books", loan_days=21,
         renewal_days=14),
    dict(branch_code="ZX", patron_category="child", name="振兴少儿 / Zhenxing children", max_loans=5, loan_days=21,
         renewal_days=14),
]
HOLDS = [("9787539109619", "JX20000001", "JX")]


async def _ensure_activities(today: dt.date) -> bool:
    """A weekly picture-book club, a weaving class and a lecture at Zhenxing, from next week."""
    from library.activities.recurrence import expand
    from library.activities.service import EventInput, schedule_event
    from library.activities.tables import Event
    from library.branches.service import calendar_days

    if await Event.exists():
        return False
    from library.activities.challenge import ProgrammeInput, create_programme

    await create_programme(_NETWORK_ADMIN, ProgrammeInput(
        title_zh="寒假阅读挑战", title_en="Winter reading challenge", branch_code="ZX",
        starts_on=today, ends_on=today + dt.timedelta(days=90),
        goals=[{"min": 0, "max": 6, "goal": 5}, {"min": 7, "max": 12, "goal": 10}, {"min": 13, "max": 120, "goal": 8}],
        # No thresholds of its own: each child's badges at points of their goal (challenge.badge_thresholds).
        badges=[]))
    monday = today + dt.timedelta(days=7 - today.weekday())
    saturday, wednesday, friday = (monday + dt.timedelta(days=n) for n in (5, 2, 4))
    until = (monday + dt.timedelta(weeks=8)).strftime("%Y%m%d")
    opened = dt.datetime.combine(today, T(0, 0), tzinfo=dt.timezone.utc) - dt.timedelta(days=1)
    now = opened
    for data in (
        EventInput(branch_code="ZX", title_zh="周六绘本俱乐部", title_en="Saturday picture-book club",
                   kind="reading_club", first_start=dt.datetime.combine(saturday, T(10, 0)), duration_minutes=60,
                   capacity=25, room_code="KIDS", age_min=4, age_max=6, rrule=f"FREQ=WEEKLY;BYDAY=SA;UNTIL={until}",
                   host="周晓琳", registration_opens_at=opened,
                   description_zh="和小伙伴一起读绘本、做游戏。", description_en="Picture books and games together."),
        EventInput(branch_code="ZX", title_zh="亲子编织课", title_en="Weaving for families", kind="workshop",
                   first_start=dt.datetime.combine(wednesday, T(15, 0)), duration_minutes=90, capacity=12,
                   room_code="CRAFT", age_min=6, age_max=12, rrule=f"FREQ=WEEKLY;BYDAY=WE;UNTIL={until}",
                   registration_opens_at=opened, setup_minutes=15, teardown_minutes=15),
        EventInput(branch_code="ZX", title_zh="知识讲堂：给孩子选好书", title_en="Lecture: choosing books for children",
                   kind="lecture", first_start=dt.datetime.combine(friday, T(19, 0)), duration_minutes=90,
                   capacity=40, room_code="STUDY", registration_opens_at=opened),
    ):
        # Sessions that fall on a day the room is closed (New Year's break) are left out of the series.
        sessions = expand(data.first_start, dt.timedelta(minutes=data.duration_minutes), data.rrule, None)
        days = await calendar_days("ZX", sessions[0].start.date(), (sessions[-1].start.date() - sessions[0].start.date()).days + 1)
        closed = {day["day"] for day in days if not day["is_open"]}
        data.cancelled = [s.original_start for s in sessions if s.start.date() in closed]
        if len(data.cancelled) == len(sessions):
            continue
        await schedule_event(_NETWORK_ADMIN, data, now)
    return True


async def _ensure_rules() -> int:
    from library.loans import policy
    from library.loans.tables import CirculationRule

    created = 0
    for spec in RULES:
        data = policy.RuleInput(**spec)
        scope = policy.rules.scope_of(data.branch_code, data.patron_category, data.item_type)
        if not await CirculationRule.exists().where(CirculationRule.scope == scope):
            await policy.save_rule(_NETWORK_ADMIN, data)
            created += 1
    return created


async def _lend_demo_copies(today: dt.date) -> int:
    """Real loans, made sixteen days ago, so 'My account' and the desk have something to show."""
    from zoneinfo import ZoneInfo

    from library.catalog.tables import Record
    from library.loans import service as loans

    lent_at = dt.datetime.combine(today - dt.timedelta(days=16), T(10, 0), tzinfo=ZoneInfo("Asia/Shanghai"))
    for index, (branch, barcode) in enumerate(_lend_later):
        await loans.checkout(_NETWORK_ADMIN, branch, BORROWERS[index % len(BORROWERS)], barcode,
                             lent_at + dt.timedelta(minutes=index))
    for isbn13, card, pickup in HOLDS:
        record = await Record.select(Record.uuid).where(Record.isbn13 == isbn13).first()
        if record is not None:
            await loans.place_hold(_NETWORK_ADMIN, str(record["uuid"]), pickup, lent_at + dt.timedelta(days=2),
                                   card_number=card)
    lent = len(_lend_later)
    _lend_later.clear()
    return lent


async def load_demo(today: dt.date, progress: Callable[[str, bool], None] = lambda label, created: None,
                    books: bool = True) -> dict[str, int]:
    """Create what is missing; returns how many things were created and how many were there.

    `books=False` leaves the catalogue empty (tests that build their own catalogue).
    """
    counts = {"created": 0, "existing": 0}

    def note(label: str, created: bool) -> None:
        counts["created" if created else "existing"] += 1
        progress(label, created)

    for spec in BRANCHES:
        note(f"branch {spec['code']}", await _ensure_branch(spec))
    for staff in STAFF:
        note(f"staff {staff.username}", await _ensure_staff(staff))
    for patron in PATRONS:
        note(f"reader {patron.card_number}", await _ensure_patron(patron, today))
    note("circulation rules", bool(await _ensure_rules()))
    for isbn13, copies in BOOKS if books else []:
        note(f"book {isbn13}", await _ensure_book(isbn13, copies, today))
    if _lend_later:
        note("loans", bool(await _lend_demo_copies(today)))
    note("activities", await _ensure_activities(today))
    note("volunteer shifts", await ensure_demo_shifts(today))
    return counts
