"""Volunteers' shifts: one transaction per operation (load, decide with library.volunteers.rules,
write, audit). The head count is the database's: a sign-up takes its place with a conditional
UPDATE (`taken < needed`), and the table's check refuses anything past it."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from library import audit
from library.accounts.principal import Principal
from library.accounts.tables import Patron, StaffBranch, StaffMember
from library.activities.tables import Occurrence
from library.branches.tables import Branch
from library.db import is_unique_violation, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from library.volunteers import rules
from library.volunteers.tables import Shift, ShiftSignUp, VolunteerProfile

ACTIVITY_HELPER = "activity_helper"


def _refuse(refusal: rules.Refusal | None, error=Conflict, field: str | None = None) -> None:
    if refusal is not None:
        raise error(refusal.code, field=field, **refusal.params)


def _uuid(text: str, missing: str) -> str:
    try:
        return str(uuid_module.UUID(str(text)))
    except ValueError:
        raise NotFound(missing) from None


def is_planner(principal: Principal | None, branch_id: int) -> bool:
    """Staff of the branch other than volunteers: they plan, and act on anyone's sign-up."""
    return (principal is not None and principal.works_for(branch_id)
            and not rules.is_volunteer(principal.role))


def _check_planner(principal: Principal | None, branch_id: int) -> None:
    if not is_planner(principal, branch_id):
        raise NotPermitted("shift_not_planner")


async def _branch(code: str | None, principal: Principal) -> dict[str, Any]:
    """The branch asked for, or the first the principal works for."""
    query = Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en, Branch.time_zone)
    rows = await (query.where(Branch.code == code) if code else query.order_by(Branch.id))
    for row in rows:
        if principal.works_for(row["id"]):
            return row
    raise NotPermitted("unknown_report_branch")


# --- planning -----------------------------------------------------------------------------------


@dataclass
class ShiftInput:
    branch_code: str
    kind: str
    local_start: dt.datetime  # the branch's wall clock
    local_end: dt.datetime
    needed: int
    note: str = ""
    occurrence_uuid: str | None = None


async def plan_shift(principal: Principal, data: ShiftInput, now: dt.datetime) -> str:
    _refuse(rules.plan_refusal(data.kind, data.local_start, data.local_end, data.needed), InvalidInput)

    async def work() -> str:
        branch = await _branch(data.branch_code, principal)
        _check_planner(principal, branch["id"])
        occurrence_id = None
        if data.kind == ACTIVITY_HELPER and data.occurrence_uuid:
            occurrence = await Occurrence.select(Occurrence.id, Occurrence.event.branch.as_alias("branch")).where(
                Occurrence.uuid == _uuid(data.occurrence_uuid, "occurrence_not_found")).first()
            if occurrence is None or occurrence["branch"] != branch["id"]:
                raise InvalidInput("shift_wrong_session", field="occurrence")
            occurrence_id = occurrence["id"]
        zone = ZoneInfo(branch["time_zone"])
        shift = Shift(branch=branch["id"], kind=data.kind, occurrence=occurrence_id,
                      local_start=data.local_start, local_end=data.local_end,
                      starts_at=data.local_start.replace(tzinfo=zone).astimezone(dt.timezone.utc),
                      ends_at=data.local_end.replace(tzinfo=zone).astimezone(dt.timezone.utc),
                      needed=data.needed, note=data.note.strip()[:200], planned_by=principal.audit_name,
                      created_at=now)
        await shift.save()
        await audit.record(principal.audit_name, "volunteers.plan_shift", f"shift:{shift.uuid}",
                           branch=branch["code"], kind=data.kind, needed=data.needed,
                           start=data.local_start.isoformat())
        return str(shift.uuid)

    return await run_in_write_transaction(work)


