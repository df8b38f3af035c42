"""A whole series or programme in one step (issue 18, part 3), and what families are told
(part 2): on a real database, SQLite and PostgreSQL."""

import asyncio
import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import notices as activity_notices
from library.activities import service
from library.activities.challenge import ProgrammeInput, create_programme
from library.activities.service import Refused
from library.activities.tables import Event, Registration
from library.branches.tables import Branch
from library.demo import load_demo
from library.errors import InvalidInput, NotPermitted
from library.notices import messages
from library.notices import service as choices
from library.notices.tables import Notice
from tests.integration.test_activities_service import NOW, _readers, club, connection_pool, librarian_of, sessions_of

MOTHER, XIAOMI, XIAOYU = "ZX10000001", "ZX10000002", "ZX10000003"


@pytest.fixture
async def zx():
    """The demo's readers and families; no events (each test plans its own). A librarian of ZX."""
    await load_demo(dt.date(2026, 6, 20), books=False)
    await Event.delete(force=True)
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    return librarian_of(branch["id"])


async def reader(card: str) -> Principal:
    row = await Patron.select(Patron.id).where(Patron.card_number == card).first()
    return await load_principal("patron", row["id"])


async def with_email(card: str, email: str, language: str = "zh_CN") -> None:
    await Patron.update({Patron.email: email, Patron.language: language}).where(Patron.card_number == card)


def open_series(**changes):
    """Eight Saturday mornings, any age, registration open."""
    values = dict(title_zh="暑期绘本营", title_en="Summer picture-book camp", age_min=None, age_max=None, moved={},
                  rrule="FREQ=WEEKLY;BYDAY=SA;COUNT=8")
    values.update(changes)
    return club(**values)


async def statuses(session: str) -> list[tuple[str, str, int]]:
    return [(row["card_number"], row["status"], row["arrival"]) for row in await service.waitlist(session)]


async def test_a_mother_registers_two_children_for_all_eight_sessions_and_is_told_once(zx):
    event = await service.schedule_event(zx, open_series(), NOW)
    await with_email(MOTHER, "wangfang@example.org")
    mother = await reader(MOTHER)
    preview = await service.preview_programme(mother, "series", event, [XIAOMI, XIAOYU], NOW)
    assert len(preview.sessions) == 8 and {line.outcome for line in preview.lines} == {"seat"}
    assert await Registration.count() == 0, "a preview writes nothing"

    done = await service.register_programme(mother, "series", event, [XIAOMI, XIAOYU], None, NOW)
    assert [line.outcome for line in done.lines] == ["seat"] * 16
    for session in await sessions_of(event):
        assert [row[:2] for row in await statuses(str(session["uuid"]))] == [(XIAOMI, "confirmed"),
                                                                              (XIAOYU, "confirmed")]
    [notice] = await Notice.select(Notice.kind, Notice.to_address, Notice.subject, Notice.body).where(
        Notice.kind == "programme_registered")
    assert notice["to_address"] == "wangfang@example.org" and "暑期绘本营" in notice["subject"]
    assert notice["body"].count("李小米") == 8 and notice["body"].count("李小宇") == 8


async def test_a_full_session_is_a_waitlist_place_the_others_are_seats(zx):
    """Per session, not all or nothing: the preview says so before, the registration does it."""
    event = await service.schedule_event(zx, open_series(capacity=1), NOW)
    sessions = [str(s["uuid"]) for s in await sessions_of(event)]
    [neighbour] = await _readers(1)
    await service.register(neighbour, sessions[2], ["ZX90000000"], NOW)  # the third session's only seat
    mother = await reader(MOTHER)
    preview = await service.preview_programme(mother, "series", event, [XIAOMI], NOW)
    assert [(line.outcome, line.position) for line in preview.lines][:4] == [
        ("seat", None), ("seat", None), ("waitlist", 1), ("seat", None)]
    done = await service.register_programme(mother, "series", event, [XIAOMI], None, NOW)
    assert [line.outcome for line in done.lines] == [line.outcome for line in preview.lines]
    assert await statuses(sessions[2]) == [("ZX90000000", "confirmed", 1), (XIAOMI, "waitlisted", 2)]


async def test_sessions_left_out_in_the_preview_are_not_registered_and_old_ones_are_kept(zx):
    event = await service.schedule_event(zx, open_series(), NOW)
    sessions = [str(s["uuid"]) for s in await sessions_of(event)]
    mother = await reader(MOTHER)
    await service.register(mother, sessions[0], [XIAOMI], NOW)
    done = await service.register_programme(mother, "series", event, [XIAOMI], sessions[:3], NOW)
    assert [line.outcome for line in done.lines] == ["already", "seat", "seat"]
    assert await Registration.count() == 3


