"""The annual return's 志愿服务时长 is read from the volunteers' check-ins and check-outs."""

from __future__ import annotations

import datetime as dt

from library.accounts.principal import Principal
from library.reports import service as reports
from library.reports import sheets
from library.volunteers import service
from library.volunteers.service import ShiftInput
from tests.volunteers.conftest import NOW, make_volunteer


def admin() -> Principal:
    return Principal(kind="staff", id=0, uuid="a", name="admin", language="zh_CN", role="administrator",
                     all_branches=True)


async def test_the_annual_return_counts_the_hours_served_in_the_year_at_the_branch(zx):
    volunteer = await make_volunteer("xiaoming", "志愿者小明")
    for day, minutes in ((22, 150), (23, 90)):
        start = dt.datetime(2026, 6, day, 15, 30)
        shift = await service.plan_shift(zx, ShiftInput("ZX", "desk", start, start + dt.timedelta(hours=3), 1), NOW)
        mine = await service.sign_up(volunteer, shift, NOW)
        came = dt.datetime(2026, 6, day, 7, 30, tzinfo=dt.timezone.utc)
        await service.check_in(volunteer, mine, came)
        await service.check_out(volunteer, mine, came + dt.timedelta(minutes=minutes))
    # Signed up but never came: no hours.
    start = dt.datetime(2026, 6, 24, 15, 30)
    shift = await service.plan_shift(zx, ShiftInput("ZX", "desk", start, start + dt.timedelta(hours=3), 1), NOW)
    await service.sign_up(volunteer, shift, NOW)
    annual = await reports.annual_return(admin(), 2026, "ZX", NOW)
    assert annual["annual"]["volunteer_hours"] == 4.0
    assert ["志愿服务时长", 4.0] in sheets.annual_rows(annual["annual"], 2026)
    elsewhere = await reports.annual_return(admin(), 2026, "XZ", NOW)
    assert elsewhere["annual"]["volunteer_hours"] == 0
    assert (await reports.annual_return(admin(), 2025, "ZX", NOW))["annual"]["volunteer_hours"] == 0