async def shifts(principal: Principal, branch_code: str | None, first: dt.date, days: int = 14) -> dict[str, Any]:
    """The shifts of a branch from `first` on, each with its sign-ups: a planner sees every
    volunteer's name, a volunteer their own sign-up and how many places are left."""
    async with read_transaction():
        branch = await _branch(branch_code, principal)
        planner = is_planner(principal, branch["id"])
        start = dt.datetime.combine(first, dt.time())
        rows = await Shift.select(
            Shift.id, Shift.uuid, Shift.kind, Shift.local_start, Shift.local_end, Shift.starts_at, Shift.ends_at,
            Shift.needed, Shift.taken, Shift.note, Shift.occurrence.uuid.as_alias("session_uuid"),
            Shift.occurrence.event.title_zh.as_alias("session_title_zh"),
            Shift.occurrence.event.title_en.as_alias("session_title_en"),
        ).where((Shift.branch == branch["id"]) & (Shift.local_start >= start)
                & (Shift.local_start < start + dt.timedelta(days=days))).order_by(Shift.local_start)
        ids = [row["id"] for row in rows] or [-1]
        sign_ups = await ShiftSignUp.select(
            ShiftSignUp.uuid, ShiftSignUp.shift, ShiftSignUp.volunteer,
            ShiftSignUp.volunteer.display_name.as_alias("name"), ShiftSignUp.checked_in_at,
            ShiftSignUp.checked_out_at, ShiftSignUp.corrected_by,
        ).where(ShiftSignUp.shift.is_in(ids)).order_by(ShiftSignUp.signed_up_at)
        # The sessions an activity helper's shift may be planned for.
        sessions = await Occurrence.select(
            Occurrence.uuid, Occurrence.local_start, Occurrence.event.title_zh.as_alias("title_zh"),
            Occurrence.event.title_en.as_alias("title_en"),
        ).where((Occurrence.event.branch == branch["id"]) & (Occurrence.status == "scheduled")
                & (Occurrence.local_start >= start) & (Occurrence.local_start < start + dt.timedelta(days=days))
                ).order_by(Occurrence.local_start) if planner else []
    by_shift: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for sign_up in sign_ups:
        sign_up["uuid"] = str(sign_up["uuid"])
        sign_up["mine"] = sign_up["volunteer"] == principal.id
        if planner or sign_up["mine"]:
            by_shift[sign_up["shift"]].append(sign_up)
    for row in rows:
        row["uuid"] = str(row["uuid"])
        row["session_uuid"] = str(row["session_uuid"]) if row["session_uuid"] else None
        row["sign_ups"] = by_shift[row["id"]]
        row["mine"] = next((s for s in row["sign_ups"] if s["mine"]), None)
        row["left"] = row["needed"] - row["taken"]
    for session in sessions:
        session["uuid"] = str(session["uuid"])
    return {"branch": branch, "planner": planner, "shifts": rows, "sessions": sessions,
            "zone": ZoneInfo(branch["time_zone"])}


# --- sign-up, withdrawal, check-in and out ------------------------------------------------------


async def _volunteer_id(principal: Principal, username: str | None, branch_id: int) -> int:
    """Who is signed up: the volunteer themself, or — by a planner — a volunteer of the branch."""
    if not username:
        if not rules.is_volunteer(principal.role) or not principal.works_for(branch_id):
            raise NotPermitted("shift_not_volunteer")
        return principal.id
    _check_planner(principal, branch_id)
    row = await StaffMember.select(StaffMember.id).where(
        (StaffMember.username == username.strip()) & (StaffMember.role == rules.VOLUNTEER_ROLE)
        & (StaffMember.active == True)  # noqa: E712 - Piccolo's column comparison
        & (StaffMember.id.is_in(StaffBranch.select(StaffBranch.staff).where(StaffBranch.branch == branch_id)))
    ).first()
    if row is None:
        raise NotFound("volunteer_not_found", field="username", username=username.strip())
    return row["id"]


async def sign_up(principal: Principal, shift_uuid: str, now: dt.datetime, username: str | None = None) -> str:
    """A volunteer takes a place on a shift (a planner may sign a volunteer up by username)."""
    shift_uuid = _uuid(shift_uuid, "shift_not_found")

    async def work() -> str:
        shift = await Shift.select(Shift.id, Shift.branch, Shift.starts_at).where(Shift.uuid == shift_uuid).first()
        if shift is None:
            raise NotFound("shift_not_found")
        volunteer = await _volunteer_id(principal, username, shift["branch"])
        _refuse(rules.change_refusal(shift["starts_at"], now))
        if await ShiftSignUp.exists().where((ShiftSignUp.shift == shift["id"]) & (ShiftSignUp.volunteer == volunteer)):
            raise Conflict("shift_already_signed_up", name=username or principal.name)
        # The place is taken in the database: two volunteers racing for the last place cannot both get it.
        taken = await Shift.update({Shift.taken: Shift.taken + 1}).where(
            (Shift.id == shift["id"]) & (Shift.taken < Shift.needed)).returning(Shift.id)
        if not taken:
            raise Conflict("shift_full")
        row = ShiftSignUp(shift=shift["id"], volunteer=volunteer, signed_up_at=now)
        await row.save()
        await audit.record(principal.audit_name, "volunteers.sign_up", f"shift:{shift_uuid}", volunteer=volunteer)
        return str(row.uuid)

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):  # the same volunteer twice, raced past the check above
            raise Conflict("shift_already_signed_up", name=username or principal.name) from None
        raise