async def test_one_refusal_registers_nobody_and_names_every_reason(zx):
    """The youngest is too young for the age range: all or nothing for refusals."""
    event = await service.schedule_event(zx, open_series(age_min=4, age_max=6), NOW)
    mother = await reader(MOTHER)
    with pytest.raises(Refused) as refused:
        await service.register_programme(mother, "series", event, [XIAOMI, XIAOYU], None, NOW)
    assert [r.code for r in refused.value.refusals] == ["too_young"]
    assert await Registration.count() == 0
    done = await service.register_programme(mother, "series", event, [XIAOMI], None, NOW)
    assert len(done.lines) == 8


async def test_the_programme_s_per_child_limit_counts_the_sessions_asked_for_here(zx):
    programme = await create_programme(zx, ProgrammeInput(branch_code="ZX", title_zh="暑期阅读",
                                                          starts_on=dt.date(2026, 7, 1), ends_on=dt.date(2026, 8, 31),
                                                          per_child_session_limit=3))
    event = await service.schedule_event(zx, open_series(programme_uuid=programme), NOW)
    mother = await reader(MOTHER)
    preview = await service.preview_programme(mother, "programme", programme, [XIAOMI], NOW)
    assert [line.outcome for line in preview.lines] == ["seat"] * 3 + ["refused"] * 5
    with pytest.raises(Refused) as refused:
        await service.register_programme(mother, "programme", programme, [XIAOMI], None, NOW)
    assert {r.code for r in refused.value.refusals} == {"session_limit"}
    sessions = [str(s["uuid"]) for s in await sessions_of(event)]
    done = await service.register_programme(mother, "programme", programme, [XIAOMI], sessions[:3], NOW)
    assert [line.outcome for line in done.lines] == ["seat"] * 3


async def test_a_stranger_cannot_register_someone_else_s_child(zx):
    event = await service.schedule_event(zx, open_series(), NOW)
    stranger = await reader("JX20000001")
    for action in (service.preview_programme(stranger, "series", event, [XIAOMI], NOW),
                   service.register_programme(stranger, "series", event, [XIAOMI], None, NOW)):
        with pytest.raises(NotPermitted):
            await action
    assert await Registration.count() == 0


async def test_a_forged_session_list_registers_nothing(zx):
    """A broken or hostile form names a session of another event, or one already past."""
    event = await service.schedule_event(zx, open_series(), NOW)
    other = await service.schedule_event(zx, open_series(title_zh="手工课", first_start=dt.datetime(2026, 7, 4, 14, 0)),
                                         NOW)
    sessions = [str(s["uuid"]) for s in await sessions_of(event)]
    foreign = str((await sessions_of(other))[0]["uuid"])
    mother = await reader(MOTHER)
    with pytest.raises(InvalidInput) as forged:
        await service.register_programme(mother, "series", event, [XIAOMI], [sessions[0], foreign], NOW)
    assert forged.value.code == "session_not_in_programme"
    with pytest.raises(InvalidInput):
        await service.register_programme(mother, "series", event, [XIAOMI], ["not-a-uuid"], NOW)
    with pytest.raises(InvalidInput):
        await service.register_programme(mother, "series", event, [XIAOMI], [], NOW)
    later = NOW + dt.timedelta(days=20)  # the first two Saturdays are past by then
    with pytest.raises(InvalidInput):
        await service.register_programme(mother, "series", event, [XIAOMI], [sessions[0]], later)
    assert await Registration.count() == 0


async def test_sixty_families_at_once_never_overfill_a_session_and_queue_in_one_order(zx):
    """Every family's transaction takes the eight sessions in the same order: seats never above
    capacity in any of them, and each family holds the same place in every session's queue."""
    event = await service.schedule_event(zx, open_series(capacity=10), NOW)
    families = await _readers(60)
    async with connection_pool():
        results = await asyncio.gather(*[service.register_programme(f, "series", event, [f"ZX9{n:07d}"], None, NOW)
                                         for n, f in enumerate(families)], return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)][:3]
    orders = []
    for session in await sessions_of(event):
        assert (session["confirmed"], session["waitlisted"]) == (10, 50)
        rows = await statuses(str(session["uuid"]))
        assert [arrival for _, _, arrival in rows] == list(range(1, 61))
        assert {arrival for _, status, arrival in rows if status == "confirmed"} == set(range(1, 11))
        orders.append([card for card, _, _ in rows])
    assert all(order == orders[0] for order in orders)


# --- what families are told ----------------------------------------------------------------


