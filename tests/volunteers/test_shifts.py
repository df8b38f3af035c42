"""Volunteer shifts on a real database (SQLite and PostgreSQL): planning, sign-up within the head
count even when everyone presses at once, withdrawal, check-in and out, corrections, hours."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from library.activities.tables import Occurrence
from library.branches.tables import AuditEntry
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from library.volunteers import service
from library.volunteers.service import ShiftInput
from library.volunteers.tables import Shift, ShiftSignUp, VolunteerProfile
from tests.support import connection_pool
from library.branches.tables import Branch
from tests.volunteers.conftest import NOW, librarian, make_volunteer

AFTERNOON = dt.datetime(2026, 6, 22, 15, 30)  # a Monday, after school, on the branch's clock


def after_school(**changes) -> ShiftInput:
    values = dict(branch_code="ZX", kind="after_school", local_start=AFTERNOON,
                  local_end=AFTERNOON + dt.timedelta(hours=2), needed=2, note="三楼自习室")
    values.update(changes)
    return ShiftInput(**values)


async def test_a_shift_is_stored_on_the_branch_clock_and_in_utc(zx):
    audited = await AuditEntry.count().where(AuditEntry.action == "volunteers.plan_shift")
    shift = await service.plan_shift(zx, after_school(), NOW)
    row = await Shift.select().where(Shift.uuid == shift).first()
    assert row["local_start"] == AFTERNOON
    assert row["starts_at"] == dt.datetime(2026, 6, 22, 7, 30, tzinfo=dt.timezone.utc)
    assert await AuditEntry.count().where(AuditEntry.action == "volunteers.plan_shift") == audited + 1


@pytest.mark.parametrize("changes, code", [
    ({"kind": "cleaning"}, "shift_bad_kind"),
    ({"local_end": AFTERNOON}, "shift_bad_times"),
    ({"local_end": AFTERNOON + dt.timedelta(days=1)}, "shift_bad_times"),
    ({"needed": 0}, "shift_bad_head_count"),
    ({"needed": 500}, "shift_bad_head_count"),
])
async def test_a_shift_that_makes_no_sense_is_refused_and_nothing_is_written(zx, changes, code):
    with pytest.raises(InvalidInput) as refused:
        await service.plan_shift(zx, after_school(**changes), NOW)
    assert refused.value.code == code
    assert await Shift.count() == 0


async def test_a_volunteer_cannot_plan_shifts(zx):
    volunteer = await make_volunteer("xiaoming", "志愿者小明")
    with pytest.raises(NotPermitted):
        await service.plan_shift(volunteer, after_school(), NOW)


async def test_an_activity_helper_shift_points_only_at_a_session_of_its_branch(zx):
    """The adversary: a librarian of another branch pointing her shift at the community branch's session."""
    here = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.branch.code == "ZX").first()
    shift = await service.plan_shift(zx, after_school(kind="activity_helper", occurrence_uuid=str(here["uuid"])), NOW)
    assert (await Shift.select(Shift.occurrence).where(Shift.uuid == shift).first())["occurrence"] is not None
    xz = await Branch.select(Branch.id).where(Branch.code == "XZ").first()
    with pytest.raises(InvalidInput) as refused:
        await service.plan_shift(librarian(xz["id"]), after_school(branch_code="XZ", kind="activity_helper",
                                                                   occurrence_uuid=str(here["uuid"])), NOW)
    assert refused.value.code == "shift_wrong_session"
    assert await Shift.count() == 1