async def _own_or_planned(principal: Principal, sign_up_uuid: str) -> dict[str, Any]:
    """The sign-up with its shift, if the principal may act on it: their own, or any of a
    branch they plan for."""
    row = await ShiftSignUp.select(
        ShiftSignUp.id, ShiftSignUp.uuid, ShiftSignUp.volunteer, ShiftSignUp.checked_in_at,
        ShiftSignUp.checked_out_at, ShiftSignUp.shift, ShiftSignUp.shift.branch.as_alias("branch"),
        ShiftSignUp.shift.starts_at.as_alias("starts_at"), ShiftSignUp.shift.ends_at.as_alias("ends_at"),
        ShiftSignUp.shift.branch.time_zone.as_alias("time_zone"),
    ).where(ShiftSignUp.uuid == _uuid(sign_up_uuid, "sign_up_not_found")).first()
    if row is None:
        raise NotFound("sign_up_not_found")
    if not (is_planner(principal, row["branch"])
            or (rules.is_volunteer(principal.role) and row["volunteer"] == principal.id)):
        raise NotPermitted("shift_not_yours")
    return row


async def withdraw(principal: Principal, sign_up_uuid: str, now: dt.datetime) -> None:
    async def work() -> None:
        row = await _own_or_planned(principal, sign_up_uuid)
        if not is_planner(principal, row["branch"]):
            _refuse(rules.change_refusal(row["starts_at"], now))
        if row["checked_in_at"] is not None:
            raise Conflict("shift_withdraw_after_check_in")
        await ShiftSignUp.delete().where(ShiftSignUp.id == row["id"])
        await Shift.update({Shift.taken: Shift.taken - 1}).where(Shift.id == row["shift"])
        await audit.record(principal.audit_name, "volunteers.withdraw", f"sign_up:{row['uuid']}",
                           volunteer=row["volunteer"])

    await run_in_write_transaction(work)


async def check_in(principal: Principal, sign_up_uuid: str, now: dt.datetime) -> None:
    async def work() -> None:
        row = await _own_or_planned(principal, sign_up_uuid)
        _refuse(rules.check_in_refusal(row["starts_at"], row["ends_at"], row["checked_in_at"], now,
                                       ZoneInfo(row["time_zone"])))
        # Only the first of two taps counts: the second finds the time already set.
        done = await ShiftSignUp.update({ShiftSignUp.checked_in_at: now}).where(
            (ShiftSignUp.id == row["id"]) & ShiftSignUp.checked_in_at.is_null()).returning(ShiftSignUp.id)
        if done:
            await audit.record(principal.audit_name, "volunteers.check_in", f"sign_up:{row['uuid']}")

    await run_in_write_transaction(work)


async def check_out(principal: Principal, sign_up_uuid: str, now: dt.datetime) -> None:
    async def work() -> None:
        row = await _own_or_planned(principal, sign_up_uuid)
        zone = ZoneInfo(row["time_zone"])
        _refuse(rules.check_out_refusal(row["checked_in_at"], row["checked_out_at"], zone))
        # Leaving later than the corrected maximum is a forgotten check-out: the staff correct it.
        _refuse(rules.correction_refusal(row["checked_in_at"], max(now, row["checked_in_at"])))
        done = await ShiftSignUp.update({ShiftSignUp.checked_out_at: max(now, row["checked_in_at"])}).where(
            (ShiftSignUp.id == row["id"]) & ShiftSignUp.checked_out_at.is_null()).returning(ShiftSignUp.id)
        if done:
            await audit.record(principal.audit_name, "volunteers.check_out", f"sign_up:{row['uuid']}")

    await run_in_write_transaction(work)