async def test_registration_and_waitlist_are_told_to_the_guardian_in_her_language(zx):
    event = await service.schedule_event(zx, open_series(capacity=1, rrule=None), NOW)
    [session] = [str(s["uuid"]) for s in await sessions_of(event)]
    await with_email(MOTHER, "wangfang@example.org")
    await with_email("XZ30000001", "emma@example.org", language="en")
    await service.register(await reader(MOTHER), session, [XIAOMI], NOW)
    await Patron.update({Patron.expires_on: dt.date(2030, 1, 1)}).where(Patron.card_number == "XZ30000001")
    await service.register(await reader("XZ30000001"), session, ["XZ30000001"], NOW)
    rows = {row["kind"]: row for row in await Notice.select(Notice.kind, Notice.to_address, Notice.subject,
                                                            Notice.body)}
    assert rows["registration_confirmed"]["to_address"] == "wangfang@example.org"
    assert "李小米" in rows["registration_confirmed"]["body"] and "暑期绘本营" in rows["registration_confirmed"]["subject"]
    waiting = rows["registration_waitlisted"]
    assert waiting["to_address"] == "emma@example.org" and "Summer picture-book camp" in waiting["subject"]
    assert "number 1" in waiting["body"]


async def test_a_moved_and_a_cancelled_session_tell_every_family_once(zx):
    event = await service.schedule_event(zx, open_series(rrule="FREQ=WEEKLY;BYDAY=SA;COUNT=2"), NOW)
    first, second = [str(s["uuid"]) for s in await sessions_of(event)]
    await with_email(MOTHER, "wangfang@example.org")
    await service.register_programme(await reader(MOTHER), "series", event, [XIAOMI, XIAOYU], None, NOW)
    await service.move_session(zx, first, dt.datetime(2026, 7, 4, 10, 0), dt.datetime(2026, 7, 4, 11, 0), None, NOW,
                               capacity=20)  # more seats, same time and room: no news to anyone
    assert await Notice.count().where(Notice.kind == "session_moved") == 0
    await service.move_session(zx, first, dt.datetime(2026, 7, 4, 15, 0), dt.datetime(2026, 7, 4, 16, 0), None, NOW)
    await service.cancel_session(zx, second, NOW)
    kinds = [row["kind"] for row in await Notice.select(Notice.kind).order_by(Notice.id)]
    assert kinds.count("session_moved") == 2 and kinds.count("session_cancelled") == 2  # one per child
    moved = await Notice.select(Notice.body).where(Notice.kind == "session_moved").first()
    assert "15:00" in moved["body"]


async def test_the_day_before_a_reminder_comes_once_and_not_to_who_turned_it_off(zx):
    event = await service.schedule_event(zx, open_series(rrule=None, capacity=5), NOW)
    [session] = [str(s["uuid"]) for s in await sessions_of(event)]
    await with_email(MOTHER, "wangfang@example.org")
    [neighbour] = await _readers(1)
    mother = await reader(MOTHER)
    await service.register(mother, session, [XIAOMI], NOW)
    await service.register(neighbour, session, ["ZX90000000"], NOW)
    await choices.set_choices(neighbour, {m.kind for m in messages.choosable()}
                              - {"session_reminder"})
    two_days_before = dt.datetime(2026, 7, 2, 2, 0, tzinfo=dt.timezone.utc)  # Thursday 10:00 in Jiaxing
    day_before = dt.datetime(2026, 7, 3, 2, 0, tzinfo=dt.timezone.utc)
    settings = None
    assert (await activity_notices.queue_session_reminders(two_days_before, settings))["session_reminder"] == 0
    assert (await activity_notices.queue_session_reminders(day_before, settings))["session_reminder"] == 1
    assert (await activity_notices.queue_session_reminders(day_before, settings))["session_reminder"] == 0
    [reminder] = await Notice.select(Notice.to_address, Notice.body).where(Notice.kind == "session_reminder")
    assert reminder["to_address"] == "wangfang@example.org" and "李小米" in reminder["body"]


async def test_a_reader_who_turned_a_kind_off_is_not_told_of_it(zx):
    event = await service.schedule_event(zx, open_series(rrule=None), NOW)
    [session] = [str(s["uuid"]) for s in await sessions_of(event)]
    await with_email(MOTHER, "wangfang@example.org")
    mother = await reader(MOTHER)
    await choices.set_choices(mother, set())
    assert {c["kind"]: c["receive"] for c in await choices.choices_of(mother)}["registration_confirmed"] is False
    await service.register(mother, session, [XIAOMI], NOW)
    assert await Notice.count() == 0
    with pytest.raises(InvalidInput):  # a forged form's unknown kind: nothing saved
        await choices.set_choices(mother, {"registration_confirmed", "overdue"})
    assert {c["receive"] for c in await choices.choices_of(mother)} == {False}