async def test_thirty_volunteers_at_once_for_three_places(zx):
    """The adversary: thirty volunteers pressing "sign up" in the same second for an after-school
    shift that needs three. The database hands out exactly three places."""
    shift = await service.plan_shift(zx, after_school(needed=3), NOW)
    people = [await make_volunteer(f"v{n:02d}", f"志愿者{n:02d}") for n in range(30)]
    async with connection_pool():
        results = await asyncio.gather(*[service.sign_up(person, shift, NOW) for person in people],
                                       return_exceptions=True)
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if not isinstance(r, str)]
    assert len(won) == 3
    assert all(isinstance(r, Conflict) and r.code == "shift_full" for r in lost), lost[:3]
    row = await Shift.select(Shift.taken, Shift.needed).where(Shift.uuid == shift).first()
    assert row["taken"] == 3 == await ShiftSignUp.count()


async def test_the_database_refuses_more_volunteers_than_needed_whatever_the_code_says(zx):
    shift = await service.plan_shift(zx, after_school(needed=1), NOW)
    with pytest.raises(Exception):
        await Shift.update({Shift.taken: 2}).where(Shift.uuid == shift)
    assert (await Shift.select(Shift.taken).where(Shift.uuid == shift).first())["taken"] == 0


async def test_the_same_volunteer_twice_is_one_place(zx):
    shift = await service.plan_shift(zx, after_school(), NOW)
    volunteer = await make_volunteer("xiaoming", "志愿者小明")
    results = await asyncio.gather(*[service.sign_up(volunteer, shift, NOW) for _ in range(5)],
                                   return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 1
    assert all(r.code == "shift_already_signed_up" for r in results if not isinstance(r, str))
    assert (await Shift.select(Shift.taken).where(Shift.uuid == shift).first())["taken"] == 1


async def test_withdrawing_frees_the_place_and_closes_when_the_shift_starts(zx):
    shift = await service.plan_shift(zx, after_school(needed=1), NOW)
    first = await make_volunteer("a", "甲")
    second = await make_volunteer("b", "乙")
    mine = await service.sign_up(first, shift, NOW)
    with pytest.raises(Conflict):
        await service.sign_up(second, shift, NOW)
    await service.withdraw(first, mine, NOW)
    await service.sign_up(second, shift, NOW)
    started = dt.datetime(2026, 6, 22, 7, 31, tzinfo=dt.timezone.utc)
    with pytest.raises(Conflict) as refused:
        await service.sign_up(first, shift, started)
    assert refused.value.code == "shift_started"


async def test_a_volunteer_acts_on_their_own_sign_up_only(zx):
    """The adversary: a volunteer who copied another's check-out link."""
    shift = await service.plan_shift(zx, after_school(), NOW)
    first = await make_volunteer("a", "甲")
    other = await make_volunteer("b", "乙")
    theirs = await service.sign_up(first, shift, NOW)
    for act in (service.withdraw, service.check_in, service.check_out):
        with pytest.raises(NotPermitted):
            await act(other, theirs, dt.datetime(2026, 6, 22, 7, 30, tzinfo=dt.timezone.utc))
    with pytest.raises(NotPermitted):
        await service.correct_times(first, theirs, AFTERNOON, AFTERNOON + dt.timedelta(hours=5), NOW)
    with pytest.raises(NotPermitted):  # signing somebody else up is the staff's
        await service.sign_up(other, shift, NOW, username="a")
    with pytest.raises(NotPermitted):  # nor does a volunteer see everyone's hours
        await service.branch_hours(other, "ZX", dt.date(2026, 6, 1), dt.date(2026, 6, 30))


async def test_a_librarian_of_another_branch_cannot_touch_the_shift(zx):
    shift = await service.plan_shift(zx, after_school(), NOW)
    volunteer = await make_volunteer("a", "甲")
    mine = await service.sign_up(volunteer, shift, NOW)
    stranger = librarian(zx_other := max(zx.branch_ids) + 999)
    assert zx_other not in zx.branch_ids
    with pytest.raises(NotPermitted):
        await service.withdraw(stranger, mine, NOW)


async def test_check_in_and_out_give_the_hours_and_staff_correct_a_forgotten_check_out(zx):
    shift = await service.plan_shift(zx, after_school(), NOW)
    volunteer = await make_volunteer("xiaoming", "志愿者小明")
    mine = await service.sign_up(volunteer, shift, NOW)
    too_early = dt.datetime(2026, 6, 22, 6, 0, tzinfo=dt.timezone.utc)  # 14:00, 90 minutes before
    with pytest.raises(Conflict) as refused:
        await service.check_in(volunteer, mine, too_early)
    assert refused.value.code == "shift_check_in_closed"
    with pytest.raises(Conflict):
        await service.check_out(volunteer, mine, too_early)
    came = dt.datetime(2026, 6, 22, 7, 20, tzinfo=dt.timezone.utc)  # 15:20
    await service.check_in(volunteer, mine, came)
    with pytest.raises(Conflict) as refused:
        await service.check_in(volunteer, mine, came + dt.timedelta(minutes=1))
    assert refused.value.code == "shift_checked_in_already"
    with pytest.raises(Conflict):
        await service.withdraw(volunteer, mine, came)
    await service.check_out(volunteer, mine, came + dt.timedelta(hours=2, minutes=10))  # 17:30
    mine_hours = await service.volunteer_hours(volunteer, None, dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    assert mine_hours["total_hours"] == 2.2 and mine_hours["shifts"] == 1  # 130 minutes
    # A staff correction: he stayed until 18:00.
    await service.correct_times(zx, mine, dt.datetime(2026, 6, 22, 15, 20), dt.datetime(2026, 6, 22, 18, 0), NOW)
    report = await service.branch_hours(zx, "ZX", dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    assert [(line["name"], line["month"], line["hours"]) for line in report["lines"]] == [("志愿者小明", "2026-06", 2.7)]
    with pytest.raises(InvalidInput) as refused:
        await service.correct_times(zx, mine, dt.datetime(2026, 6, 22, 15, 20), dt.datetime(2026, 6, 22, 15, 0), NOW)
    assert refused.value.code == "shift_bad_correction"
    assert (await ShiftSignUp.select(ShiftSignUp.corrected_by).first())["corrected_by"] == zx.audit_name
    assert await service.hours_total([min(zx.branch_ids)], dt.date(2026, 1, 1), dt.date(2026, 12, 31)) == 2.7
    assert await service.hours_total([min(zx.branch_ids)], dt.date(2027, 1, 1), dt.date(2027, 12, 31)) == 0


async def test_the_helpers_of_a_session_are_the_volunteers_of_its_helper_shifts(zx):
    session = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.branch.code == "ZX").first()
    assert session is not None
    helper = await service.plan_shift(zx, after_school(kind="activity_helper", occurrence_uuid=str(session["uuid"])),
                                      NOW)
    desk = await service.plan_shift(zx, after_school(kind="desk"), NOW)
    first = await make_volunteer("a", "甲")
    second = await make_volunteer("b", "乙")
    await service.sign_up(first, helper, NOW)
    await service.sign_up(second, desk, NOW)
    assert await service.helpers_of(str(session["uuid"])) == ["甲"]
    assert await service.helpers_of("not-a-uuid") == []


async def test_a_volunteer_is_linked_to_the_reader_they_are_and_nothing_of_the_reader_is_copied(zx):
    await make_volunteer("wangfang", "王芳")
    await service.link_reader(zx, "ZX", "wangfang", "ZX10000001", NOW)
    people = {p["username"]: p["card_number"] for p in await service.volunteers_of(zx, "ZX")}
    assert people["wangfang"] == "ZX10000001"
    assert {c._meta.name for c in VolunteerProfile._meta.columns} == {"id", "uuid", "staff", "patron", "created_at",
                                                                      "updated_at"}
    with pytest.raises(NotFound):
        await service.link_reader(zx, "ZX", "wangfang", "ZX99999999", NOW)
    await service.link_reader(zx, "ZX", "wangfang", "", NOW)
    assert {p["username"]: p["card_number"] for p in await service.volunteers_of(zx, "ZX")}["wangfang"] is None
