"""The demo plans shifts at the community branch, and is safe to run again."""

from library.accounts.tables import StaffMember
from library.volunteers.tables import Shift, ShiftSignUp
from library.demo import load_demo
from tests.volunteers.conftest import TODAY


async def test_the_demo_plans_shifts_once_and_signs_up_its_volunteer_if_there_is_one():
    await load_demo(TODAY, books=False)
    planned = await Shift.count()
    assert planned >= 3
    assert await Shift.exists().where(Shift.kind == "activity_helper")
    has_volunteer = await StaffMember.exists().where(StaffMember.role == "volunteer")
    assert (await ShiftSignUp.count() > 0) == has_volunteer
    await load_demo(TODAY, books=False)
    assert await Shift.count() == planned
