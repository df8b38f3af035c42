"""Branches: their calendars (load, decide with the pure rules, write) and rooms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from library import audit, config_cache
from library.branches import rules
from library.branches.public_holidays import FIRST_DAY, LAST_DAY, public_calendar
from library.branches.tables import Branch, CalendarException, OpeningPeriod, Room
from library.db import is_unique_violation, json_list, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted

REASON_LIMIT = 200
# Staff plan closures up to two years ahead; further is almost always a typo.
CALENDAR_HORIZON_DAYS = 731
MAX_CALENDAR_SPAN = 366


def check_calendar_day(day: dt.date, field: str) -> None:
    """Refuse a day the calendar cannot compute (outside the years whose holidays are known)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput("date_beyond_calendar", field=field, first=FIRST_DAY.year, last=LAST_DAY.year)


async def _branch_row(code: str) -> dict[str, Any]:
    row = await Branch.select().where(Branch.code == code).first()
    if row is None:
        raise NotFound("branch_not_found", code=code)
    return row


async def calendars_for(branches: list[dict[str, Any]], start: dt.date,
                        end: dt.date) -> dict[int, rules.BranchCalendar]:
    """The calendars of several branches from two queries, whatever their number.

    Plain SQL: every due date needs a calendar, and building Piccolo's select cost more
    than running it.
    """
    ids = [branch["id"] for branch in branches] or [-1]
    marks = ", ".join("{}" for _ in ids)
    yearly = {branch["id"]: branch["yearly_closures"] for branch in branches if "yearly_closures" in branch}
    if len(yearly) < len(branches):  # callers that select a few branch columns do not know the rules
        rows = await Branch.raw(f"SELECT id, yearly_closures FROM branch WHERE id IN ({marks})", *ids)
        yearly = {row["id"]: json_list(row["yearly_closures"]) for row in rows}
    periods = await OpeningPeriod.raw(
        f"SELECT branch, weekday, opens, closes FROM opening_period WHERE branch IN ({marks}) ORDER BY opens", *ids)
    exceptions = await CalendarException.raw(
        "SELECT branch, day, is_open, reason_zh, reason_en FROM calendar_exception "
        f"WHERE branch IN ({marks}) AND day >= {{}} AND day <= {{}}", *ids, start, end)
    calendars = {}
    for branch in branches:
        weekly: dict[int, list[rules.Period]] = {}
        for period in (p for p in periods if p["branch"] == branch["id"]):
            weekly.setdefault(period["weekday"], []).append(rules.Period(period["opens"], period["closes"]))
        calendars[branch["id"]] = rules.BranchCalendar(
            weekly={day: tuple(items) for day, items in weekly.items()},
            exceptions={row["day"]: rules.LocalException(row["is_open"], row["reason_zh"], row["reason_en"])
                        for row in exceptions if row["branch"] == branch["id"]},
            closes_on_public_holidays=branch["closes_on_public_holidays"],
            yearly=rules.yearly_closures_from(json_list(yearly.get(branch["id"]))),
        )
    return calendars


async def _calendar_for(branch: dict[str, Any], start: dt.date, end: dt.date) -> rules.BranchCalendar:
    return (await calendars_for([branch], start, end))[branch["id"]]


async def cached_calendar(branch: dict[str, Any], start: dt.date, end: dt.date,
                          version: Any) -> rules.BranchCalendar:
    """A branch's calendar, read once per configuration version (see library.config_cache)."""
    return await config_cache.cached(("calendar", branch["id"], branch["closes_on_public_holidays"], start, end),
                                     version, lambda: _calendar_for(branch, start, end))


def _branch_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "uuid": str(row["uuid"]),
        "code": row["code"],
        "name_zh": row["name_zh"],
        "name_en": row["name_en"],
        "kind": row["kind"],
        "address_zh": row["address_zh"],
        "address_en": row["address_en"],
        "time_zone": row["time_zone"],
        "closes_on_public_holidays": row["closes_on_public_holidays"],
        "yearly_closures": [closure.value for closure in rules.YearlyClosure
                            if closure in rules.yearly_closures_from(json_list(row.get("yearly_closures")))],
    }


def _day_view(status: rules.DayStatus) -> dict[str, Any]:
    return {
        "day": status.day,
        "is_open": status.is_open,
        "reason": status.reason.value,
        "hours": [(period.opens, period.closes) for period in status.hours],
        "note_zh": status.note_zh,
        "note_en": status.note_en,
    }