async def correct_times(principal: Principal, sign_up_uuid: str, local_in: dt.datetime,
                        local_out: dt.datetime | None, now: dt.datetime) -> None:
    """The staff of the branch set a volunteer's times by hand (a forgotten check-out, a late scan)."""

    async def work() -> None:
        row = await _own_or_planned(principal, sign_up_uuid)
        _check_planner(principal, row["branch"])
        zone = ZoneInfo(row["time_zone"])
        checked_in = local_in.replace(tzinfo=zone).astimezone(dt.timezone.utc)
        checked_out = local_out.replace(tzinfo=zone).astimezone(dt.timezone.utc) if local_out else None
        _refuse(rules.correction_refusal(checked_in, checked_out), InvalidInput, field="checked_out")
        await ShiftSignUp.update({ShiftSignUp.checked_in_at: checked_in, ShiftSignUp.checked_out_at: checked_out,
                                  ShiftSignUp.corrected_by: principal.audit_name}).where(ShiftSignUp.id == row["id"])
        await audit.record(principal.audit_name, "volunteers.correct_times", f"sign_up:{row['uuid']}",
                           checked_in=checked_in.isoformat(),
                           checked_out=checked_out.isoformat() if checked_out else None,
                           was_in=row["checked_in_at"].isoformat() if row["checked_in_at"] else None,
                           was_out=row["checked_out_at"].isoformat() if row["checked_out_at"] else None)

    await run_in_write_transaction(work)


# --- service hours (志愿服务时长) ----------------------------------------------------------------


def _on_local_days(local_start, first: dt.date, last: dt.date):
    """A shift's wall-clock start falls on a day in [first, last]."""
    return (local_start >= dt.datetime.combine(first, dt.time())) \
        & (local_start < dt.datetime.combine(last + dt.timedelta(days=1), dt.time()))


