"""Check-in at the door on a real database: the window around the session, a guardian's card
checking in the children registered with it, a second scan, a waitlisted child, two scans at once."""

import asyncio
import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import service
from library.activities.rules import CheckInWindow
from library.activities.service import EventInput, Refused
from library.activities.tables import Event, Registration
from library.branches.tables import AuditEntry, Branch
from library.demo import load_demo
from library.errors import InvalidInput, NotFound, NotPermitted
from tests.support import connection_pool

NOW = dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.timezone.utc)  # registration opens
STARTS = dt.datetime(2026, 7, 4, 2, 0, tzinfo=dt.timezone.utc)  # Saturday 4 July, 10:00 in Jiaxing
DOOR = STARTS - dt.timedelta(minutes=15)  # 09:45, families arriving
WINDOW = CheckInWindow(opens_before=dt.timedelta(minutes=60), closes_after=dt.timedelta(minutes=30))
MOTHER, XIAOMI, XIAOYU, STRANGER = "ZX10000001", "ZX10000002", "ZX10000003", "JX20000001"


def librarian_of(branch_id: int) -> Principal:
    return Principal(kind="staff", id=0, uuid="t", name="周晓琳", language="zh_CN", role="librarian",
                     branch_ids=frozenset({branch_id}))


async def reader(card: str) -> Principal:
    return await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == card).first())["id"])


@pytest.fixture
async def zx():
    await load_demo(dt.date(2026, 6, 20), books=False)
    await Event.delete(force=True)  # the demo's own programme; these tests plan their own
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    return librarian_of(branch["id"])


async def story_hour(librarian: Principal, **changes) -> str:
    """A one-off family story hour, for every age, on Saturday 4 July 10:00–11:00."""
    values = dict(branch_code="ZX", title_zh="亲子故事会", title_en="Family story hour", kind="reading_club",
                  first_start=dt.datetime(2026, 7, 4, 10, 0), duration_minutes=60, capacity=25, room_code="KIDS",
                  registration_opens_at=NOW)
    values.update(changes)
    event = await service.schedule_event(librarian, EventInput(**values), NOW)
    return str((await service.occurrences_of(event))[0]["uuid"])


async def statuses(session: str) -> dict[str, str]:
    return {row["card_number"]: row["status"] for row in await service.waitlist(session)}