async def list_branches(today: dt.date) -> list[dict[str, Any]]:
    """Every branch with whether it is open today."""
    public = public_calendar(today, today)
    async with read_transaction():
        branches = await Branch.select().order_by(Branch.kind, Branch.code)
        calendars = await calendars_for(branches, today, today)
    result = []
    for branch in branches:
        view = _branch_view(branch)
        view["today"] = _day_view(rules.day_status(today, calendars[branch["id"]], public))
        result.append(view)
    return result


class WorksFor(Protocol):
    """Anyone who says which branches they work for (a member of staff, as the layers above know them)."""

    def works_for(self, branch_id: int) -> bool: ...


async def branch_choices(staff: WorksFor | None = None) -> list[dict[str, Any]]:
    """Branches to choose from in a form (no calendars): all, or those a staff member works for."""
    rows = await Branch.select().order_by(Branch.kind, Branch.code)
    return [_branch_view(row) for row in rows if staff is None or staff.works_for(row["id"])]


async def branch_detail(code: str, today: dt.date, days: int = 14) -> dict[str, Any]:
    end = today + dt.timedelta(days=days - 1)
    public = public_calendar(today, end)
    async with read_transaction():
        branch = await _branch_row(code)
        calendar = await _calendar_for(branch, today, end)
        rooms = await Room.select().where(Room.branch == branch["id"]).order_by(Room.code)
    view = _branch_view(branch)
    view["weekly"] = {
        weekday: [(period.opens, period.closes) for period in calendar.weekly.get(weekday, ())] for weekday in range(7)
    }
    view["days"] = [
        _day_view(rules.day_status(today + dt.timedelta(days=offset), calendar, public)) for offset in range(days)
    ]
    view["rooms"] = [_room_view(room) for room in rooms]
    view["holiday_data_years"] = sorted(year for year in public.confirmed_years if year >= today.year)
    return view


def _room_view(room: dict[str, Any]) -> dict[str, Any]:
    return {
        "uuid": str(room["uuid"]),
        "code": room["code"],
        "name_zh": room["name_zh"],
        "name_en": room["name_en"],
        "capacity": room["capacity"],
        "features": [str(feature) for feature in json_list(room["features"])],
    }