async def _served(where, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """Completed sign-ups of shifts whose local day falls in [first, last], with minutes."""
    rows = await ShiftSignUp.select(
        ShiftSignUp.volunteer, ShiftSignUp.volunteer.display_name.as_alias("name"),
        ShiftSignUp.volunteer.username.as_alias("username"),
        ShiftSignUp.shift.local_start.as_alias("local_start"), ShiftSignUp.shift.branch.as_alias("branch"),
        ShiftSignUp.checked_in_at, ShiftSignUp.checked_out_at,
    ).where(where & _on_local_days(ShiftSignUp.shift.local_start, first, last)
            & ShiftSignUp.checked_out_at.is_not_null())
    for row in rows:
        row["month"] = f"{row['local_start']:%Y-%m}"
        row["minutes"] = rules.served_minutes(row["checked_in_at"], row["checked_out_at"])
    return rows


def month_range(month: str) -> tuple[dt.date, dt.date]:
    try:
        first = dt.datetime.strptime(month, "%Y-%m").date()
    except (TypeError, ValueError):
        raise InvalidInput("invalid_report_period", field="month") from None
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following - dt.timedelta(days=1)


async def branch_hours(principal: Principal, branch_code: str | None, first: dt.date, last: dt.date) -> dict[str, Any]:
    """Every volunteer's hours at a branch, by month: for the staff of the branch."""
    async with read_transaction():
        branch = await _branch(branch_code, principal)
        _check_planner(principal, branch["id"])
        rows = await _served(ShiftSignUp.shift.branch == branch["id"], first, last)
    lines = rules.hours_by_person_and_month(rows)
    return {"branch": branch, "first": first, "last": last, "lines": lines,
            "total_hours": rules.hours(sum(line["minutes"] for line in lines))}


def hours_csv_rows(report: dict[str, Any], headings: list[str]) -> list[list[Any]]:
    rows: list[list[Any]] = [headings]
    for line in report["lines"]:
        rows.append([report["branch"]["code"], line["month"], line["name"], line["shifts"], line["hours"]])
    return rows


async def volunteer_hours(principal: Principal, username: str | None, first: dt.date, last: dt.date) -> dict[str, Any]:
    """One volunteer's hours over a period (their own, or — for the staff — any volunteer of
    their branches): what the certificate shows."""
    async with read_transaction():
        if username is None:
            if not rules.is_volunteer(principal.role):
                raise NotPermitted("shift_not_volunteer")
            person = {"id": principal.id, "display_name": principal.name}
        else:
            person = await StaffMember.select(StaffMember.id, StaffMember.display_name).where(
                (StaffMember.username == username) & (StaffMember.role == rules.VOLUNTEER_ROLE)).first()
            if person is None:
                raise NotFound("volunteer_not_found", username=username)
        rows = await _served(ShiftSignUp.volunteer == person["id"], first, last)
        if username is not None:
            # A planner sees the hours served at the branches they plan for, no others.
            rows = [row for row in rows if is_planner(principal, row["branch"])]
        branch_ids = sorted({row["branch"] for row in rows})
        branches = await Branch.select(Branch.name_zh, Branch.name_en).where(
            Branch.id.is_in(branch_ids or [-1])).order_by(Branch.id)
    lines = rules.hours_by_person_and_month(rows)
    return {"name": person["display_name"], "first": first, "last": last, "lines": lines, "branches": branches,
            "shifts": sum(line["shifts"] for line in lines),
            "total_hours": rules.hours(sum(line["minutes"] for line in lines))}


async def hours_total(branch_ids: list[int], first: dt.date, last: dt.date) -> float:
    """Service hours at these branches over the period: the figure of the annual return
    (library.reports.service.annual_return). A count of hours names nobody."""
    # The shifts as a subquery, not joined through the sign-up's foreign keys: building that join
    # was a tenth of the statistics page's time (Piccolo copies a column for every step of a join).
    shifts = Shift.select(Shift.id).where(
        Shift.branch.is_in(branch_ids or [-1]) & _on_local_days(Shift.local_start, first, last))
    rows = await ShiftSignUp.select(ShiftSignUp.checked_in_at, ShiftSignUp.checked_out_at).where(
        ShiftSignUp.shift.is_in(shifts) & ShiftSignUp.checked_out_at.is_not_null())
    return rules.hours(sum(rules.served_minutes(row["checked_in_at"], row["checked_out_at"]) for row in rows))


# --- the activity session page ------------------------------------------------------------------


async def helpers_of(occurrence_uuid: str) -> list[str]:
    """The volunteers signed up to help at a session (activity-helper shifts pointing at it)."""
    try:
        occurrence_uuid = str(uuid_module.UUID(str(occurrence_uuid)))
    except ValueError:
        return []
    rows = await ShiftSignUp.select(ShiftSignUp.volunteer.display_name.as_alias("name")).where(
        (ShiftSignUp.shift.occurrence.uuid == occurrence_uuid) & (ShiftSignUp.shift.kind == ACTIVITY_HELPER)
    ).order_by(ShiftSignUp.signed_up_at)
    return [row["name"] for row in rows]


# --- profiles -----------------------------------------------------------------------------------


async def volunteers_of(principal: Principal, branch_code: str | None) -> list[dict[str, Any]]:
    """The volunteer accounts of a branch, with the reader card they are linked to (staff only)."""
    async with read_transaction():
        branch = await _branch(branch_code, principal)
        _check_planner(principal, branch["id"])
        people = await StaffMember.select(StaffMember.id, StaffMember.username, StaffMember.display_name).where(
            (StaffMember.role == rules.VOLUNTEER_ROLE) & (StaffMember.active == True)  # noqa: E712
            & StaffMember.id.is_in(StaffBranch.select(StaffBranch.staff).where(StaffBranch.branch == branch["id"]))
        ).order_by(StaffMember.display_name)
        profiles = await VolunteerProfile.select(
            VolunteerProfile.staff, VolunteerProfile.patron.card_number.as_alias("card_number")).where(
            VolunteerProfile.staff.is_in([p["id"] for p in people] or [-1]))
    cards = {row["staff"]: row["card_number"] for row in profiles}
    for person in people:
        person["card_number"] = cards.get(person["id"])
    return people


async def link_reader(principal: Principal, branch_code: str | None, username: str, card_number: str | None,
                      now: dt.datetime) -> None:
    """Link a volunteer to the reader they also are (or unlink, with no card): the profile keeps
    the link only, never a copy of the reader's details."""
    if not username.strip():  # else _volunteer_id would take the planner for the volunteer
        raise InvalidInput("required", field="username")

    async def work() -> None:
        branch = await _branch(branch_code, principal)
        volunteer = await _volunteer_id(principal, username, branch["id"])
        patron_id = None
        if card_number and card_number.strip():
            patron = await Patron.select(Patron.id).where(Patron.card_number == card_number.strip().upper()).first()
            if patron is None:
                raise NotFound("patron_not_found", field="card_number", card_number=card_number.strip())
            patron_id = patron["id"]
        existing = await VolunteerProfile.select(VolunteerProfile.id).where(VolunteerProfile.staff == volunteer).first()
        if existing is None:
            await VolunteerProfile.insert(VolunteerProfile(staff=volunteer, patron=patron_id, created_at=now))
        else:
            await VolunteerProfile.update({VolunteerProfile.patron: patron_id}).where(
                VolunteerProfile.id == existing["id"])
        await audit.record(principal.audit_name, "volunteers.link_reader", f"staff:{volunteer}",
                           linked=patron_id is not None)

    await run_in_write_transaction(work)
