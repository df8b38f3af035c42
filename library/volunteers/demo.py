"""Demo shifts at the community branch (called by library.demo): safe to run again."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from library.accounts.principal import Principal
from library.accounts.tables import StaffMember
from library.activities.tables import Occurrence
from library.branches.tables import Branch
from library.errors import DomainError
from library.volunteers import service
from library.volunteers.rules import VOLUNTEER_ROLE
from library.volunteers.tables import Shift

BRANCH = "ZX"


async def ensure_demo_shifts(today: dt.date) -> bool:
    """A desk shift, two after-school shifts and an activity helper's shift in the coming week,
    and the demo's volunteer (if the demo has one) signed up for the first after-school shift."""
    branch = await Branch.select(Branch.id, Branch.time_zone).where(Branch.code == BRANCH).first()
    if branch is None or await Shift.exists().where(Shift.branch == branch["id"]):
        return False
    now = dt.datetime.combine(today, dt.time(), ZoneInfo(branch["time_zone"])).astimezone(dt.timezone.utc)
    planner = Principal(kind="staff", id=0, uuid="demo", name="demo", language="zh_CN", role="administrator",
                        all_branches=True)
    day = today + dt.timedelta(days=1)
    plans = [
        service.ShiftInput(BRANCH, "desk", dt.datetime.combine(day, dt.time(9, 0)),
                           dt.datetime.combine(day, dt.time(12, 0)), 1, "一楼服务台"),
        service.ShiftInput(BRANCH, "after_school", dt.datetime.combine(day, dt.time(15, 30)),
                           dt.datetime.combine(day, dt.time(17, 30)), 2, "课后看护：二楼自习室"),
        service.ShiftInput(BRANCH, "after_school", dt.datetime.combine(day + dt.timedelta(days=1), dt.time(15, 30)),
                           dt.datetime.combine(day + dt.timedelta(days=1), dt.time(17, 30)), 2, "课后看护：二楼自习室"),
    ]
    session = await Occurrence.select(Occurrence.uuid, Occurrence.local_start, Occurrence.local_end).where(
        (Occurrence.event.branch == branch["id"]) & (Occurrence.starts_at > now)).order_by(
        Occurrence.starts_at).first()
    if session is not None:
        plans.append(service.ShiftInput(BRANCH, "activity_helper",
                                        session["local_start"] - dt.timedelta(minutes=30), session["local_end"], 2,
                                        "活动助手", occurrence_uuid=str(session["uuid"])))
    shifts = [await service.plan_shift(planner, plan, now) for plan in plans]
    # The volunteer account another part of the demo makes: skipped when it is not there.
    volunteer = await StaffMember.select(StaffMember.username).where(
        (StaffMember.role == VOLUNTEER_ROLE) & (StaffMember.active == True)).first()  # noqa: E712
    if volunteer is not None:
        for shift in (shifts[1], shifts[-1]):
            try:
                await service.sign_up(planner, shift, now, username=volunteer["username"])
            except DomainError:  # a volunteer of another branch: the demo goes on without them
                break
    return True