async def rooms_by_branch(codes: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The rooms of several branches in one query, by branch code."""
    rows = await Room.select(*Room.all_columns(), Room.branch.code.as_alias("branch_code")).where(
        Room.branch.code.is_in(list(codes) or ["-"])).order_by(Room.code)
    found: dict[str, list[dict[str, Any]]] = {code: [] for code in codes}
    for row in rows:
        found[row["branch_code"]].append(_room_view(row))
    return found


async def rooms_of(code: str) -> list[dict[str, Any]]:
    async with read_transaction():
        branch = await _branch_row(code)
        rooms = await Room.select().where(Room.branch == branch["id"]).order_by(Room.code)
    return [_room_view(room) for room in rooms]


async def calendar_days(code: str, start: dt.date, days: int) -> list[dict[str, Any]]:
    if not 1 <= days <= MAX_CALENDAR_SPAN:
        raise InvalidInput("date_out_of_range", field="days", days=MAX_CALENDAR_SPAN)
    check_calendar_day(start, "start")
    check_calendar_day(start + dt.timedelta(days=days - 1), "days")
    end = start + dt.timedelta(days=days - 1)
    public = public_calendar(start, end)
    async with read_transaction():
        branch = await _branch_row(code)
        calendar = await _calendar_for(branch, start, end)
    return [_day_view(rules.day_status(start + dt.timedelta(days=offset), calendar, public)) for offset in range(days)]


async def next_open_day(code: str, on_or_after: dt.date, horizon_days: int = 366) -> dt.date | None:
    """The first day on or after `on_or_after` the branch is open (for due dates)."""
    check_calendar_day(on_or_after, "on_or_after")
    horizon_days = min(horizon_days, (LAST_DAY - on_or_after).days)  # no guessing past the known years
    end = on_or_after + dt.timedelta(days=horizon_days)
    public = public_calendar(on_or_after, end)
    async with read_transaction():
        branch = await _branch_row(code)
        calendar = await _calendar_for(branch, on_or_after, end)
    return rules.next_open_day(on_or_after, calendar, public, horizon_days)


async def upcoming_exceptions(code: str, today: dt.date) -> list[dict[str, Any]]:
    async with read_transaction():
        branch = await _branch_row(code)
        rows = await CalendarException.select().where(
            (CalendarException.branch == branch["id"]) & (CalendarException.day >= today)
        ).order_by(CalendarException.day)
    return [
        {
            "day": row["day"],
            "is_open": row["is_open"],
            "reason_zh": row["reason_zh"],
            "reason_en": row["reason_en"],
            "created_by": row["created_by"],
        }
        for row in rows
    ]


@dataclass(frozen=True)
class CalendarEditor:
    """Who changes a branch's calendar, as this layer needs them: names for the entry and the audit
    record, and whether they may edit a branch's calendar — which the controller answers with the
    permission matrix (library.accounts.permissions, `calendars.edit`), a layer above this one."""

    name: str
    audit_name: str
    may_edit: Callable[[int], bool]


def _require_editor_of(editor: CalendarEditor, branch: dict[str, Any]) -> None:
    if not editor.may_edit(branch["id"]):
        raise NotPermitted("not_your_branch", code=branch["code"])


async def add_calendar_exception(
    editor: CalendarEditor,
    code: str,
    day: dt.date,
    is_open: bool,
    reason_zh: str,
    reason_en: str,
    today: dt.date,
) -> None:
    """Staff close a branch for a day (or open it on a day it would be closed)."""
    reason_zh, reason_en = reason_zh.strip(), reason_en.strip()
    if not (today <= day <= today + dt.timedelta(days=CALENDAR_HORIZON_DAYS)):
        raise InvalidInput("date_out_of_range", field="day", days=CALENDAR_HORIZON_DAYS)
    if not reason_zh and not reason_en:
        raise InvalidInput("required", field="reason_zh")
    for field, value in (("reason_zh", reason_zh), ("reason_en", reason_en)):
        if len(value) > REASON_LIMIT:
            raise InvalidInput("reason_too_long", field=field, limit=REASON_LIMIT)

    async def work() -> None:
        branch = await _branch_row(code)
        _require_editor_of(editor, branch)
        await CalendarException.insert(
            CalendarException(
                branch=branch["id"],
                day=day,
                is_open=is_open,
                reason_zh=reason_zh,
                reason_en=reason_en,
                created_by=editor.name,
            )
        )
        await audit.record(
            editor.audit_name, "calendar.exception_added", f"branch:{code}", day=day.isoformat(), is_open=is_open
        )

    try:
        await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise Conflict("calendar_exception_exists", field="day", day=day.isoformat()) from None
        raise


async def remove_calendar_exception(editor: CalendarEditor, code: str, day: dt.date) -> None:
    async def work() -> None:
        branch = await _branch_row(code)
        _require_editor_of(editor, branch)
        deleted = await CalendarException.delete().where(
            (CalendarException.branch == branch["id"]) & (CalendarException.day == day)
        ).returning(CalendarException.id)
        if not deleted:
            raise NotFound("calendar_exception_not_found", day=day.isoformat())
        await audit.record(editor.audit_name, "calendar.exception_removed", f"branch:{code}", day=day.isoformat())

    await run_in_write_transaction(work)


def yearly_closure_choices(branch: dict[str, Any], today: dt.date) -> list[dict[str, Any]]:
    """Every yearly closure a branch may keep, whether it does, and the days it closes next
    (from today to the end of next year), so staff see what a rule means in this year's calendar."""
    end = dt.date(min(today.year + 1, LAST_DAY.year), 12, 31)
    public = public_calendar(today, end)
    kept = set(branch["yearly_closures"])
    choices = []
    for closure in rules.YearlyClosure:
        zh, en = rules.YEARLY_CLOSURE_NAMES[closure]
        days = rules.yearly_closure_days(closure, today, end, public)
        breaks: list[list[dt.date]] = []
        for day in days:
            if breaks and day - breaks[-1][-1] == dt.timedelta(days=1):
                breaks[-1].append(day)
            else:
                breaks.append([day])
        choices.append({"value": closure.value, "name_zh": zh, "name_en": en, "kept": closure.value in kept,
                        "next": [(run[0], run[-1]) for run in breaks]})
    return choices


async def set_yearly_closures(editor: CalendarEditor, code: str, closes_on_public_holidays: bool,
                              closures: list[str]) -> None:
    """Staff choose the holidays their branch closes on every year: all of them, or some."""
    known = {closure.value for closure in rules.YearlyClosure}
    unknown = [value for value in closures if value not in known]
    if unknown:
        raise InvalidInput("invalid_choice", field="yearly_closures")
    chosen = [closure.value for closure in rules.YearlyClosure if closure.value in set(closures)]

    async def work() -> None:
        branch = await _branch_row(code)
        _require_editor_of(editor, branch)
        await Branch.update({Branch.closes_on_public_holidays: closes_on_public_holidays,
                             Branch.yearly_closures: chosen}).where(Branch.id == branch["id"])
        await audit.record(editor.audit_name, "calendar.yearly_closures_set", f"branch:{code}",
                           closes_on_public_holidays=closes_on_public_holidays, yearly_closures=chosen)

    await run_in_write_transaction(work)
