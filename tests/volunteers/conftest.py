import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.accounts.tables import StaffBranch, StaffMember
from library.branches.tables import Branch
from library.demo import load_demo
from library.volunteers.tables import Shift, ShiftSignUp
from tests.support import empty_all_tables

TODAY = dt.date(2026, 6, 20)
# 2026-06-20 09:00 at the branch (Asia/Shanghai)
NOW = dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
async def fresh_data():
    await empty_all_tables()
    yield


async def make_volunteer(username: str, name: str, branch_code: str = "ZX") -> Principal:
    staff = StaffMember(username=username, display_name=name, role="volunteer", password_hash="-")
    await staff.save()
    branch = await Branch.select(Branch.id).where(Branch.code == branch_code).first()
    await StaffBranch.insert(StaffBranch(staff=staff.id, branch=branch["id"]))
    return Principal(kind="staff", id=staff.id, uuid=str(staff.uuid), name=name, language="zh_CN", role="volunteer",
                     branch_ids=frozenset({branch["id"]}))


def librarian(branch_id: int, role: str = "librarian") -> Principal:
    return Principal(kind="staff", id=0, uuid="t", name="周晓琳", language="zh_CN", role=role,
                     branch_ids=frozenset({branch_id}))


@pytest.fixture
async def zx() -> Principal:
    await load_demo(TODAY, books=False)
    # The demo's own shifts; these tests plan their own.
    await ShiftSignUp.delete(force=True)
    await Shift.delete(force=True)
    branch = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    return librarian(branch["id"])