async def test_a_reader_s_card_checks_in_their_seat_within_the_window(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    done = await service.check_in(zx, session, " zx1000 0002 ", DOOR, WINDOW)  # a scanner's spaces, lower case
    assert [p["card_number"] for p in done.checked_in] == [XIAOMI] and done.holder == "李小米"
    assert done.checked_in[0]["checked_in_at"] == dt.datetime(2026, 7, 4, 9, 45)  # local wall clock
    assert done.already == [] and done.turned_away == []
    row = await Registration.select(Registration.status, Registration.checked_in_at).first()
    assert row["status"] == "attended" and row["checked_in_at"] == DOOR
    entry = await AuditEntry.select().where(AuditEntry.action == "session.checked_in").output(
        load_json=True).first()
    assert entry["subject"] == f"session:{session}" and len(entry["detail"]["registrations"]) == 1


async def test_eleven_days_early_or_after_closing_the_card_is_refused_and_nothing_is_written(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    with pytest.raises(Refused) as early:
        await service.check_in(zx, session, XIAOMI, STARTS - dt.timedelta(days=11, hours=3), WINDOW)
    [reason] = early.value.refusals
    assert reason.code == "check_in_not_open" and reason.params == {"opens_at": "2026-07-04 09:00", "minutes": 60}
    assert "2026-07-04 09:00" in early.value.message()
    with pytest.raises(Refused) as late:
        await service.check_in(zx, session, XIAOMI, STARTS + dt.timedelta(hours=2), WINDOW)
    [reason] = late.value.refusals
    assert reason.code == "check_in_closed" and reason.params == {"closed_at": "2026-07-04 11:30", "minutes": 30}
    assert await statuses(session) == {XIAOMI: "confirmed"}
    assert await AuditEntry.count().where(AuditEntry.action == "session.checked_in") == 0
    # The edges of the window are inside it.
    done = await service.check_in(zx, session, XIAOMI, STARTS - dt.timedelta(minutes=60), WINDOW)
    assert [p["card_number"] for p in done.checked_in] == [XIAOMI]


async def test_a_guardian_s_card_checks_in_herself_and_every_child_registered_with_it(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [MOTHER, XIAOMI, XIAOYU], NOW)
    await service.register(await reader(STRANGER), session, [STRANGER], NOW)
    done = await service.check_in(zx, session, MOTHER, DOOR, WINDOW)
    assert [p["card_number"] for p in done.checked_in] == [MOTHER, XIAOMI, XIAOYU]  # the card holder first
    assert [p["name"] for p in done.checked_in] == ["王芳", "李小米", "李小宇"]
    assert await statuses(session) == {MOTHER: "attended", XIAOMI: "attended", XIAOYU: "attended",
                                       STRANGER: "confirmed"}  # another family is not touched


async def test_a_guardian_who_is_not_registered_brings_her_registered_children_in(zx):
    session = await story_hour(zx)
    other = await story_hour(zx, first_start=dt.datetime(2026, 7, 4, 14, 0), title_zh="午后故事会")
    mother = await reader(MOTHER)
    await service.register(mother, session, [XIAOMI], NOW)
    await service.register(mother, other, [XIAOYU], NOW)  # the little one comes in the afternoon
    done = await service.check_in(zx, session, MOTHER, DOOR, WINDOW)
    assert [p["card_number"] for p in done.checked_in] == [XIAOMI] and done.turned_away == []
    assert await statuses(other) == {XIAOYU: "confirmed"}


async def test_scanning_twice_says_already_checked_in_and_keeps_the_first_time(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI, XIAOYU], NOW)
    await service.check_in(zx, session, XIAOMI, DOOR, WINDOW)
    again = await service.check_in(zx, session, XIAOMI, DOOR + dt.timedelta(minutes=5), WINDOW)
    assert again.checked_in == [] and [p["card_number"] for p in again.already] == [XIAOMI]
    assert again.already[0]["checked_in_at"] == dt.datetime(2026, 7, 4, 9, 45)
    # The mother's card then brings in the one not yet in, and says the other is in already.
    family = await service.check_in(zx, session, MOTHER, DOOR + dt.timedelta(minutes=6), WINDOW)
    assert [p["card_number"] for p in family.checked_in] == [XIAOYU]
    assert [p["card_number"] for p in family.already] == [XIAOMI]
    rows = await Registration.select(Registration.checked_in_at).where(Registration.patron.card_number == XIAOMI)
    assert [row["checked_in_at"] for row in rows] == [DOOR]


async def test_a_card_of_someone_not_registered_is_refused_clearly(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    with pytest.raises(Refused) as stranger:
        await service.check_in(zx, session, STRANGER, DOOR, WINDOW)
    assert [(r.code, r.params) for r in stranger.value.refusals] == [("not_registered", {"name": "张建国"})]
    other = await story_hour(zx, first_start=dt.datetime(2026, 7, 4, 14, 0), title_zh="午后故事会")
    with pytest.raises(Refused) as family:
        await service.check_in(zx, other, MOTHER, STARTS + dt.timedelta(hours=4), WINDOW)
    assert [r.code for r in family.value.refusals] == ["not_registered_family"]
    with pytest.raises(NotFound) as unknown:
        await service.check_in(zx, session, "ZX99999999", DOOR, WINDOW)
    assert unknown.value.code == "patron_not_found"
    with pytest.raises(InvalidInput):
        await service.check_in(zx, session, "   ", DOOR, WINDOW)
    assert await statuses(session) == {XIAOMI: "confirmed"}


async def test_a_waitlisted_child_is_refused_with_the_reason_and_her_sister_comes_in(zx):
    session = await story_hour(zx, capacity=1)
    await service.register(await reader(MOTHER), session, [XIAOMI, XIAOYU], NOW)
    assert await statuses(session) == {XIAOMI: "confirmed", XIAOYU: "waitlisted"}
    with pytest.raises(Refused) as waiting:
        await service.check_in(zx, session, XIAOYU, DOOR, WINDOW)
    assert [(r.code, r.params) for r in waiting.value.refusals] == [("check_in_waitlisted", {"name": "李小宇"})]
    done = await service.check_in(zx, session, MOTHER, DOOR, WINDOW)
    assert [p["card_number"] for p in done.checked_in] == [XIAOMI]
    assert [(r.code, r.params) for r in done.turned_away] == [("check_in_waitlisted", {"name": "李小宇"})]
    assert await statuses(session) == {XIAOMI: "attended", XIAOYU: "waitlisted"}


async def test_an_offered_seat_is_taken_by_coming_to_the_door(zx):
    session = await story_hour(zx, capacity=1, offer_minutes=30)
    mother = await reader(MOTHER)
    [first, _] = await service.register(mother, session, [XIAOMI, XIAOYU], NOW)
    await service.cancel_registration(mother, first.registration, DOOR - dt.timedelta(minutes=10))
    assert (await statuses(session))[XIAOYU] == "offered"
    done = await service.check_in(zx, session, XIAOYU, DOOR, WINDOW)
    assert [p["card_number"] for p in done.checked_in] == [XIAOYU]
    row = await Registration.select(Registration.offer_expires_at, Registration.confirmed_at).where(
        Registration.status == "attended").first()
    assert row["offer_expires_at"] is None and row["confirmed_at"] == DOOR
    assert await service.lapse_offers(DOOR + dt.timedelta(hours=1)) == 0  # the seat is not lapsed under them


async def test_a_cancelled_session_takes_no_cards(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    await service.cancel_session(zx, session, NOW)
    with pytest.raises(Refused) as refused:
        await service.check_in(zx, session, XIAOMI, DOOR, WINDOW)
    assert "session_cancelled" in [r.code for r in refused.value.refusals]


async def test_only_staff_of_the_branch_check_in(zx):
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    with pytest.raises(NotPermitted) as patron:
        await service.check_in(await reader(MOTHER), session, XIAOMI, DOOR, WINDOW)
    assert patron.value.code == "staff_only"
    jx = await Branch.select(Branch.id).where(Branch.code == "JX").first()
    with pytest.raises(NotPermitted) as elsewhere:
        await service.check_in(librarian_of(jx["id"]), session, XIAOMI, DOOR, WINDOW)
    assert elsewhere.value.code == "not_your_branch"
    with pytest.raises(NotFound):
        await service.check_in(zx, "not-a-session", XIAOMI, DOOR, WINDOW)
    assert await statuses(session) == {XIAOMI: "confirmed"}


async def test_two_doors_scanning_one_family_at_once_check_each_child_in_once(zx):
    """The conditional UPDATE decides; on SQLite the scans queue on the one write lock, so it is
    PostgreSQL's run that would catch a read-then-write here."""
    session = await story_hour(zx)
    await service.register(await reader(MOTHER), session, [MOTHER, XIAOMI, XIAOYU], NOW)
    async with connection_pool():
        scans = await asyncio.gather(*[service.check_in(zx, session, card, DOOR, WINDOW)
                                       for card in (MOTHER, XIAOMI, MOTHER, XIAOYU, MOTHER, XIAOMI)])
    came_in = [p["card_number"] for scan in scans for p in scan.checked_in]
    assert sorted(came_in) == [MOTHER, XIAOMI, XIAOYU]  # each once; the other scans say "already"
    assert all(scan.checked_in or scan.already for scan in scans)
    assert await statuses(session) == {MOTHER: "attended", XIAOMI: "attended", XIAOYU: "attended"}
    entries = await AuditEntry.select(AuditEntry.detail).where(
        AuditEntry.action == "session.checked_in").output(load_json=True)
    assert sum(len(entry["detail"]["registrations"]) for entry in entries) == 3
